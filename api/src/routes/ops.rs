//! Operations: liveness, readiness (migrations applied), Prometheus metrics, OpenAPI.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::json_value;
use crate::problem::Problem;
use crate::Shared;

/// Liveness: never limited, never touches the database (a load balancer's probe).
pub fn health() -> Router<Shared> {
    Router::new().route("/healthz", get(|| async { "ok" }))
}

/// The operator routes that do work: behind the per-address limiter like `/v1`.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
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

/// How long the job and publication gauges (SQL over `job_runs` and `publications`) are
/// reused between scrapes: several Prometheus replicas scraping every 15 s cost one query.
const JOB_GAUGES_TTL: std::time::Duration = std::time::Duration::from_secs(15);

async fn metrics(State(state): State<Shared>, headers: axum::http::HeaderMap) -> Response {
    if let Some(token) = &state.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), token.expose().as_bytes()) {
            return Problem::new(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "/metrics needs the metrics token (Authorization: Bearer …)",
            )
            .into_response();
        }
    }
    let today = state.clock.today_ist();
    let mut body = state
        .metrics
        .render(&state.caches, &state.pool, &state.calendar, today);
    let jobs = {
        let mut cached = state.job_gauges.lock().await;
        match cached.as_ref() {
            Some((at, text)) if at.elapsed() < JOB_GAUGES_TTL => text.clone(),
            _ => {
                let text = crate::metrics::render_jobs(&state.pool, &state.calendar, today).await;
                *cached = Some((std::time::Instant::now(), text.clone()));
                text
            }
        }
    };
    body.push_str(&jobs);
    body.push_str(crate::replica::METRICS_HELP);
    if let Some(replica) = &state.replica {
        body.push_str(&replica.metrics());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// Compares without stopping at the first difference, so the time taken does not say how
/// much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn openapi() -> Response {
    json_value(&crate::openapi::document())
}
