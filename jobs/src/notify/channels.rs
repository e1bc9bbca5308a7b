//! Delivery over each channel (webhooks for webhook, SMS and push gateways; SMTP for email),
//! the webhook signature, and which failures are worth another attempt.

use super::outbox::Claimed;
use super::smtp;
use super::Dispatcher;
use tracing::Instrument;

/// Why one attempt did not deliver.
#[derive(Debug)]
pub(super) struct Failure {
    /// Retrying cannot help (the receiver refused the request itself, or nowhere to send).
    pub(super) permanent: bool,
    pub(super) error: String,
}

impl Failure {
    pub(super) fn transient(error: impl Into<String>) -> Self {
        Self {
            permanent: false,
            error: error.into(),
        }
    }

    pub(super) fn permanent(error: impl Into<String>) -> Self {
        Self {
            permanent: true,
            error: error.into(),
        }
    }
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`: the timestamp inside the signature
/// lets receivers refuse replays of old requests.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let hex = hmac_sha256_hex(secret, &[timestamp.to_string().as_bytes(), b".", body]);
    format!("t={timestamp},v1={hex}")
}

/// Lower-case hex HMAC-SHA256 of the concatenated `parts`.
pub(super) fn hmac_sha256_hex(secret: &[u8], parts: &[&[u8]]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut context = ring::hmac::Context::with_key(&key);
    for part in parts {
        context.update(part);
    }
    context
        .sign()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A non-2xx webhook answer: the receiver's 4xx are final (the request itself is wrong),
/// except 408 and 429, which ask to come back later; 5xx are the receiver's own trouble.
pub(super) fn http_failure(status: reqwest::StatusCode, error: String) -> Failure {
    if status.is_client_error()
        && status != reqwest::StatusCode::REQUEST_TIMEOUT
        && status != reqwest::StatusCode::TOO_MANY_REQUESTS
    {
        Failure::permanent(error)
    } else {
        Failure::transient(error)
    }
}

/// An SMTP failure: a 5xx reply is a permanent rejection (RFC 5321); a 4xx reply or a broken
/// connection is worth another attempt.
pub(super) fn smtp_failure(relay: &str, error: smtp::SmtpError) -> Failure {
    match error {
        smtp::SmtpError::Rejected { code, line } if code >= 500 => {
            Failure::permanent(format!("SMTP {relay}: {line}"))
        }
        e @ smtp::SmtpError::BadAddress(_) => Failure::permanent(format!("SMTP {relay}: {e}")),
        e => Failure::transient(format!("SMTP {relay}: {e}")),
    }
}

impl Dispatcher {
    pub(super) async fn deliver(&self, delivery: &Claimed) -> Result<(), Failure> {
        match delivery.channel.as_str() {
            "webhook" => {
                self.post(self.config.webhook_url.as_deref(), delivery)
                    .await
            }
            "sms" => {
                self.post(self.config.sms_webhook_url.as_deref(), delivery)
                    .await
            }
            "push" => {
                self.post(self.config.push_webhook_url.as_deref(), delivery)
                    .await
            }
            "email" => self.mail(delivery).await,
            other => Err(Failure::permanent(format!("unknown channel {other}"))),
        }
    }

    pub(super) async fn post(&self, url: Option<&str>, delivery: &Claimed) -> Result<(), Failure> {
        let url = url.ok_or_else(|| {
            Failure::permanent(format!("no endpoint configured for {}", delivery.channel))
        })?;
        let body = delivery
            .body()
            .map_err(|e| Failure::permanent(format!("payload is not JSON: {e}")))?;
        let timestamp = chrono::Utc::now().timestamp();
        let (span, trace_headers) = crate::plumbing::telemetry::http_client_span("POST", url);
        let mut request = self.http.post(url);
        for (name, value) in &trace_headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", delivery.idempotency_key())
            .header(
                "X-Sipline-Signature",
                signature(
                    self.config.webhook_secret.as_bytes(),
                    timestamp,
                    body.as_bytes(),
                ),
            )
            .body(body)
            .send()
            .instrument(span.clone())
            .await
            .map_err(|e| Failure::transient(format!("POST {url}: {e}")))?;
        let status = response.status();
        span.record("http.response.status_code", status.as_u16());
        if status.is_success() {
            return Ok(());
        }
        Err(http_failure(status, format!("POST {url}: HTTP {status}")))
    }

    pub(super) async fn mail(&self, delivery: &Claimed) -> Result<(), Failure> {
        let relay = self
            .config
            .smtp_relay
            .as_deref()
            .ok_or_else(|| Failure::permanent("no SMTP relay configured"))?;
        let to = delivery
            .email
            .as_deref()
            .ok_or_else(|| Failure::permanent("the user has no email address"))?;
        let payload: serde_json::Value = serde_json::from_str(&delivery.payload)
            .map_err(|e| Failure::permanent(format!("payload is not JSON: {e}")))?;
        let message = smtp::Message {
            from: &self.config.mail_from,
            to,
            subject: &format!("sipline: {}", delivery.kind.replace('_', " ")),
            message_id: &format!(
                "{}@sipline",
                delivery.idempotency_key().replace(['/', ':'], ".")
            ),
            body: &serde_json::to_string_pretty(&payload).unwrap_or_default(),
        };
        match tokio::time::timeout(self.config.timeout, smtp::send(relay, &message)).await {
            Err(_) => Err(Failure::transient(format!("SMTP {relay}: timed out"))),
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(smtp_failure(relay, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_answers_408_and_429_are_retried_other_4xx_are_final() {
        for (code, permanent) in [
            (400, true),
            (401, true),
            (404, true),
            (410, true),
            (408, false),
            (429, false),
            (500, false),
            (502, false),
            (503, false),
        ] {
            let status = reqwest::StatusCode::from_u16(code).unwrap();
            assert_eq!(
                http_failure(status, String::new()).permanent,
                permanent,
                "HTTP {code}"
            );
        }
    }

    #[test]
    fn smtp_5xx_replies_are_final_4xx_and_broken_connections_retried() {
        let rejected = |code| smtp::SmtpError::Rejected {
            code,
            line: format!("{code} no"),
        };
        assert!(smtp_failure("relay:25", rejected(550)).permanent);
        assert!(smtp_failure("relay:25", rejected(554)).permanent);
        assert!(!smtp_failure("relay:25", rejected(451)).permanent);
        assert!(!smtp_failure("relay:25", rejected(421)).permanent);
        let broken =
            smtp::SmtpError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(!smtp_failure("relay:25", broken).permanent);
    }

    #[test]
    fn signature_matches_a_published_hmac_sha256_vector() {
        // RFC 4231 test case 2 (key "Jefe", data "what do ya want for nothing?"), through our
        // own HMAC helper, split across parts as `signature` feeds it.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", &[b"what do ya ", b"want for nothing?"]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Ours signs "<t>.<body>". The expected values were computed with Python's `hmac`
        // module (an implementation that shares no code with ring):
        // hmac.new(b"Jefe", b"1700000000.{}", hashlib.sha256).hexdigest()
        assert_eq!(
            signature(b"Jefe", 1_700_000_000, b"{}"),
            "t=1700000000,v1=d3793e2b4103edfbd98cc19591832f5fad701d413db9fcae0ae7dab8184ed207"
        );
        assert_eq!(
            signature(b"whsec_test", 1_700_000_000, br#"{"event":"sip.executed"}"#),
            "t=1700000000,v1=046769e9fc968c9cc821e95f583b8959deb550140146221c9f7c3e2a352eeba2"
        );
    }
}
