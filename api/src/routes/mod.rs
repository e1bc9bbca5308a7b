//! Routes, extractors and middleware, one module per resource, each with its own router:
//! `me` (the signed-in person), `navs` (scheme NAVs), `portfolio` (portfolio and charts), `sips`, `orders`, `plans` (SWPs and STPs), `notifications`,
//! `alerts`, `unsubscribe` (the signed link in e-mails, no bearer token), `providers`
//! (delivery reports on signed callbacks, no bearer token), and `ops` (health,
//! readiness, metrics, the OpenAPI document). Every
//! `/v1/users/{user_id}/…` route checks the caller (`extract::Authed::reach`): a user reaches
//! only their own id; a service token reads any user and writes none. Another user's data
//! answers 404, the same as a user that does not exist, so ids cannot be probed.

mod alerts;
pub mod extract;
mod idempotency;
mod investments;
mod me;
mod navs;
mod notifications;
mod ops;
mod orders;
mod plans;
mod portfolio;
mod preferences;
mod providers;
mod schemes;
mod sips;
mod statement;
mod unsubscribe;

use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::Serialize;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::problem::Problem;
use crate::Shared;

/// Request bodies are small JSON documents.
const MAX_BODY_BYTES: usize = 16 * 1024;

pub fn router(state: Shared) -> Router {
    let v1 = Router::new()
        .merge(me::routes())
        .merge(schemes::routes())
        .merge(navs::routes())
        .merge(portfolio::routes())
        .merge(investments::routes())
        .merge(sips::routes())
        .merge(orders::routes())
        .merge(plans::routes())
        .merge(notifications::routes())
        .merge(preferences::routes())
        .merge(alerts::routes())
        .merge(statement::routes())
        .merge(unsubscribe::routes())
        .merge(providers::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::idempotent_writes,
        ));
    // The GraphQL subgraph calls the routes of the finished router, so it gets it once built.
    let (graphql, finished) = crate::graphql::GraphQl::new();
    // Per client address in front of everything but liveness: `/v1`, `/graphql`, and the
    // operator routes that do work (readiness and metrics query the database).
    let limited = Router::new()
        .nest("/v1", v1)
        .route(
            "/graphql",
            axum::routing::post(crate::graphql::execute)
                .get(crate::graphql::describe)
                .layer(axum::Extension(graphql)),
        )
        .merge(ops::routes());
    let mut pruned = Vec::new();
    let limited = match state
        .limits
        .per_address
        .and_then(crate::limits::address_layer)
    {
        Some((layer, prune)) => {
            pruned.push(prune);
            limited.layer(layer)
        }
        None => limited,
    };
    if let Some(users) = &state.user_limiter {
        pruned.push(users.pruner());
    }
    if tokio::runtime::Handle::try_current().is_ok() {
        crate::limits::prune_every_minute(pruned);
    }
    let app = Router::new()
        .merge(limited)
        .merge(ops::health())
        .fallback(|| async { Problem::not_found("no such route") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state);
    // A router built once per process; the cycle through the slot is never dropped anyway.
    let _ = finished.set(app.clone());
    app
}

/// `?limit=&after=` on the lists ordered by id (SIPs, alerts): a page of at most `limit` rows
/// (default 100, at most 200) with ids after `after`; the response's `next_after` continues it.
#[derive(serde::Deserialize)]
pub struct IdPage {
    limit: Option<i64>,
    after: Option<i64>,
}

impl IdPage {
    /// `(after, limit)` for the query; a limit outside 1–200 is a 400.
    pub fn bounds(&self) -> Result<(i64, i64), Problem> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=200).contains(&limit) {
            return Err(Problem::bad_request("limit must be between 1 and 200"));
        }
        Ok((self.after.unwrap_or(i64::MIN), limit))
    }
}

/// The cursor for the next page of a list paged by id (`after` ascending, `before`
/// descending): the page's last id when the page was full; a short page is the last.
pub fn next_cursor(
    ids: impl DoubleEndedIterator<Item = i64> + ExactSizeIterator,
    limit: i64,
) -> Option<i64> {
    let full = ids.len() as i64 == limit;
    ids.last().filter(|_| full)
}

/// The method as a metrics label: a client can send any token as a method, and each would be
/// a new time series (OWASP API4, unrestricted resource consumption), so others are `OTHER`.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Request id, timeout, access log and latency histogram, around every request.
async fn observe(State(state): State<Shared>, request: Request, next: Next) -> Response {
    // The caller's id when it is a plain token, else a fresh one (16 hex digits, formatted on
    // the stack: this runs for every request).
    let request_id = request
        .headers()
        .get("x-request-id")
        .filter(|v| {
            let v = v.as_bytes();
            !v.is_empty() && v.len() <= 64 && v.iter().all(u8::is_ascii_graphic)
        })
        .cloned()
        .unwrap_or_else(fresh_request_id);
    // A `MatchedPath` clone shares its text (no allocation).
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let method = method_label(request.method());
    let span = tracing::info_span!(
        "request",
        request_id = request_id.to_str().unwrap_or_default(),
        %method,
        %route,
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
    );
    // The caller's trace goes on here (W3C `traceparent`), when the span is recorded at all.
    if !span.is_disabled() {
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&HeaderCarrier(request.headers()))
        });
        let _ = span.set_parent(parent);
    }
    // Kept for an error report: the caller's trace, whether or not spans are exported.
    let trace_parent = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split('-').nth(1))
        .map(str::to_string);
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
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "error");
        report_server_error(
            &span,
            &trace_parent,
            method,
            route,
            status,
            &request_id,
            &response,
        );
    }
    state
        .metrics
        .observe_request(method, route, status, elapsed);
    tracing::debug!(parent: &span, status, elapsed_us = elapsed.as_micros() as u64, "request");
    response.headers_mut().insert("x-request-id", request_id);
    response
}

/// A 5xx answer reported to Sentry (a no-op unless `SENTRY_DSN` is set): the route, not the
/// path (a path holds a user's id), the status, the request id the client saw, the trace
/// (the exported span's, else the caller's `traceparent`) and the cause a `Problem` left.
fn report_server_error(
    span: &tracing::Span,
    trace_parent: &Option<String>,
    method: &str,
    route: &str,
    status: u16,
    request_id: &HeaderValue,
    response: &Response,
) {
    if sentry::Hub::current().client().is_none() {
        return;
    }
    use opentelemetry::trace::TraceContextExt;
    let context = span.context();
    let exported = context.span().span_context().trace_id();
    let trace_id = (exported != opentelemetry::trace::TraceId::INVALID)
        .then(|| exported.to_string())
        .or_else(|| trace_parent.clone())
        .and_then(|t| t.parse::<sentry::protocol::TraceId>().ok());
    let cause = response
        .extensions()
        .get::<crate::problem::ProblemCause>()
        .map_or("", |c| c.0.as_str());
    // A 503 is the database busy or away (or a request out of time): retried by clients, and
    // during an outage one per request — a warning, so the errors stay readable.
    let level = if status == 503 {
        sentry::Level::Warning
    } else {
        sentry::Level::Error
    };
    let mut event = sentry::protocol::Event {
        level,
        message: Some(format!("{method} {route} answered {status}: {cause}")),
        transaction: Some(format!("{method} {route}")),
        ..Default::default()
    };
    event.tags.insert("route".into(), route.into());
    event.tags.insert("method".into(), method.into());
    event.tags.insert("status".into(), status.to_string());
    event.tags.insert(
        "request_id".into(),
        request_id.to_str().unwrap_or_default().into(),
    );
    if let Some(trace_id) = trace_id {
        event.contexts.insert(
            "trace".into(),
            sentry::protocol::Context::Trace(Box::new(sentry::protocol::TraceContext {
                trace_id,
                ..Default::default()
            })),
        );
    }
    sentry::capture_event(event);
}

/// 16 random hex digits.
fn fresh_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let random = rand::random::<u64>();
    let mut digits = [0u8; 16];
    for (at, digit) in digits.iter_mut().enumerate() {
        *digit = HEX[((random >> (60 - 4 * at)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&digits).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

fn json_body(body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn json_value(value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => json_body(Bytes::from(bytes)),
        Err(e) => {
            tracing::error!(error = %e, "response not serialisable");
            Problem::internal().into_response()
        }
    }
}

/// Timestamps as clients parse them: RFC 3339, UTC, milliseconds.
fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Request headers as a trace-context carrier.
struct HeaderCarrier<'a>(&'a axum::http::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}

/// Runs a query future, timing it into the database histogram, in a child span of the request.
async fn timed<T>(state: &Shared, query: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let span = tracing::info_span!(
        "db",
        otel.name = "postgresql query",
        otel.kind = "client",
        db.system.name = "postgresql",
    );
    let out = query.instrument(span).await;
    state.metrics.db_query.observe(started.elapsed());
    out
}
