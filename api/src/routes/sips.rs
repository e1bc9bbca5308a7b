//! SIP mandates: list, detail with change history, create (validated against the scheme's SIP
//! rules), change (amount, step-up, SIP day, end date), pause, resume and cancel. PostgreSQL is
//! their system of record; `sips export` hands them to the batch.
//!
//! Every change is recorded with its time and the first batch date it applies to (migration
//! 0009: before the daily cut-off, that day; after it, the next), and every response that
//! changes a SIP says so: `effective_from`, and `next_instalment`, the first instalment the new
//! terms settle — its due date, the date whose NAV it is bought at, and its amount.

use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use pipeline::sip::{applicable_date, has_run_its_course, Mandate, SipStatus, COMPLETED};

use super::extract::{
    locked_open_mandates, refused_change, ApiJson, ApiPath, ApiQuery, Authed, UserRef,
};
use super::idempotency::{claim_or_replay, idempotency_key, store_response};
use super::{json_body, json_value, next_cursor, timed, IdPage};
use crate::problem::Problem;
use crate::Shared;
use serving::mandates::MandateRow;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/users/{user_id}/sips", get(list_sips).post(create_sip))
        .route(
            "/users/{user_id}/sips/{sip_id}",
            get(sip_detail).patch(amend_sip),
        )
        .route("/users/{user_id}/sips/{sip_id}/{action}", post(change_sip))
}

/// The platform's ceiling on one instalment, whatever a scheme allows: ₹1 crore. Far below
/// `numeric(18,2)`, so an absurd amount is a 422 naming the field, never a database error,
/// and a batch sum of 10 million instalments stays far inside `i64` paise.
const MAX_SIP_AMOUNT: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 2);

/// Active or paused SIPs one user may hold: each is a mandate the batch executes every month,
/// so one token must not be able to create them without bound (OWASP API4, API6). SIPs whose
/// end date has passed are done and do not count.
const MAX_OPEN_SIPS: i64 = 50;

const OPEN_SIPS: &str = "SELECT count(*) FROM sips WHERE user_id = $1 \
     AND status IN ('active', 'paused') AND (end_date IS NULL OR end_date >= $2)";

/// What a SIP shows, and its terms scaled as the batch reads them (`MandateRow`).
const SIP_COLUMNS: &str =
    "sip_id, user_id, scheme_code, amount::text AS amount, sip_day, start_date, end_date, \
     step_up_pct::text AS step_up_pct, status, paused_until, \
     (amount * 100)::bigint AS amount_paise, (step_up_pct * 100)::bigint AS step_up_bps";

const SCHEME_SIP_RULES: &str = "SELECT sipline_open_ended(scheme_type) AS open, \
            sip_min_amount::text AS min, sip_max_amount::text AS max \
     FROM schemes WHERE scheme_code = $1";

const SIP_STATUS: &str = "SELECT status FROM sips WHERE sip_id = $1 AND user_id = $2";

/// The latest change of a SIP (the one just made, in the writing transaction), and the batch
/// date a change made at $2 (the API's clock) applies to. `-infinity` (states from before
/// history was kept) shows as null.
const LATEST_CHANGE: &str =
    "SELECT CASE WHEN isfinite(effective_from) THEN effective_from END AS effective_from, \
            sipline_batch_date($2) AS batch_date \
     FROM sip_changes WHERE sip_id = $1 ORDER BY change_id DESC LIMIT 1";

const CURRENT_BATCH_DATE: &str = "SELECT sipline_batch_date($1)";

/// Marks the transaction's writes to `sips` as this kind of change, and sets the transaction's
/// "now" to the API's clock ($2), for the history trigger's effective date.
const MARK_CHANGE: &str =
    "SELECT set_config('sipline.change', $1, true), set_config('sipline.now', $2, true)";

const SIP_CHANGES: &str = "SELECT change_id, change, changed_at, \
            CASE WHEN isfinite(effective_from) THEN effective_from END AS effective_from, \
            amount::text AS amount, sip_day, end_date, step_up_pct::text AS step_up_pct, status, paused_until \
     FROM sip_changes WHERE sip_id = $1 ORDER BY change_id DESC LIMIT 100";

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
    /// The same SIP as the batch reads it: one conversion, shared with `sips export`.
    #[sqlx(flatten)]
    #[serde(skip)]
    terms: MandateRow,
}

impl Sip {
    /// The status a person reads: `completed` once the SIP has run its course. The stored
    /// status stays as the person last set it (the batch reads the end date itself).
    fn seen_by_person(mut self, state: &Shared) -> Self {
        let today = serving::clock::date_ist(state.clock.now());
        if self.status != SipStatus::Cancelled.as_str()
            && has_run_its_course(&state.calendar, self.end_date, today)
        {
            self.status = COMPLETED.to_string();
        }
        self
    }

    /// The mandate as the batch will see it, for computing its schedule.
    fn mandate(&self) -> Option<Mandate> {
        Mandate::try_from(self.terms.clone()).ok()
    }
}

/// The first instalment a SIP's current terms settle.
#[derive(Serialize)]
struct NextInstalment {
    due_date: NaiveDate,
    /// The NAV date it is bought at: the due date, or the next business day.
    nav_date: NaiveDate,
    amount: String,
}

/// A SIP with when its current terms apply and what they settle next.
#[derive(Serialize)]
struct ScheduledSip {
    #[serde(flatten)]
    sip: Sip,
    /// The first batch date the SIP's current terms apply to (null: from before history).
    effective_from: Option<NaiveDate>,
    /// Null when nothing more falls due (cancelled, ended, or paused without an end).
    next_instalment: Option<NextInstalment>,
}

#[derive(sqlx::FromRow)]
struct LatestChange {
    effective_from: Option<NaiveDate>,
    batch_date: NaiveDate,
}

fn schedule(state: &Shared, sip: Sip, change: LatestChange) -> ScheduledSip {
    // Instalments run before the current batch date have been handed to the batch already.
    let from = change
        .effective_from
        .map_or(change.batch_date, |e| e.max(change.batch_date));
    let next_instalment = sip.mandate().and_then(|m| {
        let due_date = m.first_instalment_from(&state.calendar, from)?;
        Some(NextInstalment {
            due_date,
            nav_date: applicable_date(&state.calendar, due_date),
            amount: m.instalment_amount(due_date).to_string(),
        })
    });
    ScheduledSip {
        sip: sip.seen_by_person(state),
        effective_from: change.effective_from,
        next_instalment,
    }
}

/// A SIP of the user with what its latest change says: for the next instalment across SIPs.
#[derive(sqlx::FromRow)]
struct SipWithChange {
    #[sqlx(flatten)]
    sip: Sip,
    effective_from: Option<NaiveDate>,
    batch_date: NaiveDate,
}

/// The user's SIPs that may still fall due (at most 100, the per-user SIP quota's order of
/// magnitude), each with its latest change and the batch date a change now applies to.
const LIVE_SIPS: &str =
    "SELECT s.sip_id, s.user_id, s.scheme_code, s.amount::text AS amount, s.sip_day, \
       s.start_date, s.end_date, s.step_up_pct::text AS step_up_pct, s.status, s.paused_until, \
       (s.amount * 100)::bigint AS amount_paise, (s.step_up_pct * 100)::bigint AS step_up_bps, \
       (SELECT CASE WHEN isfinite(c.effective_from) THEN c.effective_from END FROM sip_changes c \
          WHERE c.sip_id = s.sip_id ORDER BY c.change_id DESC LIMIT 1) AS effective_from, \
       sipline_batch_date($2) AS batch_date \
     FROM sips s WHERE s.user_id = $1 AND s.status <> 'cancelled' ORDER BY s.sip_id LIMIT 100";

/// The first instalment any of a user's SIPs settles next.
#[derive(Serialize)]
pub(super) struct UpcomingInstalment {
    sip_id: i64,
    scheme_code: i64,
    due_date: NaiveDate,
    nav_date: NaiveDate,
    amount: String,
}

/// The earliest next instalment across the user's SIPs (the same schedule `GET …/sips/{id}`
/// shows per SIP), and how many SIPs may still fall due.
pub(super) async fn upcoming_instalment(
    state: &Shared,
    user_id: i64,
) -> Result<(Option<UpcomingInstalment>, usize), Problem> {
    let now = state.clock.now();
    let sips: Vec<SipWithChange> = timed(
        state,
        sqlx::query_as(LIVE_SIPS)
            .bind(user_id)
            .bind(now)
            .fetch_all(&state.pool),
    )
    .await?;
    // Those shown completed fall due no more.
    let today = serving::clock::date_ist(now);
    let live = sips
        .iter()
        .filter(|row| !has_run_its_course(&state.calendar, row.sip.end_date, today))
        .count();
    let next = sips
        .into_iter()
        .filter_map(|row| {
            let scheduled = schedule(
                state,
                row.sip,
                LatestChange {
                    effective_from: row.effective_from,
                    batch_date: row.batch_date,
                },
            );
            let next = scheduled.next_instalment?;
            Some(UpcomingInstalment {
                sip_id: scheduled.sip.sip_id,
                scheme_code: scheduled.sip.scheme_code,
                due_date: next.due_date,
                nav_date: next.nav_date,
                amount: next.amount,
            })
        })
        .min_by_key(|u| (u.due_date, u.sip_id));
    Ok((next, live))
}

/// One entry of a SIP's change history.
#[derive(sqlx::FromRow, Serialize)]
struct SipChangeEntry {
    change_id: i64,
    change: String,
    changed_at: chrono::DateTime<chrono::Utc>,
    effective_from: Option<NaiveDate>,
    amount: String,
    sip_day: i16,
    end_date: Option<NaiveDate>,
    step_up_pct: String,
    status: String,
    paused_until: Option<NaiveDate>,
}

#[derive(Serialize)]
struct SipDetail {
    #[serde(flatten)]
    sip: ScheduledSip,
    /// Newest first, at most 100.
    changes: Vec<SipChangeEntry>,
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
    let sips = sips.into_iter().map(|s| s.seen_by_person(&state)).collect();
    Ok(json_value(&SipList { sips, next_after }))
}

#[derive(Deserialize)]
struct NewSip {
    scheme_code: Option<i64>,
    amount: Option<Value>,
    sip_day: Option<i64>,
    start_date: Option<NaiveDate>,
    #[serde(default, deserialize_with = "super::extract::not_null")]
    end_date: Option<NaiveDate>,
    #[serde(default, deserialize_with = "super::extract::not_null")]
    step_up_pct: Option<Value>,
}

/// A decimal from a JSON string ("1500.00") or number (1500), exactly.
/// A decimal string as the OpenAPI document describes it: digits, optionally a point and more
/// digits (at most 16 and 20, no leading zero). No sign, exponent, spaces or JSON number (a
/// float would lose paise on the way).
pub(super) fn decimal(value: &Value) -> Option<Decimal> {
    let Value::String(text) = value else {
        return None;
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((text, "0"));
    let digits = |part: &str, most: usize| {
        (1..=most).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(whole, 16) || !digits(fraction, 20) || (whole.len() > 1 && whole.starts_with('0')) {
        return None;
    }
    Decimal::from_str(text).ok()
}

const STEP_UP_RULE: &str = "a percentage between 0 and 100";

/// What is wrong with an instalment amount, whatever the scheme.
fn amount_problem(amount: Decimal) -> Option<&'static str> {
    if amount.scale() > 2 && amount.normalize().scale() > 2 {
        Some("at most two decimal places (paise)")
    } else if amount < Decimal::from(100) {
        Some("at least ₹100")
    } else if amount > MAX_SIP_AMOUNT {
        Some("at most ₹1,00,00,000 per instalment")
    } else {
        None
    }
}

/// What the scheme says against a SIP in it of `amount` (when given).
/// On the caller's connection (`conn`): a handler that holds a transaction must never wait
/// for a second connection from the pool, or one person's burst of writes holds every
/// connection while each waits for another, and the whole API answers 503 (issue 35).
async fn scheme_problems(
    state: &Shared,
    conn: &mut sqlx::PgConnection,
    scheme_code: i64,
    amount: Option<Decimal>,
) -> Result<Vec<(String, String)>, Problem> {
    let rules: Option<SchemeSipRules> = timed(
        state,
        sqlx::query_as(SCHEME_SIP_RULES)
            .bind(scheme_code)
            .fetch_optional(conn),
    )
    .await?;
    let mut errors = Vec::new();
    let mut fail =
        |field: &str, message: &str| errors.push((field.to_string(), message.to_string()));
    let Some(rules) = rules else {
        fail("scheme_code", "no such scheme");
        return Ok(errors);
    };
    if !rules.open {
        fail("scheme_code", "the scheme is not open for SIPs");
    }
    if let Some(amount) = amount {
        let min = rules.min.as_deref().and_then(|m| Decimal::from_str(m).ok());
        let max = rules.max.as_deref().and_then(|m| Decimal::from_str(m).ok());
        if min.is_some_and(|min| amount < min) {
            fail("amount", "below the scheme's minimum SIP amount");
        }
        if max.is_some_and(|max| amount > max) {
            fail("amount", "above the scheme's maximum SIP amount");
        }
    }
    Ok(errors)
}

async fn create_sip(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath(user): ApiPath<UserRef>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, Problem> {
    // One reading of the clock per request: the trigger's effective date, the batch date
    // and "today" all come from it.
    let now = state.clock.now();
    let user_id = authed.reach(user, true)?;
    let key = idempotency_key(&headers)?;
    // Keys are compared on the request as JSON (object keys sorted), not on its bytes.
    let request = body.to_string();
    // The key is looked up before the body is validated: a retry after the start date has
    // passed, or after the scheme closed, replays the stored 201 rather than answering 422.
    let mut tx = state.pool.begin().await?;
    if let Some(key) = &key {
        if let Some(replay) = claim_or_replay(&mut tx, user_id, key, "create_sip", &request).await?
        {
            return Ok(replay);
        }
    }
    let sip: NewSip = serde_json::from_value(body).map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation Failed",
            e.to_string(),
        )
    })?;
    let mut errors = Vec::new();
    let mut fail =
        |field: &str, message: &str| errors.push((field.to_string(), message.to_string()));
    let amount = sip.amount.as_ref().and_then(decimal);
    match amount {
        None => fail("amount", "required, a decimal amount in rupees"),
        Some(a) => {
            if let Some(problem) = amount_problem(a) {
                fail("amount", problem);
            }
        }
    }
    if !sip.sip_day.is_some_and(|d| (1..=28).contains(&d)) {
        fail("sip_day", "required, between 1 and 28");
    }
    let today = serving::clock::date_ist(now);
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
    if step_up.is_none_or(|s| s < Decimal::ZERO || s > Decimal::from(100)) {
        fail("step_up_pct", STEP_UP_RULE);
    }
    match sip.scheme_code {
        None => fail("scheme_code", "required"),
        Some(code) => errors.extend(scheme_problems(&state, &mut tx, code, amount).await?),
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    if locked_open_mandates(&mut tx, user_id, OPEN_SIPS, today).await? >= MAX_OPEN_SIPS {
        return Err(Problem::conflict(format!(
            "at most {MAX_OPEN_SIPS} active or paused SIPs per user: cancel one first"
        )));
    }
    sqlx::query(MARK_CHANGE)
        .bind("create")
        .bind(now.to_rfc3339())
        .execute(&mut *tx)
        .await?;
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
    let change: LatestChange = sqlx::query_as(LATEST_CHANGE)
        .bind(created.sip_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
    let body = serde_json::to_string(&schedule(&state, created, change)).map_err(|e| {
        tracing::error!(error = %e, "response not serialisable");
        Problem::internal()
    })?;
    if let Some(key) = &key {
        // In the SIP's own transaction: committed together or not at all.
        store_response(&mut tx, user_id, key, StatusCode::CREATED, &body).await?;
    }
    tx.commit().await?;
    let mut response = json_body(Bytes::from(body));
    *response.status_mut() = StatusCode::CREATED;
    Ok(response)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SipChange {
    /// Pause: the last day whose instalment is skipped. An instalment due on `until` is
    /// skipped; one due the day after runs. Without it, the SIP stays paused until resumed.
    #[serde(default, deserialize_with = "super::extract::not_null")]
    until: Option<NaiveDate>,
}

async fn change_sip(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath((user, sip_id, action)): ApiPath<(UserRef, i64, String)>,
    body: Bytes,
) -> Result<Response, Problem> {
    // One reading of the clock per request: the trigger's effective date, the batch date
    // and "today" all come from it.
    let now = state.clock.now();
    let user_id = authed.reach(user, true)?;
    let change: SipChange = if body.is_empty() {
        SipChange::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Validation Failed",
                e.to_string(),
            )
        })?
    };
    let (set, allowed_from) = match action.as_str() {
        "pause" => {
            if change
                .until
                .is_some_and(|u| u < serving::clock::date_ist(now))
            {
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
    let mut tx = state.pool.begin().await?;
    sqlx::query(MARK_CHANGE)
        .bind(action.as_str())
        .bind(now.to_rfc3339())
        .execute(&mut *tx)
        .await?;
    let changed: Option<Sip> = timed(
        &state,
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE sips SET {set}, updated_at = sipline_now() \
             WHERE sip_id = $1 AND user_id = $2 AND status IN ({allowed_from}) RETURNING {SIP_COLUMNS}"
        )))
        .bind(sip_id)
        .bind(user_id)
        .bind(change.until)
        .fetch_optional(&mut *tx),
    )
    .await?;
    match changed {
        Some(sip) => {
            let latest: LatestChange = sqlx::query_as(LATEST_CHANGE)
                .bind(sip.sip_id)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(json_value(&schedule(&state, sip, latest)))
        }
        None => Err(refused_change(&mut tx, SIP_STATUS, sip_id, user_id, &action, "SIP").await),
    }
}

/// The user's SIP, or a 404 (also when it is another user's).
async fn own_sip(state: &Shared, user_id: i64, sip_id: i64) -> Result<Sip, Problem> {
    let sip: Option<Sip> = timed(
        state,
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {SIP_COLUMNS} FROM sips WHERE sip_id = $1 AND user_id = $2"
        )))
        .bind(sip_id)
        .bind(user_id)
        .fetch_optional(&state.pool),
    )
    .await?;
    sip.ok_or_else(|| Problem::not_found("no such SIP"))
}

async fn sip_detail(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath((user, sip_id)): ApiPath<(UserRef, i64)>,
) -> Result<Response, Problem> {
    // One reading of the clock per request: the trigger's effective date, the batch date
    // and "today" all come from it.
    let now = state.clock.now();
    let user_id = authed.reach(user, false)?;
    let sip = own_sip(&state, user_id, sip_id).await?;
    let latest: Option<LatestChange> = sqlx::query_as(LATEST_CHANGE)
        .bind(sip_id)
        .bind(now)
        .fetch_optional(&state.pool)
        .await?;
    let latest = match latest {
        Some(latest) => latest,
        None => LatestChange {
            effective_from: None,
            batch_date: sqlx::query_scalar(CURRENT_BATCH_DATE)
                .bind(now)
                .fetch_one(&state.pool)
                .await?,
        },
    };
    let changes: Vec<SipChangeEntry> = timed(
        &state,
        sqlx::query_as(SIP_CHANGES)
            .bind(sip_id)
            .fetch_all(&state.pool),
    )
    .await?;
    Ok(json_value(&SipDetail {
        sip: schedule(&state, sip, latest),
        changes,
    }))
}

/// `PATCH`: new terms for the instalments not yet handed to the batch.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SipAmendment {
    #[serde(default, deserialize_with = "super::extract::not_null")]
    amount: Option<Value>,
    #[serde(default, deserialize_with = "super::extract::not_null")]
    step_up_pct: Option<Value>,
    #[serde(default, deserialize_with = "super::extract::not_null")]
    sip_day: Option<i64>,
    #[serde(default, deserialize_with = "super::extract::not_null")]
    end_date: Option<NaiveDate>,
}

async fn amend_sip(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath((user, sip_id)): ApiPath<(UserRef, i64)>,
    ApiJson(change): ApiJson<SipAmendment>,
) -> Result<Response, Problem> {
    // One reading of the clock per request: the trigger's effective date, the batch date
    // and "today" all come from it.
    let now = state.clock.now();
    let user_id = authed.reach(user, true)?;
    let current = own_sip(&state, user_id, sip_id).await?;
    if current.status == "cancelled" {
        return Err(Problem::conflict("cannot change a SIP that is cancelled"));
    }
    let mut errors = Vec::new();
    let mut fail =
        |field: &str, message: &str| errors.push((field.to_string(), message.to_string()));
    if change.amount.is_none()
        && change.step_up_pct.is_none()
        && change.sip_day.is_none()
        && change.end_date.is_none()
    {
        fail(
            "body",
            "change at least one of amount, step_up_pct, sip_day, end_date",
        );
    }
    let amount = match &change.amount {
        None => None,
        Some(v) => match decimal(v) {
            None => {
                fail("amount", "a decimal amount in rupees");
                None
            }
            Some(a) => {
                if let Some(problem) = amount_problem(a) {
                    fail("amount", problem);
                }
                Some(a)
            }
        },
    };
    let step_up = match &change.step_up_pct {
        None => None,
        Some(v) => {
            let s = decimal(v);
            if s.is_none_or(|s| s < Decimal::ZERO || s > Decimal::from(100)) {
                fail("step_up_pct", STEP_UP_RULE);
            }
            s
        }
    };
    if change.sip_day.is_some_and(|d| !(1..=28).contains(&d)) {
        fail("sip_day", "between 1 and 28");
    }
    if let Some(end) = change.end_date {
        if end < current.start_date || end < serving::clock::date_ist(now) {
            fail("end_date", "must not be before start_date or in the past");
        }
    }
    if amount.is_some() {
        let mut conn = state.pool.acquire().await?;
        errors.extend(scheme_problems(&state, &mut conn, current.scheme_code, amount).await?);
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let mut tx = state.pool.begin().await?;
    sqlx::query(MARK_CHANGE)
        .bind("amend")
        .bind(now.to_rfc3339())
        .execute(&mut *tx)
        .await?;
    let changed: Option<Sip> = timed(
        &state,
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE sips SET amount = coalesce($3, amount), step_up_pct = coalesce($4, step_up_pct), \
                    sip_day = coalesce($5, sip_day), end_date = coalesce($6, end_date), updated_at = sipline_now() \
             WHERE sip_id = $1 AND user_id = $2 AND status <> 'cancelled' RETURNING {SIP_COLUMNS}"
        )))
        .bind(sip_id)
        .bind(user_id)
        .bind(amount)
        .bind(step_up)
        .bind(change.sip_day.map(|d| d as i16))
        .bind(change.end_date)
        .fetch_optional(&mut *tx),
    )
    .await?;
    let Some(sip) = changed else {
        return Err(Problem::conflict("the SIP was cancelled meanwhile"));
    };
    let latest: LatestChange = sqlx::query_as(LATEST_CHANGE)
        .bind(sip.sip_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(json_value(&schedule(&state, sip, latest)))
}
