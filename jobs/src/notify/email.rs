//! E-mail over a real submission path (`lettre`): STARTTLS on 587 or implicit TLS on 465 with
//! AUTH, as a provider's submission server requires, or plain SMTP to a local relay that does
//! the rest. The message is multipart/alternative (plain text and HTML) with a `Message-ID`
//! made from the delivery's idempotency key (a retry carries the same id, so a receiver can
//! drop the repeat), a `Date`, and, when an unsubscribe link exists, `List-Unsubscribe` with
//! `List-Unsubscribe-Post` for one-click unsubscribing (RFC 8058).

use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use serving::secret::Secret;

use super::channels::Failure;

/// How the connection to the submission server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SmtpTls {
    /// Plain SMTP: only for a relay on the same host or network that secures the rest.
    None,
    /// STARTTLS, required (port 587): the message is never sent if the upgrade fails.
    Starttls,
    /// TLS from the first byte (port 465, "SMTPS").
    Implicit,
}

/// Where and how e-mail is submitted.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// `host:port`.
    pub relay: String,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// PEM roots trusted besides the public web PKI (a private relay's CA).
    pub ca_pem: Option<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SmtpSetupError {
    #[error("--smtp-relay {0:?}: expected host:port")]
    Relay(String),
    #[error("--smtp-ca-file: {0}")]
    Certificate(String),
    #[error("--smtp-username without a password (SIPLINE_SMTP_PASSWORD)")]
    NoPassword,
    #[error("SMTP AUTH over a plain connection would send the password in the clear: use --smtp-tls starttls or implicit")]
    AuthInTheClear,
}

/// The transport, built once: its pool keeps connections (and their TLS sessions and AUTH)
/// open between deliveries.
pub fn transport(
    config: &SmtpConfig,
    timeout: Duration,
    concurrency: usize,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, SmtpSetupError> {
    let (host, port) = config
        .relay
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
        .filter(|(host, _)| !host.is_empty())
        .ok_or_else(|| SmtpSetupError::Relay(config.relay.clone()))?;
    let tls_parameters = || {
        let mut builder = TlsParameters::builder(host.to_string());
        if let Some(pem) = &config.ca_pem {
            let certificate = Certificate::from_pem(pem)
                .map_err(|e| SmtpSetupError::Certificate(e.to_string()))?;
            builder = builder.add_root_certificate(certificate);
        }
        builder
            .build_rustls()
            .map_err(|e| SmtpSetupError::Certificate(e.to_string()))
    };
    let tls = match config.tls {
        SmtpTls::None => Tls::None,
        SmtpTls::Starttls => Tls::Required(tls_parameters()?),
        SmtpTls::Implicit => Tls::Wrapper(tls_parameters()?),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port)
        .tls(tls)
        .timeout(Some(timeout))
        .pool_config(PoolConfig::new().max_size(u32::try_from(concurrency).unwrap_or(32)));
    match (&config.username, &config.password) {
        (Some(_), None) => return Err(SmtpSetupError::NoPassword),
        (Some(_), Some(_)) if config.tls == SmtpTls::None => {
            return Err(SmtpSetupError::AuthInTheClear)
        }
        (Some(user), Some(password)) => {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        (None, _) => {}
    }
    Ok(builder.build())
}

/// One e-mail as rendered for a person.
pub struct Outgoing<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub message_id: String,
    pub rendered: &'a messages::Email,
    pub unsubscribe_url: Option<&'a str>,
}

/// Builds the MIME message. An address that is not a mailbox is a permanent failure.
pub fn message(outgoing: &Outgoing<'_>) -> Result<lettre::Message, Failure> {
    let mailbox = |address: &str| {
        if !serving::is_mailbox(address) {
            return Err(Failure::permanent(format!(
                "not a mailbox address: {address:?}"
            )));
        }
        address
            .parse::<Mailbox>()
            .map_err(|e| Failure::permanent(format!("not a mailbox address {address:?}: {e}")))
    };
    let mut builder = lettre::Message::builder()
        .from(mailbox(outgoing.from)?)
        .to(mailbox(outgoing.to)?)
        .subject(outgoing.rendered.subject.clone())
        .message_id(Some(outgoing.message_id.clone()));
    if let Some(url) = outgoing.unsubscribe_url {
        builder = builder
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{url}>"),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".to_string(),
            ));
    }
    builder
        .multipart(MultiPart::alternative_plain_html(
            outgoing.rendered.text.clone(),
            outgoing.rendered.html.clone(),
        ))
        .map_err(|e| Failure::permanent(format!("building the message: {e}")))
}

/// Sends; a 5xx reply is a permanent rejection (RFC 5321), anything else (4xx, a broken
/// connection, a timeout, a failed TLS handshake) is worth another attempt.
pub async fn send(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    relay: &str,
    message: lettre::Message,
) -> Result<(), Failure> {
    match transport.send(message).await {
        Ok(_) => Ok(()),
        Err(e) => Err(classify(relay, &e)),
    }
}

fn classify(relay: &str, error: &lettre::transport::smtp::Error) -> Failure {
    // lettre's Display of an SMTP error is the server's reply, never the credentials.
    let text = format!("SMTP {relay}: {error}");
    if error.is_permanent() {
        Failure::permanent(text)
    } else {
        Failure::transient(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(relay: &str, tls: SmtpTls, user: Option<&str>, password: Option<&str>) -> SmtpConfig {
        SmtpConfig {
            relay: relay.into(),
            tls,
            username: user.map(String::from),
            password: password.map(Secret::from),
            ca_pem: None,
        }
    }

    // Async: the pooled transport starts its reaper task on the runtime when built.
    #[tokio::test]
    async fn a_password_never_goes_over_a_plain_connection_and_is_never_printed() {
        let timeout = Duration::from_secs(1);
        assert!(matches!(
            transport(
                &config("relay:25", SmtpTls::None, Some("u"), Some("pw")),
                timeout,
                4
            ),
            Err(SmtpSetupError::AuthInTheClear)
        ));
        assert!(matches!(
            transport(
                &config("relay:587", SmtpTls::Starttls, Some("u"), None),
                timeout,
                4
            ),
            Err(SmtpSetupError::NoPassword)
        ));
        assert!(matches!(
            transport(&config("relay", SmtpTls::Starttls, None, None), timeout, 4),
            Err(SmtpSetupError::Relay(_))
        ));
        let secret = config(
            "smtp.example.com:587",
            SmtpTls::Starttls,
            Some("u"),
            Some("hunter22"),
        );
        assert!(transport(&secret, timeout, 4).is_ok());
        assert!(!format!("{secret:?}").contains("hunter22"));
    }

    #[test]
    fn the_message_is_multipart_alternative_with_its_headers() {
        let rendered = messages::Email {
            subject: "Your statement for November 2026".into(),
            text: "Invested: ₹12,34,567.50\n".into(),
            html: "<p>Invested: ₹12,34,567.50</p>\n".into(),
        };
        let outgoing = Outgoing {
            from: "notifications@sipline.example",
            to: "priya@example.co.in",
            message_id: "<statement.7.2026-11.email@sipline>".into(),
            rendered: &rendered,
            unsubscribe_url: Some("https://api.example/v1/unsubscribe?token=abc"),
        };
        let formatted = String::from_utf8(message(&outgoing).unwrap().formatted()).unwrap();
        for expected in [
            "Message-ID: <statement.7.2026-11.email@sipline>",
            "List-Unsubscribe: <https://api.example/v1/unsubscribe?token=abc>",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            "Content-Type: multipart/alternative",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Type: text/html; charset=utf-8",
            "Date: ",
        ] {
            assert!(formatted.contains(expected), "{expected} in\n{formatted}");
        }
        let bad = Outgoing {
            to: "priya@example.com\r\nBcc: all@example.com",
            ..outgoing
        };
        assert!(message(&bad).unwrap_err().permanent);
    }
}
