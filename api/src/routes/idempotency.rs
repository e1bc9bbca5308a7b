//! `Idempotency-Key` on the routes that create something (migration 0011): the key is claimed
//! in the request's own transaction with a hash of the request, and the response stored in
//! that transaction, so a retry after a timeout gets the stored response instead of creating a
//! second SIP or alert; the same key with another body is a 422. Keys expire after a day.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use sqlx::FromRow;

use super::json_body;
use crate::problem::Problem;

/// How long an `Idempotency-Key` is remembered.
const IDEMPOTENCY_HOURS: i32 = 24;

const EXPIRE_KEYS: &str = "DELETE FROM idempotency_keys WHERE user_id = $1 \
     AND created_at < now() - make_interval(hours => $2)";

/// Claims a key for this request: a row back means the key is new (the caller goes on and
/// stores its response in the same transaction); none means it was used before.
const CLAIM_KEY: &str = "INSERT INTO idempotency_keys (user_id, idem_key, route, request_hash) \
     VALUES ($1, $2, $3, sha256(convert_to($4, 'UTF8'))) ON CONFLICT DO NOTHING RETURNING 1";

const STORED_RESPONSE: &str =
    "SELECT route = $3 AND request_hash = sha256(convert_to($4, 'UTF8')) AS same, \
            status, response FROM idempotency_keys WHERE user_id = $1 AND idem_key = $2";

const STORE_RESPONSE: &str =
    "UPDATE idempotency_keys SET status = $3, response = $4 WHERE user_id = $1 AND idem_key = $2";

/// Claims `key` for this request inside `tx`, or answers the stored response of the request
/// that used it first. `None`: the key is new, and the caller stores its response in `tx` with
/// [`store_response`], so the claim and the change commit together or not at all (a rejected
/// request rolls its claim back, and a corrected retry with the same key goes through).
pub(super) async fn claim_or_replay(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    user_id: i64,
    key: &str,
    route: &str,
    request: &str,
) -> Result<Option<Response>, Problem> {
    sqlx::query(EXPIRE_KEYS)
        .bind(user_id)
        .bind(IDEMPOTENCY_HOURS)
        .execute(&mut **tx)
        .await?;
    let bound = |sql: &'static str| {
        sqlx::query(sql)
            .bind(user_id)
            .bind(key)
            .bind(route)
            .bind(request)
    };
    // A concurrent request with the same key waits here until the first one commits.
    if bound(CLAIM_KEY).fetch_optional(&mut **tx).await?.is_some() {
        return Ok(None);
    }
    let stored = StoredResponse::from_row(&bound(STORED_RESPONSE).fetch_one(&mut **tx).await?)?;
    if !stored.same {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation Failed",
            "Idempotency-Key was already used for another request",
        ));
    }
    let (Some(status), Some(response)) = (stored.status, stored.response) else {
        return Err(Problem::conflict(
            "the first request with this Idempotency-Key is still in progress",
        ));
    };
    let mut replay = json_body(Bytes::from(response));
    *replay.status_mut() = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK);
    replay
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(Some(replay))
}

#[derive(sqlx::FromRow)]
struct StoredResponse {
    same: bool,
    status: Option<i16>,
    response: Option<String>,
}

/// The request's `Idempotency-Key`: 1–255 visible ASCII characters, or a 400.
pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
        .map(|k| Some(k.to_string()))
        .ok_or_else(|| Problem::bad_request("Idempotency-Key: 1 to 255 visible ASCII characters"))
}

/// Stores the response of the request that claimed `key`, in the transaction of its change.
pub(super) async fn store_response(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    user_id: i64,
    key: &str,
    status: StatusCode,
    body: &str,
) -> Result<(), Problem> {
    sqlx::query(STORE_RESPONSE)
        .bind(user_id)
        .bind(key)
        .bind(status.as_u16() as i16)
        .bind(body)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
