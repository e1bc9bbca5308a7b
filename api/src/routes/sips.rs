//! SIP mandates: list, create (validated against the scheme's SIP rules), pause, resume and
//! cancel. PostgreSQL is their system of record; `sips export` hands them to the batch.

use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::extract::{locked_count, ApiJson, ApiPath, ApiQuery, Authed, UserRef};
use super::{json_value, next_cursor, timed, IdPage};
use crate::problem::Problem;
use crate::Shared;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/users/{user_id}/sips", get(list_sips).post(create_sip))
        .route("/users/{user_id}/sips/{sip_id}/{action}", post(change_sip))
}

/// The platform's ceiling on one instalment, whatever a scheme allows: ₹1 crore. Far below
/// `numeric(18,2)`, so an absurd amount is a 422 naming the field, never a database error,
/// and a batch sum of 10 million instalments stays far inside `i64` paise.
const MAX_SIP_AMOUNT: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 2);

/// Active or paused SIPs one user may hold: each is a mandate the batch executes every month,
/// so one token must not be able to create them without bound (OWASP API4, API6).
const MAX_OPEN_SIPS: i64 = 50;

const OPEN_SIPS: &str =
    "SELECT count(*) FROM sips WHERE user_id = $1 AND status IN ('active', 'paused')";

const SIP_COLUMNS: &str =
    "sip_id, user_id, scheme_code, amount::text AS amount, sip_day, start_date, end_date, \
     step_up_pct::text AS step_up_pct, status, paused_until";

const SCHEME_SIP_RULES: &str = "SELECT coalesce(scheme_type ILIKE 'Open Ended%', false) AS open, \
            sip_min_amount::text AS min, sip_max_amount::text AS max \
     FROM schemes WHERE scheme_code = $1";

const SIP_STATUS: &str = "SELECT status FROM sips WHERE sip_id = $1 AND user_id = $2";

/// A SIP mandate as the API shows it: money and percentages as exact decimal strings.
#[derive(sqlx::FromRow, Serialize)]
struct Sip {
    sip_id: i64,
    user_id: i64,
    scheme_code: i64,
    amount: String,
    sip_day: i16,
    start_date: NaiveDate,
    end_date: Option<NaiveDate>,
    step_up_pct: String,
    status: String,
    paused_until: Option<NaiveDate>,
}

#[derive(Serialize)]
struct SipList {
    sips: Vec<Sip>,
    next_after: Option<i64>,
}

/// What a scheme allows of a SIP.
#[derive(sqlx::FromRow)]
struct SchemeSipRules {
    open: bool,
    min: Option<String>,
    max: Option<String>,
}

async fn list_sips(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath(user): ApiPath<UserRef>,
    ApiQuery(page): ApiQuery<IdPage>,
) -> Result<Response, Problem> {
    let user_id = authed.reach(user, false)?;
    let (after, limit) = page.bounds()?;
    let sips: Vec<Sip> = timed(
        &state,
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {SIP_COLUMNS} FROM sips WHERE user_id = $1 AND sip_id > $2 ORDER BY sip_id LIMIT $3"
        )))
        .bind(user_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&state.pool),
    )
    .await?;
    let next_after = next_cursor(sips.iter().map(|s| s.sip_id), limit);
    Ok(json_value(&SipList { sips, next_after }))
}

#[derive(Deserialize)]
struct NewSip {
    scheme_code: Option<i64>,
    amount: Option<Value>,
    sip_day: Option<i64>,
    start_date: Option<NaiveDate>,
    end_date: Option<NaiveDate>,
    step_up_pct: Option<Value>,
}

/// A decimal from a JSON string ("1500.00") or number (1500), exactly.
pub(super) fn decimal(value: &Value) -> Option<Decimal> {
    match value {
        Value::String(s) => Decimal::from_str(s.trim()).ok(),
        Value::Number(n) => Decimal::from_str(&n.to_string()).ok(),
        _ => None,
    }
}

/// Today in India, where SIP dates live.
fn today_ist() -> NaiveDate {
    (chrono::Utc::now() + chrono::Duration::minutes(330)).date_naive()
}

async fn create_sip(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath(user): ApiPath<UserRef>,
    ApiJson(sip): ApiJson<NewSip>,
) -> Result<Response, Problem> {
    let user_id = authed.reach(user, true)?;
    let mut errors = Vec::new();
    let mut fail =
        |field: &str, message: &str| errors.push((field.to_string(), message.to_string()));
    let amount = sip.amount.as_ref().and_then(decimal);
    match amount {
        None => fail("amount", "required, a decimal amount in rupees"),
        Some(a) if a.scale() > 2 && a.normalize().scale() > 2 => {
            fail("amount", "at most two decimal places (paise)")
        }
        Some(a) if a < Decimal::from(100) => fail("amount", "at least ₹100"),
        Some(a) if a > MAX_SIP_AMOUNT => fail("amount", "at most ₹1,00,00,000 per instalment"),
        Some(_) => {}
    }
    match sip.sip_day {
        Some(1..=28) => {}
        _ => fail("sip_day", "required, between 1 and 28"),
    }
    let today = today_ist();
    match sip.start_date {
        None => fail("start_date", "required"),
        Some(d) if d < today => fail("start_date", "must not be in the past"),
        Some(_) => {}
    }
    if let (Some(start), Some(end)) = (sip.start_date, sip.end_date) {
        if end < start {
            fail("end_date", "must not be before start_date");
        }
    }
    let step_up = match sip.step_up_pct.as_ref() {
        None => Some(Decimal::ZERO),
        Some(v) => decimal(v),
    };
    match step_up {
        Some(s) if s >= Decimal::ZERO && s <= Decimal::from(100) => {}
        _ => fail("step_up_pct", "a percentage between 0 and 100"),
    }
    let scheme = match sip.scheme_code {
        None => {
            fail("scheme_code", "required");
            None
        }
        Some(code) => {
            let row: Option<SchemeSipRules> = timed(
                &state,
                sqlx::query_as(SCHEME_SIP_RULES)
                    .bind(code)
                    .fetch_optional(&state.pool),
            )
            .await?;
            if row.is_none() {
                fail("scheme_code", "no such scheme");
            }
            row
        }
    };
    if let (Some(row), Some(amount)) = (&scheme, amount) {
        if !row.open {
            fail("scheme_code", "the scheme is not open for SIPs");
        }
        let min = row.min.as_deref().and_then(|m| Decimal::from_str(m).ok());
        let max = row.max.as_deref().and_then(|m| Decimal::from_str(m).ok());
        if min.is_some_and(|min| amount < min) {
            fail("amount", "below the scheme's minimum SIP amount");
        }
        if max.is_some_and(|max| amount > max) {
            fail("amount", "above the scheme's maximum SIP amount");
        }
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let mut tx = state.pool.begin().await?;
    if locked_count(&mut tx, user_id, OPEN_SIPS).await? >= MAX_OPEN_SIPS {
        return Err(Problem::conflict(format!(
            "at most {MAX_OPEN_SIPS} active or paused SIPs per user: cancel one first"
        )));
    }
    let created: Sip = timed(
        &state,
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO sips (user_id, scheme_code, amount, sip_day, start_date, end_date, step_up_pct) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {SIP_COLUMNS}"
        )))
        .bind(user_id)
        .bind(sip.scheme_code)
        .bind(amount)
        .bind(sip.sip_day.map(|d| d as i16))
        .bind(sip.start_date)
        .bind(sip.end_date)
        .bind(step_up)
        .fetch_one(&mut *tx),
    )
    .await?;
    tx.commit().await?;
    let mut response = json_value(&created);
    *response.status_mut() = StatusCode::CREATED;
    Ok(response)
}

#[derive(Deserialize, Default)]
struct SipChange {
    /// Pause: resume on this date (inclusive of the instalments up to it being skipped).
    until: Option<NaiveDate>,
}

async fn change_sip(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath((user, sip_id, action)): ApiPath<(UserRef, i64, String)>,
    body: Bytes,
) -> Result<Response, Problem> {
    let user_id = authed.reach(user, true)?;
    let change: SipChange = if body.is_empty() {
        SipChange::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| Problem::bad_request(e.to_string()))?
    };
    let (set, allowed_from) = match action.as_str() {
        "pause" => {
            if change.until.is_some_and(|u| u < today_ist()) {
                return Err(Problem::invalid(vec![(
                    "until".into(),
                    "must not be in the past".into(),
                )]));
            }
            ("status = 'paused', paused_until = $3", "'active', 'paused'")
        }
        "resume" => ("status = 'active', paused_until = NULL", "'paused'"),
        "cancel" => (
            "status = 'cancelled', paused_until = NULL",
            "'active', 'paused'",
        ),
        _ => return Err(Problem::not_found("actions are pause, resume and cancel")),
    };
    let changed: Option<Sip> = timed(
        &state,
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE sips SET {set}, updated_at = now() \
             WHERE sip_id = $1 AND user_id = $2 AND status IN ({allowed_from}) RETURNING {SIP_COLUMNS}"
        )))
        .bind(sip_id)
        .bind(user_id)
        .bind(change.until)
        .fetch_optional(&state.pool),
    )
    .await?;
    match changed {
        Some(sip) => Ok(json_value(&sip)),
        None => {
            let status: Option<String> = sqlx::query_scalar(SIP_STATUS)
                .bind(sip_id)
                .bind(user_id)
                .fetch_optional(&state.pool)
                .await?;
            Err(match status {
                None => Problem::not_found("no such SIP"),
                Some(status) => {
                    Problem::conflict(format!("cannot {action} a SIP that is {status}"))
                }
            })
        }
    }
}
