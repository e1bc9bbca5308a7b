//! Systematic withdrawal and transfer plans (issue 36): start an SWP (a fixed amount redeemed
//! from a scheme each month) or an STP (a fixed amount switched into another scheme of the
//! same fund house each month), list them, read one with its next instalment, and pause,
//! resume or cancel it. PostgreSQL is their system of record; `orders execute` places each
//! instalment as an order for its NAV date (`pipeline::orders::plans`), so an instalment shows
//! in the person's orders with its `plan_id`, and one the source cannot pay stops the plan
//! (`status` stopped, `stopped_reason`) with a notification. A change counts from the instant
//! it is made: an instalment whose NAV date's cut-off (15:00 IST) comes after a pause is
//! skipped; one whose cut-off has passed is already placed.

use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use pipeline::orders::plans::{PlanInstalment, PlanKind, PlanSchedule, PlanStatus};
use pipeline::sip::{has_run_its_course, COMPLETED};

use super::extract::{
    locked_open_mandates, refused_change, ApiJson, ApiPath, ApiQuery, Authed, UserRef,
};
use super::idempotency::{claim_or_replay, idempotency_key, store_response};
use super::orders::{
    positive, switch_target_problem, SchemeOrderRules, MAX_ORDER_AMOUNT, SCHEME_ORDER_RULES,
};
use super::{json_body, json_value, next_cursor, timed, IdPage};
use crate::problem::Problem;
use crate::Shared;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/users/{user_id}/plans", get(list_plans).post(create_plan))
        .route("/users/{user_id}/plans/{plan_id}", get(plan_detail))
        .route(
            "/users/{user_id}/plans/{plan_id}/{action}",
            post(change_plan),
        )
}

/// Plans one user may have active or paused: each places an order a month. Plans whose end
/// date has passed are done and do not count.
const MAX_OPEN_PLANS: i64 = 20;
/// The smallest instalment, as for a lumpsum purchase.
const MIN_INSTALMENT: Decimal = Decimal::from_parts(100, 0, 0, false, 0);

const OPEN_PLANS: &str = "SELECT count(*) FROM plans WHERE user_id = $1 \
     AND status IN ('active', 'paused') AND (end_date IS NULL OR end_date >= $2)";

const PLAN_COLUMNS: &str = "plan_id, user_id, kind, scheme_code, target_scheme_code, \
     amount::text AS amount, plan_day::integer AS plan_day, start_date, end_date, status, \
     stopped_reason, created_at";

const PLAN_STATUS: &str = "SELECT status FROM plans WHERE plan_id = $1 AND user_id = $2";

/// Whether the person holds units of the scheme, as the latest publication shows.
const HOLDS_UNITS: &str = "SELECT coalesce(sum(units), 0) > 0 FROM portfolio_lines_latest \
     WHERE user_id = $1 AND scheme_code = $2";

#[derive(sqlx::FromRow)]
struct PlanRow {
    plan_id: i64,
    user_id: i64,
    kind: String,
    scheme_code: i64,
    target_scheme_code: Option<i64>,
    amount: String,
    plan_day: i32,
    start_date: NaiveDate,
    end_date: Option<NaiveDate>,
    status: String,
    stopped_reason: Option<String>,
    created_at: DateTime<Utc>,
}

/// A plan as the API shows it, with the next instalment it places while active.
#[derive(Serialize)]
struct Plan {
    plan_id: i64,
    user_id: i64,
    kind: String,
    scheme_code: i64,
    target_scheme_code: Option<i64>,
    amount: String,
    plan_day: i32,
    start_date: NaiveDate,
    end_date: Option<NaiveDate>,
    status: String,
    stopped_reason: Option<String>,
    created_at: DateTime<Utc>,
    next_instalment: Option<NextInstalment>,
}

#[derive(Serialize)]
struct NextInstalment {
    due_date: NaiveDate,
    /// The date of the NAV it is executed at: the due date, or the next business day.
    nav_date: NaiveDate,
}

#[derive(Serialize)]
struct PlanList {
    plans: Vec<Plan>,
    next_after: Option<i64>,
}

fn shown(state: &Shared, row: PlanRow, now: DateTime<Utc>) -> Plan {
    let ist = serving::clock::ist();
    let schedule = PlanSchedule {
        plan_day: u32::try_from(row.plan_day).unwrap_or(0),
        start_date: row.start_date,
        end_date: row.end_date,
    };
    let next_instalment = (row.status == PlanStatus::Active.as_str())
        .then(|| schedule.next_instalment(&state.calendar, now.with_timezone(&ist).naive_local()))
        .flatten()
        .map(|PlanInstalment { due_date, nav_date }| NextInstalment { due_date, nav_date });
    // Past its end date and its last NAV date, a plan that was never cancelled or stopped has
    // run its course; the stored status stays as last set.
    let status =
        if matches!(
            PlanStatus::parse(&row.status),
            Some(PlanStatus::Active | PlanStatus::Paused)
        ) && has_run_its_course(&state.calendar, row.end_date, serving::clock::date_ist(now))
        {
            COMPLETED.to_string()
        } else {
            row.status
        };
    Plan {
        plan_id: row.plan_id,
        user_id: row.user_id,
        kind: row.kind,
        scheme_code: row.scheme_code,
        target_scheme_code: row.target_scheme_code,
        amount: row.amount,
        plan_day: row.plan_day,
        start_date: row.start_date,
        end_date: row.end_date,
        status,
        stopped_reason: row.stopped_reason,
        created_at: row.created_at,
        next_instalment,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPlan {
    kind: Option<String>,
    scheme_code: Option<i64>,
    #[serde(default, deserialize_with = "super::extract::not_null")]
    target_scheme_code: Option<i64>,
    amount: Option<Value>,
    plan_day: Option<i64>,
    #[serde(default, deserialize_with = "super::extract::not_null")]
    start_date: Option<NaiveDate>,
    #[serde(default, deserialize_with = "super::extract::not_null")]
    end_date: Option<NaiveDate>,
}

async fn list_plans(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath(user): ApiPath<UserRef>,
    ApiQuery(page): ApiQuery<IdPage>,
) -> Result<Response, Problem> {
    let now = state.clock.now();
    let user_id = authed.reach(user, false)?;
    let (after, limit) = page.bounds()?;
    let rows: Vec<PlanRow> = timed(
        &state,
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {PLAN_COLUMNS} FROM plans WHERE user_id = $1 AND plan_id > $2 \
             ORDER BY plan_id LIMIT $3"
        )))
        .bind(user_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&state.pool),
    )
    .await?;
    let next_after = next_cursor(rows.iter().map(|p| p.plan_id), limit);
    let plans = rows.into_iter().map(|r| shown(&state, r, now)).collect();
    Ok(json_value(&PlanList { plans, next_after }))
}

async fn plan_detail(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath((user, plan_id)): ApiPath<(UserRef, i64)>,
) -> Result<Response, Problem> {
    let now = state.clock.now();
    let user_id = authed.reach(user, false)?;
    let row: Option<PlanRow> = timed(
        &state,
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {PLAN_COLUMNS} FROM plans WHERE plan_id = $1 AND user_id = $2"
        )))
        .bind(plan_id)
        .bind(user_id)
        .fetch_optional(&state.pool),
    )
    .await?;
    row.map(|r| json_value(&shown(&state, r, now)))
        .ok_or_else(|| Problem::not_found("no such plan"))
}

async fn create_plan(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath(user): ApiPath<UserRef>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, Problem> {
    let now = state.clock.now();
    let user_id = authed.reach(user, true)?;
    let key = idempotency_key(&headers)?;
    let request = body.to_string();
    let mut tx = state.pool.begin().await?;
    if let Some(key) = &key {
        if let Some(replay) =
            claim_or_replay(&mut tx, user_id, key, "create_plan", &request).await?
        {
            return Ok(replay);
        }
    }
    let plan: NewPlan = serde_json::from_value(body).map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation Failed",
            e.to_string(),
        )
    })?;
    let mut errors: Vec<(String, String)> = Vec::new();
    let mut fail = |field: &str, message: &str| errors.push((field.into(), message.into()));
    // The person's row is locked first: two plans at once see each other in the quota.
    let open_plans =
        locked_open_mandates(&mut tx, user_id, OPEN_PLANS, serving::clock::date_ist(now)).await?;
    let kind = plan.kind.as_deref().and_then(PlanKind::parse);
    if kind.is_none() {
        fail("kind", "required, one of swp, stp");
    }
    let transfer = kind == Some(PlanKind::Transfer);
    let amount = plan.amount.as_ref().and_then(|a| positive(a, 2));
    match amount {
        None => fail(
            "amount",
            "required, a decimal amount in rupees, at most two decimal places",
        ),
        Some(a) if a < MIN_INSTALMENT => fail("amount", "at least ₹100 an instalment"),
        Some(a) if a > MAX_ORDER_AMOUNT => fail("amount", "at most ₹1,00,00,000 an instalment"),
        Some(_) => {}
    }
    if !plan.plan_day.is_some_and(|d| (1..=28).contains(&d)) {
        fail("plan_day", "required, between 1 and 28");
    }
    let today = serving::clock::date_ist(now);
    let start_date = plan.start_date.unwrap_or(today);
    if start_date < today {
        fail("start_date", "must not be in the past");
    }
    if plan.end_date.is_some_and(|end| end < start_date) {
        fail("end_date", "must not be before start_date");
    }
    if transfer != plan.target_scheme_code.is_some() {
        fail(
            "target_scheme_code",
            "required for an STP, and only for an STP",
        );
    }
    match plan.scheme_code {
        None => fail("scheme_code", "required"),
        Some(code) => {
            let rules: Option<SchemeOrderRules> = timed(
                &state,
                sqlx::query_as(SCHEME_ORDER_RULES)
                    .bind(code)
                    .fetch_optional(&mut *tx),
            )
            .await?;
            match rules {
                None => fail("scheme_code", "no such scheme"),
                Some(rules) => {
                    if !rules.open {
                        fail("scheme_code", "the scheme is not open-ended");
                    }
                    let minimum = rules
                        .min_redemption
                        .as_deref()
                        .and_then(|m| Decimal::from_str(m).ok());
                    if let (Some(a), Some(min)) = (amount, minimum) {
                        if a < min {
                            fail("amount", "below the scheme's minimum redemption");
                        }
                    }
                    let holds: bool = timed(
                        &state,
                        sqlx::query_scalar(HOLDS_UNITS)
                            .bind(user_id)
                            .bind(code)
                            .fetch_one(&mut *tx),
                    )
                    .await?;
                    if !holds {
                        fail("scheme_code", "no units of the scheme are held");
                    }
                    if let Some(target) = plan.target_scheme_code.filter(|_| transfer) {
                        if let Some(problem) =
                            switch_target_problem(&state, &mut tx, &rules, code, target).await?
                        {
                            fail("target_scheme_code", problem);
                        }
                    }
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    if open_plans >= MAX_OPEN_PLANS {
        return Err(Problem::conflict(format!(
            "at most {MAX_OPEN_PLANS} active or paused SWPs and STPs per user: cancel one first"
        )));
    }
    let created: PlanRow = timed(
        &state,
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO plans (user_id, kind, scheme_code, target_scheme_code, amount, plan_day, \
                                start_date, end_date, created_at, active_since) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING {PLAN_COLUMNS}"
        )))
        .bind(user_id)
        .bind(kind.map(PlanKind::as_str))
        .bind(plan.scheme_code)
        .bind(plan.target_scheme_code)
        .bind(amount)
        .bind(plan.plan_day.map(|d| d as i16))
        .bind(start_date)
        .bind(plan.end_date)
        .bind(now)
        .fetch_one(&mut *tx),
    )
    .await?;
    let body = serde_json::to_string(&shown(&state, created, now)).map_err(|e| {
        tracing::error!(error = %e, "response not serialisable");
        Problem::internal()
    })?;
    if let Some(key) = &key {
        store_response(&mut tx, user_id, key, StatusCode::CREATED, &body).await?;
    }
    tx.commit().await?;
    let mut response = json_body(Bytes::from(body));
    *response.status_mut() = StatusCode::CREATED;
    Ok(response)
}

async fn change_plan(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath((user, plan_id, action)): ApiPath<(UserRef, i64, String)>,
) -> Result<Response, Problem> {
    let now = state.clock.now();
    let user_id = authed.reach(user, true)?;
    // A stopped plan can be resumed once the source is topped up, or cancelled. A resume
    // before the first cut-off after the pause (15:00 IST that day, or the next day's) undoes
    // the pause: no instalment's cut-off fell inside it, so the plan stays live from when it
    // was, and the night's run still places the instalment whose cut-off came before it.
    let (set, allowed_from) = match action.as_str() {
        "pause" => ("status = 'paused', inactive_since = $3", "'active'"),
        "resume" => (
            "status = 'active', \
             active_since = CASE WHEN (date_trunc('day', inactive_since AT TIME ZONE 'Asia/Kolkata') \
                 + INTERVAL '15 hours' \
                 + CASE WHEN (inactive_since AT TIME ZONE 'Asia/Kolkata')::time > TIME '15:00' \
                        THEN INTERVAL '1 day' ELSE INTERVAL '0' END) AT TIME ZONE 'Asia/Kolkata' >= $3 \
               THEN active_since ELSE $3 END, \
             inactive_since = NULL, stopped_reason = NULL",
            "'paused', 'stopped'",
        ),
        "cancel" => (
            "status = 'cancelled', inactive_since = coalesce(inactive_since, $3), \
             stopped_reason = NULL",
            "'active', 'paused', 'stopped'",
        ),
        _ => return Err(Problem::not_found("actions are pause, resume and cancel")),
    };
    let mut tx = state.pool.begin().await?;
    // A stopped plan resumed comes back into the quota: checked under the person's lock.
    if action == "resume" {
        let open =
            locked_open_mandates(&mut tx, user_id, OPEN_PLANS, serving::clock::date_ist(now))
                .await?;
        let status: Option<String> = sqlx::query_scalar(PLAN_STATUS)
            .bind(plan_id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
        if status.as_deref() == Some(PlanStatus::Stopped.as_str()) && open >= MAX_OPEN_PLANS {
            return Err(Problem::conflict(format!(
                "at most {MAX_OPEN_PLANS} active or paused SWPs and STPs per user: cancel one first"
            )));
        }
    }
    let changed: Option<PlanRow> = timed(
        &state,
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE plans SET {set} WHERE plan_id = $1 AND user_id = $2 \
             AND status IN ({allowed_from}) RETURNING {PLAN_COLUMNS}"
        )))
        .bind(plan_id)
        .bind(user_id)
        .bind(now)
        .fetch_optional(&mut *tx),
    )
    .await?;
    match changed {
        Some(row) => {
            tx.commit().await?;
            Ok(json_value(&shown(&state, row, now)))
        }
        None => Err(refused_change(&mut tx, PLAN_STATUS, plan_id, user_id, &action, "plan").await),
    }
}
