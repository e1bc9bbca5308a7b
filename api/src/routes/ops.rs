//! Operations: liveness, readiness (migrations applied), Prometheus metrics, OpenAPI.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::json_value;
use crate::problem::Problem;
use crate::Shared;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
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

async fn metrics(State(state): State<Shared>) -> Response {
    let today = state.clock.today_ist();
    let mut body = state
        .metrics
        .render(&state.caches, &state.pool, &state.calendar, today);
    body.push_str(&crate::metrics::render_jobs(&state.pool, &state.calendar, today).await);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn openapi() -> Response {
    json_value(&crate::openapi::document())
}
