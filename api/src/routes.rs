//! Routes, extractors and middleware. Every `/v1/users/{user_id}/…` route checks the caller:
//! a user reaches only their own id; a service token reads any user and writes none. Another
//! user's data answers 404, the same as a user that does not exist, so ids cannot be probed.

use std::str::FromStr;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Request, State};
use axum::http::{header, request::Parts, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::Row;
use tracing::Instrument;

use crate::problem::Problem;
use crate::Shared;

pub fn router(state: Shared) -> Router {
    let v1 = Router::new()
        .route("/schemes/{scheme_code}/nav", get(latest_nav))
        .route("/schemes/{scheme_code}/navs", get(nav_history))
        .route("/users/{user_id}/portfolio", get(portfolio))
        .route("/users/{user_id}/charts/{graph_type}", get(chart))
        .route("/users/{user_id}/sips", get(list_sips).post(create_sip))
        .route("/users/{user_id}/sips/{sip_id}/{action}", post(change_sip))
        .route("/users/{user_id}/notifications", get(list_notifications))
        .route(
            "/users/{user_id}/notifications/{notification_id}/read",
            post(mark_read),
        )
        .route(
            "/users/{user_id}/alerts",
            get(list_alerts).post(create_alert),
        )
        .route("/users/{user_id}/alerts/{alert_id}", delete(delete_alert));
    Router::new()
        .nest("/v1", v1)
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .fallback(|| async { Problem::not_found("no such route") })
        .layer(DefaultBodyLimit::max(16 * 1024))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Request id, timeout, access log and latency histogram, around every request.
async fn observe(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| format!("{:016x}", rand::random::<u64>()), str::to_string);
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let span = tracing::info_span!("request", %request_id, %method, %route);
    let started = Instant::now();
    let mut response = match tokio::time::timeout(
        state.request_timeout,
        next.run(request).instrument(span.clone()),
    )
    .await
    {
        Ok(response) => response,
        Err(_) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            "the request took too long",
        )
        .into_response(),
    };
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state
        .metrics
        .observe_request(&method, &route, status, elapsed);
    tracing::debug!(parent: &span, status, elapsed_us = elapsed.as_micros() as u64, "request");
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// `Json`, `Path` and `Query` whose rejections are problem documents too.
pub struct ApiJson<T>(pub T);
pub struct ApiPath<T>(pub T);
pub struct ApiQuery<T>(pub T);

fn rejected(status: StatusCode, text: String) -> Problem {
    let title = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "Payload Too Large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "Unsupported Media Type",
        StatusCode::UNPROCESSABLE_ENTITY => "Validation Failed",
        _ => "Bad Request",
    };
    Problem::new(status, title, text)
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;
    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        axum::Json::<T>::from_request(request, state)
            .await
            .map(|axum::Json(v)| Self(v))
            .map_err(|e: JsonRejection| rejected(e.status(), e.body_text()))
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Self(v))
            .map_err(|e: PathRejection| rejected(StatusCode::BAD_REQUEST, e.body_text()))
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Self(v))
            .map_err(|e: QueryRejection| rejected(StatusCode::BAD_REQUEST, e.body_text()))
    }
}

/// The verified caller, and their user id if the subject is a known user.
pub struct Authed {
    caller: crate::auth::Caller,
    user_id: Option<i64>,
}

impl FromRequestParts<Shared> for Authed {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Problem> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .ok_or_else(|| Problem::unauthorized("a bearer token is required"))?;
        let caller = state.verifier.verify(token.trim()).await.map_err(|e| {
            if let crate::auth::AuthError::Jwks(reason) = &e {
                tracing::error!(reason, "JWKS unavailable");
            }
            Problem::unauthorized("the token is not valid")
        })?;
        let known = state
            .subjects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&caller.subject)
            .copied();
        let user_id = match known {
            Some(id) => Some(id),
            None => {
                let found: Option<i64> =
                    sqlx::query_scalar("SELECT user_id FROM users WHERE auth_subject = $1")
                        .bind(&caller.subject)
                        .fetch_optional(&state.pool)
                        .await?;
                if let Some(id) = found {
                    let mut subjects = state.subjects.lock().unwrap_or_else(|e| e.into_inner());
                    if subjects.len() > 1_000_000 {
                        subjects.clear();
                    }
                    subjects.insert(caller.subject.clone(), id);
                }
                found
            }
        };
        Ok(Self { caller, user_id })
    }
}

impl Authed {
    /// May the caller read (or, with `write`, change) `user_id`'s data?
    fn reach(&self, user_id: i64, write: bool) -> Result<(), Problem> {
        if self.user_id == Some(user_id) {
            return Ok(());
        }
        if self.caller.service {
            return if write {
                Err(Problem::forbidden(
                    "a service token reads; only the user writes",
                ))
            } else {
                Ok(())
            };
        }
        Err(Problem::not_found("no such user"))
    }
}

fn json_body(body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn json_value(value: &Value) -> Response {
    json_body(Bytes::from(value.to_string()))
}

/// Timestamps as clients parse them: RFC 3339, UTC, milliseconds.
fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Runs a query future, timing it into the database histogram.
async fn timed<T>(state: &Shared, query: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let out = query.await;
    state.metrics.db_query.observe(started.elapsed());
    out
}

async fn readyz(State(state): State<Shared>) -> Response {
    let expected = crate::MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let applied: Result<Option<i64>, _> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&state.pool)
            .await;
    match applied {
        Ok(Some(version)) if version >= expected => (StatusCode::OK, "ready").into_response(),
        Ok(version) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            format!(
                "migrations behind: database at {}, this build needs {expected}",
                version.unwrap_or(0)
            ),
        )
        .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                "database unreachable",
            )
            .into_response()
        }
    }
}

async fn metrics(State(state): State<Shared>) -> Response {
    let body = state.metrics.render(&state.caches, &state.pool);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn openapi() -> Response {
    json_value(&crate::openapi::document())
}

async fn latest_nav(
    State(state): State<Shared>,
    _authed: Authed,
    ApiPath(scheme_code): ApiPath<i64>,
) -> Result<Response, Problem> {
    if let Some(body) = state.caches.nav.get(&scheme_code) {
        return Ok(json_body(body));
    }
    let row = timed(
        &state,
        sqlx::query(
            "SELECT s.scheme_code, s.scheme_name, s.fund_house, s.category, sipline_nav_text(n.nav) AS nav, n.nav_date \
             FROM schemes s JOIN LATERAL (SELECT nav, nav_date FROM navs WHERE scheme_code = s.scheme_code \
                                          ORDER BY nav_date DESC LIMIT 1) n ON true \
             WHERE s.scheme_code = $1",
        )
        .bind(scheme_code)
        .fetch_optional(&state.pool),
    )
    .await?
    .ok_or_else(|| Problem::not_found("no NAV published for this scheme"))?;
    let body = Bytes::from(
        json!({
            "scheme_code": row.get::<i64, _>("scheme_code"),
            "scheme_name": row.get::<String, _>("scheme_name"),
            "fund_house": row.get::<Option<String>, _>("fund_house"),
            "category": row.get::<Option<String>, _>("category"),
            "nav": row.get::<String, _>("nav"),
            "nav_date": row.get::<NaiveDate, _>("nav_date").to_string(),
        })
        .to_string(),
    );
    state.caches.nav.insert(scheme_code, body.clone());
    Ok(json_body(body))
}

#[derive(Deserialize)]
struct HistoryQuery {
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    limit: Option<i64>,
}

async fn nav_history(
    State(state): State<Shared>,
    _authed: Authed,
    ApiPath(scheme_code): ApiPath<i64>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Response, Problem> {
    let limit = query.limit.unwrap_or(366);
    if !(1..=5000).contains(&limit) {
        return Err(Problem::bad_request("limit must be between 1 and 5000"));
    }
    let rows = timed(
        &state,
        sqlx::query(
            "SELECT nav_date, sipline_nav_text(nav) AS nav FROM navs WHERE scheme_code = $1 \
             AND ($2::date IS NULL OR nav_date >= $2) AND ($3::date IS NULL OR nav_date <= $3) \
             ORDER BY nav_date DESC LIMIT $4",
        )
        .bind(scheme_code)
        .bind(query.from)
        .bind(query.to)
        .bind(limit)
        .fetch_all(&state.pool),
    )
    .await?;
    if rows.is_empty() {
        return Err(Problem::not_found("no NAVs for this scheme in that range"));
    }
    let navs: Vec<Value> = rows
        .iter()
        .map(|r| json!({ "nav_date": r.get::<NaiveDate, _>("nav_date").to_string(), "nav": r.get::<String, _>("nav") }))
        .collect();
    Ok(json_value(
        &json!({ "scheme_code": scheme_code, "navs": navs }),
    ))
}

async fn portfolio(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath(user_id): ApiPath<i64>,
) -> Result<Response, Problem> {
    authed.reach(user_id, false)?;
    if let Some(body) = state.caches.portfolio.get(&user_id) {
        return Ok(json_body(body));
    }
    // One statement, so the summary and the lines come from the same published date.
    let row = timed(
        &state,
        sqlx::query(
            "SELECT p.as_of, p.invested::text AS invested, p.current_value::text AS current_value, \
                    p.gain::text AS gain, p.abs_return_pct::text AS abs_return_pct, \
                    CASE WHEN p.xirr = 'NaN' THEN NULL ELSE p.xirr END AS xirr, p.schemes, p.nav_date, \
                    coalesce((SELECT json_agg(json_build_object( \
                        'scheme_code', l.scheme_code, 'scheme_name', s.scheme_name, 'units', l.units::text, \
                        'invested', l.invested::text, 'nav', sipline_nav_text(l.nav), 'nav_date', l.nav_date, \
                        'current_value', l.current_value::text, 'weight_pct', l.weight_pct::text) \
                        ORDER BY l.current_value DESC, l.scheme_code) \
                      FROM portfolio_lines l LEFT JOIN schemes s USING (scheme_code) \
                      WHERE l.as_of = p.as_of AND l.user_id = p.user_id), '[]')::text AS lines \
             FROM portfolio_latest p WHERE p.user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(&state.pool),
    )
    .await?
    .ok_or_else(|| Problem::not_found("no portfolio published for this user"))?;
    let lines: Value = serde_json::from_str(&row.get::<String, _>("lines")).map_err(|e| {
        tracing::error!(error = %e, "portfolio lines are not JSON");
        Problem::internal()
    })?;
    let body = Bytes::from(
        json!({
            "user_id": user_id,
            "as_of": row.get::<NaiveDate, _>("as_of").to_string(),
            "invested": row.get::<String, _>("invested"),
            "current_value": row.get::<String, _>("current_value"),
            "gain": row.get::<String, _>("gain"),
            "abs_return_pct": row.get::<Option<String>, _>("abs_return_pct"),
            "xirr": row.get::<Option<f64>, _>("xirr"),
            "schemes": row.get::<i32, _>("schemes"),
            "nav_date": row.get::<Option<NaiveDate>, _>("nav_date").map(|d| d.to_string()),
            "lines": lines,
        })
        .to_string(),
    );
    state.caches.portfolio.insert(user_id, body.clone());
    Ok(json_body(body))
}

async fn chart(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath((user_id, graph_type)): ApiPath<(i64, String)>,
) -> Result<Response, Problem> {
    let Some(graph_type) = serving::GraphType::parse(&graph_type) else {
        return Err(Problem::bad_request(format!(
            "chart type must be {}",
            serving::GraphType::listed()
        )));
    };
    let graph_type = graph_type.as_str();
    authed.reach(user_id, false)?;
    let key = (user_id, graph_type);
    if let Some(body) = state.caches.graph.get(&key) {
        return Ok(json_body(body));
    }
    let config: String = timed(
        &state,
        sqlx::query_scalar(
            "SELECT config::text FROM visibility_graphs_latest WHERE user_id = $1 AND graph_type = $2",
        )
        .bind(user_id)
        .bind(graph_type)
        .fetch_optional(&state.pool),
    )
    .await?
    .ok_or_else(|| Problem::not_found("no chart published for this user"))?;
    let body = Bytes::from(config);
    state.caches.graph.insert(key, body.clone());
    Ok(json_body(body))
}

const SIP_COLUMNS: &str =
    "sip_id, user_id, scheme_code, amount::text AS amount, sip_day, start_date, end_date, \
     step_up_pct::text AS step_up_pct, status, paused_until, created_at, updated_at";

fn sip_json(row: &sqlx::postgres::PgRow) -> Value {
    json!({
        "sip_id": row.get::<i64, _>("sip_id"),
        "user_id": row.get::<i64, _>("user_id"),
        "scheme_code": row.get::<i64, _>("scheme_code"),
        "amount": row.get::<String, _>("amount"),
        "sip_day": row.get::<i16, _>("sip_day"),
        "start_date": row.get::<NaiveDate, _>("start_date").to_string(),
        "end_date": row.get::<Option<NaiveDate>, _>("end_date").map(|d| d.to_string()),
        "step_up_pct": row.get::<String, _>("step_up_pct"),
        "status": row.get::<String, _>("status"),
        "paused_until": row.get::<Option<NaiveDate>, _>("paused_until").map(|d| d.to_string()),
    })
}

async fn list_sips(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath(user_id): ApiPath<i64>,
) -> Result<Response, Problem> {
    authed.reach(user_id, false)?;
    let rows = timed(
        &state,
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SIP_COLUMNS} FROM sips WHERE user_id = $1 ORDER BY sip_id"
        )))
        .bind(user_id)
        .fetch_all(&state.pool),
    )
    .await?;
    let sips: Vec<Value> = rows.iter().map(sip_json).collect();
    Ok(json_value(&json!({ "sips": sips })))
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
fn decimal(value: &Value) -> Option<Decimal> {
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
    ApiPath(user_id): ApiPath<i64>,
    ApiJson(sip): ApiJson<NewSip>,
) -> Result<Response, Problem> {
    authed.reach(user_id, true)?;
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
            let row = timed(
                &state,
                sqlx::query(
                    "SELECT coalesce(scheme_type ILIKE 'Open Ended%', false) AS open, \
                            sip_min_amount::text AS min, sip_max_amount::text AS max \
                     FROM schemes WHERE scheme_code = $1",
                )
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
        if !row.get::<bool, _>("open") {
            fail("scheme_code", "the scheme is not open for SIPs");
        }
        let min = row
            .get::<Option<String>, _>("min")
            .and_then(|m| Decimal::from_str(&m).ok());
        let max = row
            .get::<Option<String>, _>("max")
            .and_then(|m| Decimal::from_str(&m).ok());
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
    let row = timed(
        &state,
        sqlx::query(sqlx::AssertSqlSafe(format!(
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
        .fetch_one(&state.pool),
    )
    .await?;
    let mut response = json_value(&sip_json(&row));
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
    ApiPath((user_id, sip_id, action)): ApiPath<(i64, i64, String)>,
    body: Bytes,
) -> Result<Response, Problem> {
    authed.reach(user_id, true)?;
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
    let row = timed(
        &state,
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE sips SET {set}, updated_at = now() \
             WHERE sip_id = $1 AND user_id = $2 AND status IN ({allowed_from}) RETURNING {SIP_COLUMNS}"
        )))
        .bind(sip_id)
        .bind(user_id)
        .bind(change.until)
        .fetch_optional(&state.pool),
    )
    .await?;
    match row {
        Some(row) => Ok(json_value(&sip_json(&row))),
        None => {
            let status: Option<String> =
                sqlx::query_scalar("SELECT status FROM sips WHERE sip_id = $1 AND user_id = $2")
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

#[derive(Deserialize)]
struct Page {
    limit: Option<i64>,
    before: Option<i64>,
    unread: Option<bool>,
}

async fn list_notifications(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath(user_id): ApiPath<i64>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Response, Problem> {
    authed.reach(user_id, false)?;
    let limit = page.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Problem::bad_request("limit must be between 1 and 200"));
    }
    let rows = timed(
        &state,
        sqlx::query(
            "SELECT notification_id, kind, payload::text AS payload, created_at, read_at FROM notifications \
             WHERE user_id = $1 AND ($2::bigint IS NULL OR notification_id < $2) \
               AND (NOT $3 OR read_at IS NULL) \
             ORDER BY notification_id DESC LIMIT $4",
        )
        .bind(user_id)
        .bind(page.before)
        .bind(page.unread.unwrap_or(false))
        .bind(limit)
        .fetch_all(&state.pool),
    )
    .await?;
    let notifications: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "notification_id": r.get::<i64, _>("notification_id"),
                "kind": r.get::<String, _>("kind"),
                "payload": serde_json::from_str::<Value>(&r.get::<String, _>("payload")).unwrap_or(Value::Null),
                "created_at": rfc3339(r.get("created_at")),
                "read_at": r.get::<Option<chrono::DateTime<chrono::Utc>>, _>("read_at").map(rfc3339),
            })
        })
        .collect();
    let next = notifications
        .last()
        .filter(|_| notifications.len() as i64 == limit)
        .map(|n| n["notification_id"].clone());
    Ok(json_value(
        &json!({ "notifications": notifications, "next_before": next }),
    ))
}

async fn mark_read(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath((user_id, notification_id)): ApiPath<(i64, i64)>,
) -> Result<Response, Problem> {
    authed.reach(user_id, true)?;
    let read: Option<chrono::DateTime<chrono::Utc>> = timed(
        &state,
        sqlx::query_scalar(
            "UPDATE notifications SET read_at = coalesce(read_at, now()) \
             WHERE notification_id = $1 AND user_id = $2 RETURNING read_at",
        )
        .bind(notification_id)
        .bind(user_id)
        .fetch_optional(&state.pool),
    )
    .await?;
    let read_at = read.ok_or_else(|| Problem::not_found("no such notification"))?;
    Ok(json_value(
        &json!({ "notification_id": notification_id, "read_at": rfc3339(read_at) }),
    ))
}

const ALERT_COLUMNS: &str =
    "alert_id, scheme_code, kind, threshold::text AS threshold, active, last_triggered_on, created_at";

fn alert_json(row: &sqlx::postgres::PgRow) -> Value {
    json!({
        "alert_id": row.get::<i64, _>("alert_id"),
        "scheme_code": row.get::<i64, _>("scheme_code"),
        "kind": row.get::<String, _>("kind"),
        "threshold": row.get::<String, _>("threshold"),
        "active": row.get::<bool, _>("active"),
        "last_triggered_on": row.get::<Option<NaiveDate>, _>("last_triggered_on").map(|d| d.to_string()),
    })
}

async fn list_alerts(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath(user_id): ApiPath<i64>,
) -> Result<Response, Problem> {
    authed.reach(user_id, false)?;
    let rows = timed(
        &state,
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM nav_alerts WHERE user_id = $1 ORDER BY alert_id"
        )))
        .bind(user_id)
        .fetch_all(&state.pool),
    )
    .await?;
    let alerts: Vec<Value> = rows.iter().map(alert_json).collect();
    Ok(json_value(&json!({ "alerts": alerts })))
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
    ApiPath(user_id): ApiPath<i64>,
    ApiJson(alert): ApiJson<NewAlert>,
) -> Result<Response, Problem> {
    authed.reach(user_id, true)?;
    let mut errors = Vec::new();
    if !matches!(
        alert.kind.as_deref(),
        Some("above" | "below" | "daily_move_pct")
    ) {
        errors.push(("kind".into(), "one of above, below, daily_move_pct".into()));
    }
    let threshold = alert.threshold.as_ref().and_then(decimal);
    if !threshold.is_some_and(|t| t > Decimal::ZERO && t.normalize().scale() <= 4) {
        errors.push((
            "threshold".into(),
            "a positive decimal, at most 4 places".into(),
        ));
    }
    let exists = match alert.scheme_code {
        Some(code) => {
            timed(
                &state,
                sqlx::query_scalar::<_, bool>(
                    "SELECT EXISTS (SELECT 1 FROM schemes WHERE scheme_code = $1)",
                )
                .bind(code)
                .fetch_one(&state.pool),
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
    let row = timed(
        &state,
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO nav_alerts (user_id, scheme_code, kind, threshold) VALUES ($1, $2, $3, $4) \
             RETURNING {ALERT_COLUMNS}"
        )))
        .bind(user_id)
        .bind(alert.scheme_code)
        .bind(alert.kind)
        .bind(threshold)
        .fetch_one(&state.pool),
    )
    .await?;
    let mut response = json_value(&alert_json(&row));
    *response.status_mut() = StatusCode::CREATED;
    Ok(response)
}

async fn delete_alert(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath((user_id, alert_id)): ApiPath<(i64, i64)>,
) -> Result<Response, Problem> {
    authed.reach(user_id, true)?;
    let deleted = timed(
        &state,
        sqlx::query("DELETE FROM nav_alerts WHERE alert_id = $1 AND user_id = $2")
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
