//! Delivery over each channel (webhooks for webhook, SMS and push gateways; SMTP for email),
//! the webhook signature, and which failures are worth another attempt.

use super::email;
use super::outbox::Claimed;
use super::Dispatcher;
use tracing::Instrument;

/// What one attempt that delivered leaves behind.
#[derive(Debug, Default)]
pub(super) struct Delivered {
    /// The provider's id for the message it accepted (Exotel's SmsSid), which its delivery
    /// report names later.
    pub(super) provider_ref: Option<String>,
}

/// Why one attempt did not deliver.
#[derive(Debug)]
pub(super) struct Failure {
    /// Retrying cannot help (the receiver refused the request itself, or nowhere to send).
    pub(super) permanent: bool,
    pub(super) error: String,
    /// The receiver's `Retry-After`: the next attempt waits at least this long.
    pub(super) retry_after: Option<std::time::Duration>,
}

impl Failure {
    pub(super) fn transient(error: impl Into<String>) -> Self {
        Self {
            permanent: false,
            error: error.into(),
            retry_after: None,
        }
    }

    pub(super) fn permanent(error: impl Into<String>) -> Self {
        Self {
            permanent: true,
            error: error.into(),
            retry_after: None,
        }
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from APIs and read as absent).
pub(super) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<std::time::Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| std::time::Duration::from_secs(s.min(86_400)))
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`: the timestamp inside the signature
/// lets receivers refuse replays of old requests.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    signatures(&[secret], timestamp, body)
}

/// The signature header while a key is being rotated: one `v1=` per key, the current first
/// (the scheme Stripe uses for a rolled secret), so a receiver holding either key verifies
/// the request and can switch keys on its own schedule.
pub fn signatures(keys: &[&[u8]], timestamp: i64, body: &[u8]) -> String {
    let mut header = format!("t={timestamp}");
    for key in keys {
        let hex =
            serving::signing::hmac_sha256_hex(key, &[timestamp.to_string().as_bytes(), b".", body]);
        header.push_str(",v1=");
        header.push_str(&hex);
    }
    header
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

fn render_failed(e: messages::RenderError) -> Failure {
    Failure::permanent(format!("rendering: {e}"))
}

/// A message sent with the generic words: the operator hears which template could not
/// render which payload.
fn warn_generic(delivery: &Claimed, degraded: Option<messages::RenderError>) {
    if let Some(reason) = degraded {
        tracing::warn!(
            delivery_id = delivery.delivery_id,
            kind = %delivery.kind,
            channel = %delivery.channel,
            error = %reason,
            "sent with the generic template"
        );
    }
}

impl Dispatcher {
    /// The service an attempt on this delivery goes to, as `notification_deliveries.provider`
    /// and the `provider` label of `notify stats` name it: the same choice [`Self::deliver`]
    /// makes.
    pub(super) fn provider_of(&self, delivery: &Claimed) -> &'static str {
        match delivery.channel.as_str() {
            "webhook" => "webhook",
            "email" => "smtp",
            "sms" if self.config.exotel.is_some() => "exotel",
            "sms" => "sms_gateway",
            "push" if self.config.fcm.is_some() || self.config.apns.is_some() => {
                match delivery.push_platform.as_deref() {
                    Some("apns") => "apns",
                    _ => "fcm",
                }
            }
            "push" => "push_gateway",
            _ => "unknown",
        }
    }

    pub(super) async fn deliver(&self, delivery: &Claimed) -> Result<Delivered, Failure> {
        let none = |outcome: Result<(), Failure>| outcome.map(|()| Delivered::default());
        match delivery.channel.as_str() {
            "webhook" => none(
                self.post(self.config.webhook_url.as_deref(), delivery)
                    .await,
            ),
            "sms" => match &self.config.exotel {
                Some(exotel) => self.sms_exotel(exotel, delivery).await,
                None => none(
                    self.post(self.config.sms_webhook_url.as_deref(), delivery)
                        .await,
                ),
            },
            "push" if self.config.fcm.is_some() || self.config.apns.is_some() => {
                self.push(delivery).await
            }
            "push" => none(
                self.post(self.config.push_webhook_url.as_deref(), delivery)
                    .await,
            ),
            "email" => none(self.mail(delivery).await),
            other => Err(Failure::permanent(format!("unknown channel {other}"))),
        }
    }

    /// The keys webhook bodies are signed with: the current one, then the previous one while
    /// a rotation is under way.
    fn webhook_keys(&self) -> Vec<&[u8]> {
        serving::secret::rotation_keys(
            &self.config.webhook_secret,
            self.config.webhook_previous_secret.as_ref(),
        )
    }

    pub(super) async fn post(&self, url: Option<&str>, delivery: &Claimed) -> Result<(), Failure> {
        let url = url.ok_or_else(|| {
            Failure::permanent(format!("no endpoint configured for {}", delivery.channel))
        })?;
        let body = delivery
            .body(self.rendered_for_gateway(delivery)?)
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
                signatures(&self.webhook_keys(), timestamp, body.as_bytes()),
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
        let mut failure = http_failure(status, format!("POST {url}: HTTP {status}"));
        failure.retry_after = retry_after(response.headers());
        Err(failure)
    }

    /// The SMS words for a delivery (the generic words, with a warning, when its kind's
    /// template cannot render its payload).
    pub(super) fn rendered_sms(&self, delivery: &Claimed) -> Result<messages::Sms, Failure> {
        let (sms, degraded) = self
            .messages
            .sms_or_generic(&Self::notification(delivery)?)
            .map_err(render_failed)?;
        warn_generic(delivery, degraded);
        Ok(sms)
    }

    /// The push title and body for a delivery, as [`Self::rendered_sms`].
    pub(super) fn rendered_push(&self, delivery: &Claimed) -> Result<messages::Push, Failure> {
        let (push, degraded) = self
            .messages
            .push_or_generic(&Self::notification(delivery)?)
            .map_err(render_failed)?;
        warn_generic(delivery, degraded);
        Ok(push)
    }

    fn notification(delivery: &Claimed) -> Result<messages::Notification, Failure> {
        delivery
            .notification(None)
            .map_err(|e| Failure::permanent(format!("payload is not JSON: {e}")))
    }

    /// What an SMS or push gateway sends on: the rendered words (webhooks get the event only).
    fn rendered_for_gateway(
        &self,
        delivery: &Claimed,
    ) -> Result<Option<serde_json::Value>, Failure> {
        Ok(match delivery.channel.as_str() {
            "sms" => {
                let sms = self.rendered_sms(delivery)?;
                Some(serde_json::json!({
                    "text": sms.text,
                    "encoding": sms.length.encoding.as_str(),
                    "segments": sms.length.segments,
                }))
            }
            "push" => {
                let push = self.rendered_push(delivery)?;
                Some(serde_json::json!({ "title": push.title, "body": push.body }))
            }
            _ => None,
        })
    }

    pub(super) async fn mail(&self, delivery: &Claimed) -> Result<(), Failure> {
        let (Some(smtp), Some(transport)) = (&self.config.smtp, &self.smtp) else {
            return Err(Failure::permanent("no SMTP relay configured"));
        };
        let to = delivery
            .email
            .as_deref()
            .ok_or_else(|| Failure::permanent("the user has no email address"))?;
        let unsubscribe_url = self
            .config
            .unsubscribe
            .as_ref()
            .and_then(|links| links.link(delivery.user_id, &delivery.kind, chrono::Utc::now()));
        let mut notification = delivery
            .notification(unsubscribe_url)
            .map_err(|e| Failure::permanent(format!("payload is not JSON: {e}")))?;
        notification.statement_url = self.config.statement_url.clone();
        let (rendered, degraded) = self
            .messages
            .email_or_generic(&notification)
            .map_err(|e| Failure::permanent(format!("rendering: {e}")))?;
        warn_generic(delivery, degraded);
        let message = email::message(
            &email::Outgoing {
                from: &self.config.mail_from,
                to,
                message_id: format!(
                    "<{}@sipline>",
                    delivery.idempotency_key().replace(['/', ':'], ".")
                ),
                rendered: &rendered,
                unsubscribe_url: notification.unsubscribe_url.as_deref(),
            },
            self.dkim.as_ref(),
        )?;
        match tokio::time::timeout(
            self.config.timeout,
            email::send(transport, &smtp.relay, message),
        )
        .await
        {
            Err(_) => Err(Failure::transient(format!(
                "SMTP {}: timed out",
                smtp.relay
            ))),
            Ok(outcome) => outcome,
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
    fn signature_matches_a_published_hmac_sha256_vector() {
        // The HMAC itself is checked against RFC 4231 in `serving::signing`. Ours signs "<t>.<body>". The expected values were computed with Python's `hmac`
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
        // During a rotation: the new key's, then the old key's (Python's `hmac` again).
        assert_eq!(
            signatures(
                &[b"Jefe", b"whsec_test"],
                1_700_000_000,
                br#"{"event":"sip.executed"}"#
            ),
            "t=1700000000,v1=cd32d3a627b0f6d019549e76ad107dea3c64230021ca373cba5e13a2c5afc470,\
             v1=046769e9fc968c9cc821e95f583b8959deb550140146221c9f7c3e2a352eeba2"
        );
        assert_eq!(
            signatures(&[b"Jefe"], 1_700_000_000, b"{}"),
            signature(b"Jefe", 1_700_000_000, b"{}")
        );
    }
}
