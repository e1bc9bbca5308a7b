//! Errors as `application/problem+json` (RFC 9457). Internal errors are logged with the request
//! id and answered with a bare 500: no SQL, no stack, no internals leave the process.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: Option<String>,
    /// Field-level validation failures: (field, message).
    pub errors: Vec<(String, String)>,
    /// Seconds for `Retry-After` (429; a 503 says 1 unless set).
    pub retry_after: Option<u64>,
    /// What went wrong inside, for the error report of a 5xx (never sent to the client).
    pub cause: Option<String>,
}

/// A 5xx answer's cause, left in the response's extensions for the error report.
#[derive(Clone, Debug)]
pub struct ProblemCause(pub String);

impl Problem {
    pub fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            title,
            detail: Some(detail.into()),
            errors: Vec::new(),
            retry_after: None,
            cause: None,
        }
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not Found", detail)
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Bad Request", detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "Conflict", detail)
    }

    pub fn invalid(errors: Vec<(String, String)>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            title: "Validation Failed",
            detail: Some("the request body breaks the rules below".into()),
            errors,
            retry_after: None,
            cause: None,
        }
    }

    /// 429: a rate limit, with the whole seconds to wait (at least 1: `Retry-After: 0` would
    /// invite a retry that is refused again).
    pub fn too_many_requests(wait: std::time::Duration) -> Self {
        let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
        Self {
            retry_after: Some(seconds),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too Many Requests",
                format!("rate limit reached: retry in {seconds} s"),
            )
        }
    }

    pub fn internal() -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            title: "Internal Server Error",
            detail: None,
            errors: Vec::new(),
            retry_after: None,
            cause: None,
        }
    }
}

impl From<sqlx::Error> for Problem {
    /// The database being busy or away is a 503 the client may retry (with `Retry-After`):
    /// no free connection within the acquire timeout, no connection at all, or a statement
    /// cancelled by `statement_timeout`/`lock_timeout` (a publish switching dates holds its
    /// lock for milliseconds; a reader gives up after the lock timeout rather than queueing),
    /// or a transaction PostgreSQL aborted for a deadlock or a serialization conflict.
    /// Anything else is a bug or a broken schema: a 500.
    fn from(error: sqlx::Error) -> Self {
        let busy = match &error {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
            sqlx::Error::Tls(_) => true,
            sqlx::Error::Database(db) => matches!(
                db.code().as_deref(),
                // query_canceled (statement_timeout), lock_not_available (lock_timeout),
                // too_many_connections, cannot_connect_now (starting up or shutting down),
                // and the transient conflicts a retry resolves: deadlock_detected,
                // serialization_failure.
                Some("57014" | "55P03" | "53300" | "57P03" | "40P01" | "40001")
            ),
            _ => false,
        };
        if busy {
            tracing::warn!(error = %error, "database busy or unavailable");
            return Self {
                cause: Some(error.to_string()),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service Unavailable",
                    "the database is busy or unavailable: retry shortly",
                )
            };
        }
        tracing::error!(error = %error, "database error");
        Self {
            cause: Some(error.to_string()),
            ..Self::internal()
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
        });
        if let Some(detail) = self.detail {
            body["detail"] = detail.into();
        }
        if !self.errors.is_empty() {
            body["errors"] = self
                .errors
                .into_iter()
                .map(|(field, message)| json!({ "field": field, "message": message }))
                .collect();
        }
        let mut response = (self.status, body.to_string()).into_response();
        if let Some(cause) = self.cause {
            response.extensions_mut().insert(ProblemCause(cause));
        }
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/problem+json"),
        );
        let retry_after = match self.status {
            StatusCode::SERVICE_UNAVAILABLE => Some(self.retry_after.unwrap_or(1)),
            _ => self.retry_after,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
