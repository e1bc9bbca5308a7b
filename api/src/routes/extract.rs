//! `Json`, `Path` and `Query` whose rejections are problem documents, and `Authed`, the
//! verified caller.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, StatusCode};
use serde::de::DeserializeOwned;

use crate::problem::Problem;
use crate::Shared;

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
    pub fn reach(&self, user_id: i64, write: bool) -> Result<(), Problem> {
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
