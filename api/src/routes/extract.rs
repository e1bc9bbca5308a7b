//! `Json`, `Path` and `Query` whose rejections are problem documents, and `Authed`, the
//! verified caller.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;

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

/// For an optional body field whose schema is not nullable: absent is `None` (with
/// `#[serde(default)]`), an explicit `null` is refused, as the OpenAPI document says, rather
/// than read as absent.
pub fn not_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    match Option::<T>::deserialize(deserializer)? {
        Some(value) => Ok(Some(value)),
        None => Err(serde::de::Error::custom(
            "null is not allowed: leave the field out instead",
        )),
    }
}

/// The user a `/v1/users/{user_id}/…` path names: an id, or `me` for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserRef {
    Me,
    Id(i64),
}

impl<'de> serde::Deserialize<'de> for UserRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text == "me" {
            return Ok(UserRef::Me);
        }
        text.parse().map(UserRef::Id).map_err(|_| {
            serde::de::Error::custom(format!("`{text}` is not a user id (an integer, or `me`)"))
        })
    }
}

/// The verified caller, and their user id (provisioned on a person's first call).
#[derive(Clone)]
pub struct Authed {
    caller: std::sync::Arc<crate::auth::Caller>,
    user_id: Option<i64>,
}

impl FromRequestParts<Shared> for Authed {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Problem> {
        // Verified once per request: a middleware that needed the caller first left it here.
        if let Some(authed) = parts.extensions.get::<Authed>() {
            return Ok(authed.clone());
        }
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
        if let Some(limiter) = &state.user_limiter {
            limiter.check(&caller)?;
        }
        let (user_id, looked_up) = match state.subjects.get(&caller.subject) {
            Some(id) => (Some(id), false),
            None => {
                let id = user_of(state, &caller).await?;
                if let Some(id) = id {
                    state.subjects.insert(caller.subject.clone(), id);
                }
                (id, true)
            }
        };
        // Read-your-writes: a person writing (or just provisioned) reads the primary for a
        // while, not a standby that may not have replayed it yet.
        if let (Some(id), Some(replica)) = (user_id, &state.replica) {
            let reads = matches!(
                parts.method,
                axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
            );
            if looked_up || !reads {
                replica.wrote(id);
            }
        }
        Ok(Self { caller, user_id })
    }
}

/// `NO KEY UPDATE`, not `UPDATE`: concurrent quota checks of one user still queue on it, but
/// it does not conflict with the key-share lock every insert referencing the user takes (the
/// request's idempotency key row, taken before). With `FOR UPDATE` two requests holding that
/// key-share lock each waited for the other: a deadlock, and a 500.
const LOCK_USER: &str = "SELECT 1 FROM users WHERE user_id = $1 FOR NO KEY UPDATE";

/// Why a status change matched no row: a 404 when the caller has no such `noun` (or it is
/// another person's), else a 409 naming the status that does not allow `action`. Read in
/// the change's own transaction: never a second connection while holding one.
pub(super) async fn refused_change(
    tx: &mut sqlx::PgConnection,
    status_sql: &'static str,
    id: i64,
    user_id: i64,
    action: &str,
    noun: &str,
) -> Problem {
    let status: Result<Option<String>, sqlx::Error> = sqlx::query_scalar(status_sql)
        .bind(id)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await;
    match status {
        Err(e) => e.into(),
        Ok(None) => Problem::not_found(format!("no such {noun}")),
        Ok(Some(status)) => Problem::conflict(format!("cannot {action} a {noun} that is {status}")),
    }
}

/// Locks the user's row for the rest of `tx` and returns `count_sql`'s count for them. A quota
/// checked this way and followed by the insert in the same transaction cannot be passed by
/// concurrent requests together (open SIPs, active alerts).
pub(super) async fn locked_count(
    tx: &mut sqlx::PgConnection,
    user_id: i64,
    count_sql: &'static str,
) -> Result<i64, Problem> {
    sqlx::query(LOCK_USER)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    Ok(sqlx::query_scalar(count_sql)
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await?)
}

/// [`locked_count`] for mandates (SIPs, SWPs, STPs): `count_sql` counts user `$1`'s open ones
/// on `$2`, today in India. A mandate whose end date has passed places nothing more and is
/// not open, whatever its status says; without the date a person with years of finished SIPs
/// could start no new one.
pub(super) async fn locked_open_mandates(
    tx: &mut sqlx::PgConnection,
    user_id: i64,
    count_sql: &'static str,
    today: chrono::NaiveDate,
) -> Result<i64, Problem> {
    sqlx::query(LOCK_USER)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    Ok(sqlx::query_scalar(count_sql)
        .bind(user_id)
        .bind(today)
        .fetch_one(&mut *tx)
        .await?)
}

const FIND_USER: &str = "SELECT user_id FROM users WHERE auth_subject = $1";

/// A first call provisions the user; `DO NOTHING` makes concurrent first calls insert once,
/// and the loser reads the winner's row.
const PROVISION_USER: &str = "INSERT INTO users (auth_subject, email, phone) VALUES ($1, $2, $3) \
     ON CONFLICT (auth_subject) DO NOTHING RETURNING user_id";

/// The caller's user id, provisioning the user on their first call. A service token is not a
/// person and gets no user.
async fn user_of(state: &Shared, caller: &crate::auth::Caller) -> Result<Option<i64>, Problem> {
    let found: Option<i64> = sqlx::query_scalar(FIND_USER)
        .bind(&caller.subject)
        .fetch_optional(&state.pool)
        .await?;
    if found.is_some() || caller.service {
        return Ok(found);
    }
    let inserted: Option<i64> = sqlx::query_scalar(PROVISION_USER)
        .bind(&caller.subject)
        .bind(&caller.email)
        .bind(&caller.phone)
        .fetch_optional(&state.pool)
        .await?;
    if let Some(id) = inserted {
        tracing::info!(user_id = id, "user provisioned on first sign-in");
        return Ok(Some(id));
    }
    Ok(sqlx::query_scalar(FIND_USER)
        .bind(&caller.subject)
        .fetch_optional(&state.pool)
        .await?)
}

impl Authed {
    /// The caller's own user id (`None` for a service token).
    pub fn user_id(&self) -> Option<i64> {
        self.user_id
    }

    /// May the caller read (or, with `write`, change) the data of the user the path names?
    /// Returns that user's id (`me` is the caller's own).
    pub fn reach(&self, user: UserRef, write: bool) -> Result<i64, Problem> {
        let user_id = match user {
            UserRef::Me => self
                .user_id
                .ok_or_else(|| Problem::not_found("a service token is not a user: name one"))?,
            UserRef::Id(id) => id,
        };
        if self.user_id == Some(user_id) {
            return Ok(user_id);
        }
        if self.caller.service {
            return if write {
                Err(Problem::forbidden(
                    "a service token reads; only the user writes",
                ))
            } else {
                Ok(user_id)
            };
        }
        Err(Problem::not_found("no such user"))
    }
}
