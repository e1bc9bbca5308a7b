//! NAV alerts: list, create and delete; `nav ingest` evaluates them.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::Router;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::extract::{locked_count, ApiJson, ApiPath, ApiQuery, Authed, UserRef};
use super::idempotency::{claim_or_replay, idempotency_key, store_response};
use super::sips::decimal;
use super::{json_body, json_value, next_cursor, timed, IdPage};
use crate::problem::Problem;
use crate::Shared;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route(
            "/users/{user_id}/alerts",
            get(list_alerts).post(create_alert),
        )
        .route("/users/{user_id}/alerts/{alert_id}", delete(delete_alert))
}

const ALERT_COLUMNS: &str =
    "alert_id, scheme_code, kind, threshold::text AS threshold, active, last_triggered_on";

/// Active alerts one user may hold: each is evaluated in every NAV ingest's transaction, so an
/// unbounded number from one token would slow every ingest (OWASP API4).
pub(super) const MAX_ACTIVE_ALERTS: i64 = 100;

const ACTIVE_ALERTS: &str = "SELECT count(*) FROM nav_alerts WHERE user_id = $1 AND active";

const SCHEME_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM schemes WHERE scheme_code = $1)";

const DELETE_ALERT: &str = "DELETE FROM nav_alerts WHERE alert_id = $1 AND user_id = $2";

/// A NAV alert: `above`/`below` a NAV, or a `daily_move_pct` in either direction.
#[derive(sqlx::FromRow, Serialize)]
struct Alert {
    alert_id: i64,
    scheme_code: i64,
    kind: String,
    threshold: String,
    active: bool,
    last_triggered_on: Option<NaiveDate>,
}

#[derive(Serialize)]
struct AlertList {
    alerts: Vec<Alert>,
    next_after: Option<i64>,
}

async fn list_alerts(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath(user): ApiPath<UserRef>,
    ApiQuery(page): ApiQuery<IdPage>,
) -> Result<Response, Problem> {
    let user_id = authed.reach(user, false)?;
    let (after, limit) = page.bounds()?;
    let alerts: Vec<Alert> = timed(
        &state,
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM nav_alerts WHERE user_id = $1 AND alert_id > $2 \
             ORDER BY alert_id LIMIT $3"
        )))
        .bind(user_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&state.pool),
    )
    .await?;
    let next_after = next_cursor(alerts.iter().map(|a| a.alert_id), limit);
    Ok(json_value(&AlertList { alerts, next_after }))
}

#[derive(Deserialize)]
struct NewAlert {
    scheme_code: Option<i64>,
    kind: Option<String>,
    threshold: Option<Value>,
}

async fn create_alert(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath(user): ApiPath<UserRef>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, Problem> {
    let user_id = authed.reach(user, true)?;
    let key = idempotency_key(&headers)?;
    // Keys are compared on the request as JSON (object keys sorted), not on its bytes.
    let request = body.to_string();
    let alert: NewAlert = serde_json::from_value(body).map_err(|e| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation Failed",
            e.to_string(),
        )
    })?;
    // Looked up before validation, as for SIPs: a retry replays the first answer.
    let mut tx = state.pool.begin().await?;
    if let Some(key) = &key {
        if let Some(replay) =
            claim_or_replay(&mut tx, user_id, key, "create_alert", &request).await?
        {
            return Ok(replay);
        }
    }
    let mut errors = Vec::new();
    if !matches!(
        alert.kind.as_deref(),
        Some("above" | "below" | "daily_move_pct")
    ) {
        errors.push(("kind".into(), "one of above, below, daily_move_pct".into()));
    }
    let threshold = alert.threshold.as_ref().and_then(decimal);
    // numeric(18,4): at most 14 integer digits; far beyond any NAV, so refuse what cannot fit.
    let fits = |t: Decimal| t < Decimal::from(100_000_000_000_000_i64);
    if !threshold.is_some_and(|t| t > Decimal::ZERO && t.normalize().scale() <= 4 && fits(t)) {
        errors.push((
            "threshold".into(),
            "a positive decimal, at most 4 places".into(),
        ));
    }
    let exists = match alert.scheme_code {
        Some(code) => {
            timed(
                &state,
                // In the open transaction: never a second connection while holding one.
                sqlx::query_scalar::<_, bool>(SCHEME_EXISTS)
                    .bind(code)
                    .fetch_one(&mut *tx),
            )
            .await?
        }
        None => false,
    };
    if !exists {
        errors.push(("scheme_code".into(), "no such scheme".into()));
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    if locked_count(&mut tx, user_id, ACTIVE_ALERTS).await? >= MAX_ACTIVE_ALERTS {
        return Err(Problem::conflict(format!(
            "at most {MAX_ACTIVE_ALERTS} active NAV alerts per user: delete one first"
        )));
    }
    // The same rule twice would notify twice for one NAV: the unique index (migration 0015)
    // refuses it, and the caller learns which alert already says it.
    let created: Option<Alert> = timed(
        &state,
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO nav_alerts (user_id, scheme_code, kind, threshold) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, scheme_code, kind, threshold) WHERE active DO NOTHING \
             RETURNING {ALERT_COLUMNS}"
        )))
        .bind(user_id)
        .bind(alert.scheme_code)
        .bind(&alert.kind)
        .bind(threshold)
        .fetch_optional(&mut *tx),
    )
    .await?;
    let Some(created) = created else {
        return Err(Problem::conflict(
            "an active alert with this scheme, kind and threshold exists already",
        ));
    };
    let body = serde_json::to_string(&created).map_err(|e| {
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

async fn delete_alert(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath((user, alert_id)): ApiPath<(UserRef, i64)>,
) -> Result<Response, Problem> {
    let user_id = authed.reach(user, true)?;
    let deleted = timed(
        &state,
        sqlx::query(DELETE_ALERT)
            .bind(alert_id)
            .bind(user_id)
            .execute(&state.pool),
    )
    .await?
    .rows_affected();
    if deleted == 0 {
        return Err(Problem::not_found("no such alert"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
