//! The signed-in person: `GET /v1/me` returns their user id and profile. The first
//! authenticated call of a new subject provisions the user (see `extract::Authed`), so a
//! person who signs in with a Supabase or Auth0 token exists from their first request.

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::extract::Authed;
use super::{json_value, rfc3339, timed};
use crate::problem::Problem;
use crate::Shared;

pub fn routes() -> Router<Shared> {
    Router::new().route("/me", get(me))
}

const PROFILE: &str =
    "SELECT user_id, auth_subject, email, phone, created_at FROM users WHERE user_id = $1";

#[derive(sqlx::FromRow)]
struct ProfileRow {
    user_id: i64,
    auth_subject: String,
    email: Option<String>,
    phone: Option<String>,
    created_at: DateTime<Utc>,
}

/// The profile as the API shows it; `user_id` is what every `/v1/users/{user_id}/…` route
/// takes (or `me`).
#[derive(Serialize)]
struct Profile {
    user_id: i64,
    auth_subject: String,
    email: Option<String>,
    phone: Option<String>,
    created_at: String,
}

async fn me(State(state): State<Shared>, authed: Authed) -> Result<Response, Problem> {
    let user_id = authed
        .user_id()
        .ok_or_else(|| Problem::not_found("a service token is not a user"))?;
    let row: ProfileRow = timed(
        &state,
        sqlx::query_as(PROFILE)
            .bind(user_id)
            .fetch_optional(&state.pool),
    )
    .await?
    .ok_or_else(|| Problem::not_found("no such user"))?;
    Ok(json_value(&Profile {
        user_id: row.user_id,
        auth_subject: row.auth_subject,
        email: row.email,
        phone: row.phone,
        created_at: rfc3339(row.created_at),
    }))
}
