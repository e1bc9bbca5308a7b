//! A user's notifications (newest first, paged by id, each with its delivery state per channel)
//! and marking one read.

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::extract::{ApiPath, ApiQuery, Authed, UserRef};
use super::{json_value, next_cursor, rfc3339, timed};
use crate::problem::Problem;
use crate::Shared;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/users/{user_id}/notifications", get(list_notifications))
        .route(
            "/users/{user_id}/notifications/{notification_id}/read",
            post(mark_read),
        )
}

#[derive(sqlx::FromRow)]
struct NotificationRow {
    notification_id: i64,
    kind: String,
    payload: String,
    created_at: DateTime<Utc>,
    read_at: Option<DateTime<Utc>>,
    status: String,
    /// JSON built by PostgreSQL: one object per channel.
    deliveries: String,
}

/// A notification as the API shows it: timestamps RFC 3339 in UTC with milliseconds.
#[derive(Serialize)]
struct Notification {
    notification_id: i64,
    kind: String,
    payload: Value,
    created_at: String,
    read_at: Option<String>,
    /// Over all channels: pending (not yet fanned out), delivering, delivered or dead.
    status: String,
    /// Per channel: status, attempts, `delivered_at`, `next_attempt_at` (the reason of a
    /// failure stays with the operator: it names the provider's endpoint).
    deliveries: Value,
}

impl From<NotificationRow> for Notification {
    fn from(row: NotificationRow) -> Self {
        Self {
            notification_id: row.notification_id,
            kind: row.kind,
            payload: serde_json::from_str(&row.payload).unwrap_or(Value::Null),
            created_at: rfc3339(row.created_at),
            read_at: row.read_at.map(rfc3339),
            status: row.status,
            deliveries: serde_json::from_str(&row.deliveries).unwrap_or(Value::Array(Vec::new())),
        }
    }
}

#[derive(Serialize)]
struct NotificationPage {
    notifications: Vec<Notification>,
    next_before: Option<i64>,
}

#[derive(Serialize)]
struct Read {
    notification_id: i64,
    read_at: String,
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
    ApiPath(user): ApiPath<UserRef>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Response, Problem> {
    let user_id = authed.reach(user, false)?;
    let limit = page.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Problem::bad_request("limit must be between 1 and 200"));
    }
    let rows: Vec<NotificationRow> = timed(
        &state,
        sqlx::query_as(
            "SELECT notification_id, kind, payload::text AS payload, created_at, read_at, status, \
               (SELECT coalesce(json_agg(json_build_object('channel', d.channel, 'status', d.status, \
                   'attempts', d.attempts, \
                   'delivered_at', to_char(d.delivered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
                   'next_attempt_at', CASE WHEN d.status = 'pending' \
                       THEN to_char(d.next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') END, \
                   'report', d.report_status) \
                   ORDER BY d.channel), '[]') \
                FROM notification_deliveries d WHERE d.notification_id = n.notification_id)::text AS deliveries \
             FROM notifications n \
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
    let notifications: Vec<Notification> = rows.into_iter().map(Notification::from).collect();
    let next_before = next_cursor(notifications.iter().map(|n| n.notification_id), limit);
    Ok(json_value(&NotificationPage {
        notifications,
        next_before,
    }))
}

async fn mark_read(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath((user, notification_id)): ApiPath<(UserRef, i64)>,
) -> Result<Response, Problem> {
    let user_id = authed.reach(user, true)?;
    let read: Option<DateTime<Utc>> = timed(
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
    Ok(json_value(&Read {
        notification_id,
        read_at: rfc3339(read_at),
    }))
}
