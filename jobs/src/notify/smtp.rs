//! Just enough SMTP (RFC 5321) to hand a message to a relay: no TLS or AUTH, which the local
//! relay (Postfix, an MTA sidecar) adds on the way out.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub struct Message<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    pub message_id: &'a str,
    pub body: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{line}")]
    Rejected { code: u16, line: String },
    #[error("connection closed")]
    Closed,
    #[error("not a mailbox address: {0:?}")]
    BadAddress(String),
}

/// The same mailbox check the API applies when an address is saved; here the last line.
pub use serving::is_mailbox;

async fn reply(reader: &mut BufReader<TcpStream>) -> Result<u16, SmtpError> {
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Err(SmtpError::Closed);
        }
        let code: u16 = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
        // "250-..." continues a multi-line reply; "250 ..." ends it.
        if line.as_bytes().get(3) == Some(&b'-') {
            continue;
        }
        if !(200..400).contains(&code) {
            return Err(SmtpError::Rejected {
                code,
                line: line.trim_end().to_string(),
            });
        }
        return Ok(code);
    }
}

async fn command(reader: &mut BufReader<TcpStream>, line: &str) -> Result<u16, SmtpError> {
    reader.get_mut().write_all(line.as_bytes()).await?;
    reader.get_mut().write_all(b"\r\n").await?;
    reply(reader).await
}

pub async fn send(relay: &str, message: &Message<'_>) -> Result<(), SmtpError> {
    for address in [message.from, message.to] {
        if !is_mailbox(address) {
            return Err(SmtpError::BadAddress(address.to_string()));
        }
    }
    let mut reader = BufReader::new(TcpStream::connect(relay).await?);
    reply(&mut reader).await?;
    command(&mut reader, "EHLO sipline").await?;
    command(&mut reader, &format!("MAIL FROM:<{}>", message.from)).await?;
    command(&mut reader, &format!("RCPT TO:<{}>", message.to)).await?;
    command(&mut reader, "DATA").await?;
    let date = chrono::Utc::now().to_rfc2822();
    let mut data = format!(
        "From: <{}>\r\nTo: <{}>\r\nSubject: {}\r\nDate: {date}\r\nMessage-ID: <{}>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
        message.from, message.to, message.subject, message.message_id
    );
    for line in message.body.lines() {
        // Dot-stuffing: a line starting with '.' gets another, so it cannot end the data.
        if line.starts_with('.') {
            data.push('.');
        }
        data.push_str(line);
        data.push_str("\r\n");
    }
    data.push('.');
    command(&mut reader, &data).await?;
    command(&mut reader, "QUIT").await.ok();
    Ok(())
}

#[cfg(test)]
mod address_tests {
    use super::is_mailbox;

    #[test]
    fn an_address_that_could_inject_a_command_or_header_is_not_a_mailbox() {
        assert!(is_mailbox("priya+sip@example.co.in"));
        for bad in [
            "priya@example.com\r\nBcc: all@example.com",
            "priya@example.com>\r\nRCPT TO:<x@y.z",
            "priya @example.com",
            "priya@example",
            "@example.com",
            "priya@.example.com",
            "prïya@example.com",
        ] {
            assert!(!is_mailbox(bad), "{bad:?}");
        }
    }
}
