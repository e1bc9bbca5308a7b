//! Delivery reports from providers: Exotel POSTs an SMS's final state (`sent`, `failed`,
//! `failed_dnd`) as a form to the `StatusCallback` URL the dispatcher gave it. Exotel signs
//! nothing, so that URL carries the delivery's id and an HMAC of it
//! (`serving::callbacks`, a secret the dispatcher and the API share): a report is accepted only
//! for the delivery it was signed for, and only with the provider's own id for the message. A
//! failure reported by the operator turns the delivery dead, and its notification with it when
//! no other channel is left.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serving::secret::rotation_keys;

use super::extract::ApiQuery;
use super::timed;
use crate::problem::Problem;
use crate::Shared;

pub fn routes() -> Router<Shared> {
    Router::new().route("/providers/exotel/sms-status", post(exotel_sms_status))
}

#[derive(Deserialize)]
struct Signed {
    delivery: Option<i64>,
    sig: Option<String>,
}

/// The fields of Exotel's callback this route reads (it sends more), from its form body.
#[derive(Default)]
struct ExotelReport {
    sms_sid: Option<String>,
    status: Option<String>,
    detailed_status: Option<String>,
}

impl ExotelReport {
    /// Read as `application/x-www-form-urlencoded` whatever the declared type: a malformed
    /// body is then simply a report without the fields, a 400 that says which.
    fn parse(body: &[u8]) -> Self {
        let mut report = Self::default();
        for (name, value) in url::form_urlencoded::parse(body) {
            let slot = match name.as_ref() {
                "SmsSid" => &mut report.sms_sid,
                "Status" => &mut report.status,
                "DetailedStatus" => &mut report.detailed_status,
                _ => continue,
            };
            *slot = Some(value.into_owned());
        }
        report
    }
}

/// Exotel's terminal and interim states.
const STATES: [&str; 6] = [
    "queued",
    "sending",
    "submitted",
    "sent",
    "failed_dnd",
    "failed",
];

const RECORD_REPORT: &str = "UPDATE notification_deliveries SET report_status = $3, \
       report_detail = $4, reported_at = now(), \
       status = CASE WHEN $3 IN ('failed', 'failed_dnd') THEN 'dead' ELSE status END, \
       last_error = CASE WHEN $3 IN ('failed', 'failed_dnd') \
                         THEN 'operator reported ' || $3 || coalesce(': ' || $4, '') ELSE last_error END \
     WHERE delivery_id = $1 AND provider_ref = $2 AND channel = 'sms' \
     RETURNING notification_id";

async fn exotel_sms_status(
    State(state): State<Shared>,
    ApiQuery(signed): ApiQuery<Signed>,
    body: Bytes,
) -> Result<Response, Problem> {
    let report = ExotelReport::parse(&body);
    let Some(secret) = &state.provider_callback_secret else {
        return Err(Problem::not_found(
            "provider callbacks are not enabled here",
        ));
    };
    let (Some(delivery), Some(sig)) = (signed.delivery, signed.sig.as_deref()) else {
        return Err(Problem::bad_request("delivery and sig: required"));
    };
    let keys = rotation_keys(secret, state.provider_callback_previous_secret.as_ref());
    if !serving::callbacks::verify_with_keys(&keys, delivery, sig) {
        return Err(Problem::forbidden(
            "the callback's signature does not match",
        ));
    }
    let (Some(sid), Some(status)) = (report.sms_sid.as_deref(), report.status.as_deref()) else {
        return Err(Problem::bad_request("SmsSid and Status: required"));
    };
    if !STATES.contains(&status) {
        return Err(Problem::bad_request(format!(
            "Status: one of {}",
            STATES.join(", ")
        )));
    }
    let detail = report.detailed_status.as_deref().map(|d| {
        d.chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect::<String>()
    });
    let notification: Option<i64> = timed(
        &state,
        sqlx::query_scalar(RECORD_REPORT)
            .bind(delivery)
            .bind(sid)
            .bind(status)
            .bind(detail.as_deref())
            .fetch_optional(&state.pool),
    )
    .await?;
    let Some(notification) = notification else {
        return Err(Problem::not_found("no such SMS for this delivery"));
    };
    timed(
        &state,
        sqlx::query("SELECT sipline_roll_up_notifications($1)")
            .bind(vec![notification])
            .execute(&state.pool),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
