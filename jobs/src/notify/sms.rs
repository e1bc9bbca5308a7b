//! SMS that Indian operators deliver, through Exotel's Send SMS API (developer.exotel.com/api/sms).
//!
//! Why Exotel: an Indian CPaaS most Indian brokers and fintechs already use, whose API takes the
//! DLT fields TRAI requires (`DltEntityId`, `DltTemplateId`) as plain parameters, with a
//! registered sender ID, and reports delivery (`sent`, `failed`, `failed_dnd`) by a POST to a
//! `StatusCallback` URL. Without the DLT entity and the template registered for the message's
//! kind, an operator drops the SMS; here such a kind is a permanent failure naming it.
//!
//! The request: `POST {base}/v1/Accounts/{sid}/Sms/send.json`, HTTP Basic with the API key and
//! token, a form body (`From`, `To`, `Body`, `EncodingType`, `DltEntityId`, `DltTemplateId`,
//! `StatusCallback`, `CustomField`); the answer's `SMSMessage.Sid` is kept to match the report.
//! 429 and 5xx are retried (after `Retry-After` when given), other 4xx are final.

use std::collections::BTreeMap;

use serving::secret::Secret;

use super::channels::{http_failure, retry_after, Delivered, Failure};
use super::outbox::Claimed;
use super::Dispatcher;

/// Exotel's account, sender and the DLT registrations.
#[derive(Debug, Clone)]
pub struct ExotelConfig {
    /// `https://api.in.exotel.com` (Mumbai) or `https://api.exotel.com` (Singapore); a local
    /// server in tests.
    pub base_url: String,
    pub account_sid: String,
    pub api_key: Secret,
    pub api_token: Secret,
    /// The DLT-registered sender ID (header), e.g. `SIPLNE`.
    pub sender: String,
    /// The principal entity ID registered on the DLT portal.
    pub dlt_entity_id: String,
    /// The DLT template ID registered for each notification kind.
    pub dlt_templates: BTreeMap<String, String>,
    /// Where delivery reports go (the API's callback route), signed per delivery.
    pub callbacks: Option<SignedCallbacks>,
}

/// The API's delivery-report route and the key its per-delivery signatures use.
#[derive(Debug, Clone)]
pub struct SignedCallbacks {
    pub base_url: String,
    pub secret: Secret,
}

impl SignedCallbacks {
    pub fn url(&self, delivery_id: i64) -> String {
        format!(
            "{}?{}",
            self.base_url,
            serving::callbacks::query(self.secret.expose().as_bytes(), delivery_id)
        )
    }
}

/// The DLT template name of a NAV alert's daily digest (several alerts of one person and day
/// in one message, keyed `nav_alert_digest:…`). DLT scrubbing matches a message's text against
/// the template registered under its ID, and the digest's text is not a single alert's, so it
/// is registered on its own: `nav_alert_digest=ID` in `--dlt-templates`.
pub const DIGEST_TEMPLATE: &str = "nav_alert_digest";

/// The template a message goes out under: its kind's, or the digest's.
fn template_name<'a>(kind: &'a str, event_key: &str) -> &'a str {
    if kind == "nav_alert" && event_key.starts_with("nav_alert_digest:") {
        DIGEST_TEMPLATE
    } else {
        kind
    }
}

/// `kind=template_id,kind=template_id`, as `--dlt-templates` takes them (a kind, or
/// [`DIGEST_TEMPLATE`]).
pub fn parse_templates(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut templates = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (kind, id) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?}: expected kind=template_id"))?;
        let (kind, id) = (kind.trim(), id.trim());
        if !serving::unsubscribe::KINDS.contains(&kind) && kind != DIGEST_TEMPLATE {
            return Err(format!("{kind:?}: not a notification kind"));
        }
        // DLT template IDs are 19 digits; any run of digits is accepted, nothing else.
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{kind}: template ID {id:?} is not digits"));
        }
        if templates.insert(kind.to_string(), id.to_string()).is_some() {
            return Err(format!("{kind}: twice"));
        }
    }
    Ok(templates)
}

impl Dispatcher {
    pub(super) async fn sms_exotel(
        &self,
        exotel: &ExotelConfig,
        delivery: &Claimed,
    ) -> Result<Delivered, Failure> {
        let to = delivery
            .phone
            .as_deref()
            .ok_or_else(|| Failure::permanent("the user has no phone number"))?;
        let name = template_name(&delivery.kind, &delivery.event_key);
        let template = exotel.dlt_templates.get(name).ok_or_else(|| {
            Failure::permanent(format!(
                "no DLT template ID registered for {name} (--dlt-templates): operators drop it"
            ))
        })?;
        let sms = self.rendered_sms(delivery)?;
        let encoding = match sms.length.encoding {
            messages::Encoding::Gsm7 => "plain",
            messages::Encoding::Ucs2 => "unicode",
        };
        let text = sms.text;
        let mut form = vec![
            ("From", exotel.sender.clone()),
            ("To", to.to_string()),
            ("Body", text),
            ("EncodingType", encoding.to_string()),
            ("DltEntityId", exotel.dlt_entity_id.clone()),
            ("DltTemplateId", template.clone()),
            ("CustomField", delivery.idempotency_key()),
        ];
        if let Some(callbacks) = &exotel.callbacks {
            form.push(("StatusCallback", callbacks.url(delivery.delivery_id)));
        }
        let url = format!(
            "{}/v1/Accounts/{}/Sms/send.json",
            exotel.base_url.trim_end_matches('/'),
            exotel.account_sid
        );
        let response = self
            .http
            .post(&url)
            .basic_auth(exotel.api_key.expose(), Some(exotel.api_token.expose()))
            .form(&form)
            .send()
            .await
            .map_err(|e| Failure::transient(format!("Exotel: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            let mut failure = http_failure(status, format!("Exotel: HTTP {status}"));
            failure.retry_after = retry_after(response.headers());
            return Err(failure);
        }
        // Accepted: an answer we cannot read must not send the SMS again, so it is kept as
        // delivered without the id (its report then matches nothing) and logged.
        let answer: Option<serde_json::Value> = match response.bytes().await {
            Ok(body) => serde_json::from_slice(&body).ok(),
            Err(_) => None,
        };
        let sid = answer
            .as_ref()
            .and_then(|a| a["SMSMessage"]["Sid"].as_str())
            .map(String::from);
        if sid.is_none() {
            tracing::warn!(
                delivery_id = delivery.delivery_id,
                "Exotel accepted an SMS without a readable Sid: its delivery report cannot be matched"
            );
        }
        Ok(Delivered { provider_ref: sid })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_map_kinds_to_registered_ids() {
        let parsed =
            parse_templates("sip_executed=1107161234567890123, order_executed=1107169876543210987")
                .unwrap();
        assert_eq!(parsed["sip_executed"], "1107161234567890123");
        assert_eq!(parsed.len(), 2);
        let parsed =
            parse_templates("nav_alert=1107160000000000001,nav_alert_digest=1107160000000000002")
                .unwrap();
        assert_eq!(parsed[DIGEST_TEMPLATE], "1107160000000000002");
        assert_eq!(
            template_name("nav_alert", "nav_alert:5:2026-12-07"),
            "nav_alert"
        );
        assert_eq!(
            template_name("nav_alert", "nav_alert_digest:1:2026-12-07:5"),
            DIGEST_TEMPLATE
        );
        assert_eq!(
            template_name("sip_executed", "sip:1:2026-12-05:executed"),
            "sip_executed"
        );
        for bad in [
            "sip_executed",
            "nope=123",
            "nav_alert_digests=123",
            "sip_executed=12a",
            "sip_executed=1,sip_executed=2",
        ] {
            assert!(parse_templates(bad).is_err(), "{bad}");
        }
    }
}
