//! E-mail over a real submission path (`lettre`): STARTTLS on 587 or implicit TLS on 465 with
//! AUTH, as a provider's submission server requires, or plain SMTP to a local relay that does
//! the rest. The message is multipart/alternative (plain text and HTML) with a `Message-ID`
//! made from the delivery's idempotency key (a retry carries the same id, so a receiver can
//! drop the repeat), a `Date`, and, when an unsubscribe link exists, `List-Unsubscribe` with
//! `List-Unsubscribe-Post` for one-click unsubscribing (RFC 8058). With a DKIM key, every
//! message is signed (RFC 6376, rsa-sha256, relaxed/relaxed) for the domain of the sender
//! address, so receivers applying DMARC take it as the domain's own.

use std::time::Duration;

use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
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
#[derive(Clone)]
pub struct SmtpConfig {
    /// `host:port`.
    pub relay: String,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// PEM roots trusted besides the public web PKI (a private relay's CA).
    pub ca_pem: Option<Vec<u8>>,
    /// Signs every message, when set.
    pub dkim: Option<DkimKey>,
}

impl std::fmt::Debug for SmtpConfig {
    // The CA file is shown by its size: certificates are public, but a log line of PEM helps
    // nobody.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("relay", &self.relay)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password)
            .field(
                "ca_pem",
                &self.ca_pem.as_ref().map(|p| format!("{} bytes", p.len())),
            )
            .field("dkim", &self.dkim)
            .finish()
    }
}

/// A DKIM signing key and where its public half is published: the TXT record
/// `<selector>._domainkey.<domain>`.
#[derive(Clone, Debug)]
pub struct DkimKey {
    pub domain: String,
    pub selector: String,
    /// An RSA private key, PKCS#1 PEM (`-----BEGIN RSA PRIVATE KEY-----`).
    pub private_key_pem: Secret,
}

/// The headers a signature covers: what a person reads and what a receiver acts on. One
/// absent from a message (`List-Unsubscribe` on a receipt) is signed as absent, so nobody on
/// the way can add it (RFC 6376 §5.4). Not `Content-Type`: lettre writes a multipart's type
/// with the body, after the headers it signs, so a signature over it would not verify (the
/// body hash covers the parts all the same).
const DKIM_SIGNED_HEADERS: &[&str] = &[
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// A DKIM signer. Its Debug says nothing of the key: lettre's `DkimConfig` derives Debug,
/// and the RSA key's Debug would print its private parts.
pub struct DkimSigner(DkimConfig);

impl std::fmt::Debug for DkimSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DkimSigner(..)")
    }
}

/// The signer, built once. Fails on a key that is not a PKCS#1 RSA key (without quoting it),
/// a selector or domain that cannot be a DNS label, or a sender address in another domain
/// (DMARC would not align).
pub fn dkim_signer(key: &DkimKey, mail_from: &str) -> Result<DkimSigner, SmtpSetupError> {
    let label = |text: &str| {
        !text.is_empty()
            && text.split('.').all(|part| {
                !part.is_empty()
                    && part.len() <= 63
                    && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    };
    if !label(&key.domain) || !label(&key.selector) {
        return Err(SmtpSetupError::Dkim(
            "--dkim-domain and --dkim-selector are DNS names".into(),
        ));
    }
    let from_domain = mail_from
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default();
    let domain = key.domain.to_ascii_lowercase();
    if from_domain != domain && !from_domain.ends_with(&format!(".{domain}")) {
        return Err(SmtpSetupError::Dkim(format!(
            "--mail-from is in {from_domain}, not in --dkim-domain {domain}: DMARC would not align"
        )));
    }
    let signing_key = DkimSigningKey::new(key.private_key_pem.expose(), DkimSigningAlgorithm::Rsa)
        .map_err(|_| {
            SmtpSetupError::Dkim(
                "--dkim-key-file: not a PKCS#1 RSA private key (-----BEGIN RSA PRIVATE KEY-----)"
                    .into(),
            )
        })?;
    Ok(DkimSigner(DkimConfig::new(
        key.selector.clone(),
        key.domain.clone(),
        signing_key,
        DKIM_SIGNED_HEADERS
            .iter()
            .map(|h| HeaderName::new_from_ascii_str(h))
            .collect(),
        DkimCanonicalization {
            header: DkimCanonicalizationType::Relaxed,
            body: DkimCanonicalizationType::Relaxed,
        },
    )))
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
    #[error("DKIM: {0}")]
    Dkim(String),
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

/// Builds the MIME message, signed when a DKIM signer is given. An address that is not a
/// mailbox is a permanent failure.
pub fn message(
    outgoing: &Outgoing<'_>,
    dkim: Option<&DkimSigner>,
) -> Result<lettre::Message, Failure> {
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
    let mut message = builder
        .multipart(MultiPart::alternative_plain_html(
            outgoing.rendered.text.clone(),
            outgoing.rendered.html.clone(),
        ))
        .map_err(|e| Failure::permanent(format!("building the message: {e}")))?;
    if let Some(dkim) = dkim {
        lettre::message::dkim::dkim_sign(&mut message, &dkim.0);
    }
    Ok(message)
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
            dkim: None,
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
        let formatted = String::from_utf8(message(&outgoing, None).unwrap().formatted()).unwrap();
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
        assert!(message(&bad, None).unwrap_err().permanent);
    }

    #[test]
    fn a_dkim_key_is_checked_without_being_quoted_and_the_sender_must_be_in_its_domain() {
        let key = |pem: &str, domain: &str| DkimKey {
            domain: domain.into(),
            selector: "s2026".into(),
            private_key_pem: Secret::from(pem.to_string()),
        };
        let not_a_key = "-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END RSA PRIVATE KEY-----\n";
        let error = dkim_signer(&key(not_a_key, "sipline.example"), "n@sipline.example")
            .unwrap_err()
            .to_string();
        assert!(error.contains("PKCS#1"), "{error}");
        assert!(!error.contains("c2VjcmV0"), "{error}");
        let error = dkim_signer(&key(not_a_key, "other.example"), "n@sipline.example")
            .unwrap_err()
            .to_string();
        assert!(error.contains("DMARC"), "{error}");
        let error = dkim_signer(&key(not_a_key, "bad domain"), "n@sipline.example")
            .unwrap_err()
            .to_string();
        assert!(error.contains("DNS names"), "{error}");
        let dkim = DkimKey {
            domain: "sipline.example".into(),
            selector: "s2026".into(),
            private_key_pem: Secret::from("very-secret-pem".to_string()),
        };
        assert!(!format!("{dkim:?}").contains("very-secret-pem"));
    }
}
