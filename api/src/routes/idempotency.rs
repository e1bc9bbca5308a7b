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
     VALUES ($1, $2, $3, sha256($4)) ON CONFLICT DO NOTHING RETURNING 1";

const STORED_RESPONSE: &str = "SELECT route = $3 AND request_hash = sha256($4) AS same, \
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
            // Hashed as bytes: a body may hold what PostgreSQL text cannot (NUL).
            .bind(request.as_bytes())
    };
    // A concurrent request with the same key waits here until the first one commits. The
    // key can also vanish between the claim and the read: a refused request on a route that
    // claims keys outside its transaction (`idempotent_writes`) releases its key when it
    // finishes. Then the claim is tried again; a key that keeps coming and going is a 409.
    let mut stored = None;
    for _ in 0..3 {
        if bound(CLAIM_KEY).fetch_optional(&mut **tx).await?.is_some() {
            return Ok(None);
        }
        if let Some(row) = bound(STORED_RESPONSE).fetch_optional(&mut **tx).await? {
            stored = Some(StoredResponse::from_row(&row)?);
            break;
        }
    }
    let Some(stored) = stored else {
        return Err(Problem::conflict(
            "another request with this Idempotency-Key is still in progress",
        ));
    };
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

/// The claim of a route that does not create: its change runs in transactions of its own, so
/// the claim is committed first, and the response stored after. A claim left without a
/// response for longer than this (the process died, or the request timed out, in between) is
/// taken over by the next request with the key.
const ABANDONED_AFTER_SECS: f64 = 120.0;

const TAKE_OVER_OR_CLAIM: &str =
    "INSERT INTO idempotency_keys (user_id, idem_key, route, request_hash) \
     VALUES ($1, $2, $3, sha256($4)) \
     ON CONFLICT (user_id, idem_key) DO UPDATE SET route = EXCLUDED.route, \
         request_hash = EXCLUDED.request_hash, created_at = now() \
     WHERE idempotency_keys.status IS NULL \
       AND idempotency_keys.created_at < now() - make_interval(secs => $5) \
     RETURNING 1";

const RELEASE_KEY: &str =
    "DELETE FROM idempotency_keys WHERE user_id = $1 AND idem_key = $2 AND status IS NULL";

/// `Idempotency-Key` for every mutating route but the three that create (SIPs, alerts and
/// orders keep the claim in their own transaction, see [`claim_or_replay`]): amend, pause,
/// resume and cancel a SIP, cancel an order, set preferences, mark read, delete an alert. The same key and request answers
/// the stored response without running the change again; another request with the key is a
/// 422; a refused request (4xx/5xx) releases its key, so a corrected retry goes through.
pub(super) async fn idempotent_writes(
    axum::extract::State(state): axum::extract::State<crate::Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::http::Method;
    let method = request.method().clone();
    let matched = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(axum::extract::MatchedPath::as_str);
    // The routes and methods that change something without creating it (anything else,
    // including a method a path does not have, passes straight through).
    let changes = matches!(
        (&method, matched),
        (&Method::PATCH, Some("/v1/users/{user_id}/sips/{sip_id}"))
            | (
                &Method::POST,
                Some("/v1/users/{user_id}/sips/{sip_id}/{action}")
            )
            | (
                &Method::POST,
                Some("/v1/users/{user_id}/orders/{order_id}/cancel")
            )
            | (
                &Method::PUT,
                Some("/v1/users/{user_id}/notification-preferences")
            )
            | (
                &Method::POST,
                Some("/v1/users/{user_id}/notifications/{notification_id}/read")
            )
            | (
                &Method::DELETE,
                Some("/v1/users/{user_id}/alerts/{alert_id}")
            )
    );
    if !changes {
        return next.run(request).await;
    }
    // Boxed: the claim's futures are large, and inline they would be moved on every request,
    // reads included.
    Box::pin(keyed_change(state, method, request, next)).await
}

/// A change that may carry an `Idempotency-Key`: claimed, run, and its response stored.
async fn keyed_change(
    state: crate::Shared,
    method: axum::http::Method,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::response::IntoResponse;
    let key = match idempotency_key(request.headers()) {
        Ok(Some(key)) => key,
        Ok(None) => return next.run(request).await,
        Err(problem) => return problem.into_response(),
    };
    let (mut parts, body) = request.into_parts();
    let authed =
        match <super::extract::Authed as axum::extract::FromRequestParts<_>>::from_request_parts(
            &mut parts, &state,
        )
        .await
        {
            Ok(authed) => authed,
            Err(problem) => return problem.into_response(),
        };
    let Some(user_id) = authed.user_id() else {
        // A service token writes nothing: the route answers it.
        parts.extensions.insert(authed);
        return next
            .run(axum::extract::Request::from_parts(parts, body))
            .await;
    };
    parts.extensions.insert(authed);
    let Ok(body) = axum::body::to_bytes(body, super::MAX_BODY_BYTES).await else {
        return Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Payload Too Large",
            "the request body is too large",
        )
        .into_response();
    };
    let route = format!("{method} {}", parts.uri.path());
    let request_text = String::from_utf8_lossy(&body).into_owned();
    match claim_before_change(&state, user_id, &key, &route, &request_text).await {
        Ok(None) => {}
        Ok(Some(replay)) => return replay,
        Err(problem) => return problem.into_response(),
    }
    let response = next
        .run(axum::extract::Request::from_parts(
            parts,
            axum::body::Body::from(body),
        ))
        .await;
    match finish_claim(&state, user_id, &key, response).await {
        Ok(response) => response,
        Err(problem) => problem.into_response(),
    }
}

/// Claims `key` in a transaction of its own (committed before the change runs), or answers
/// the stored response.
async fn claim_before_change(
    state: &crate::Shared,
    user_id: i64,
    key: &str,
    route: &str,
    request: &str,
) -> Result<Option<Response>, Problem> {
    let mut tx = state.pool.begin().await?;
    sqlx::query(EXPIRE_KEYS)
        .bind(user_id)
        .bind(IDEMPOTENCY_HOURS)
        .execute(&mut *tx)
        .await?;
    let claimed = sqlx::query(TAKE_OVER_OR_CLAIM)
        .bind(user_id)
        .bind(key)
        .bind(route)
        .bind(request.as_bytes())
        .bind(ABANDONED_AFTER_SECS)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
    if claimed {
        tx.commit().await?;
        return Ok(None);
    }
    let replay = claim_or_replay(&mut tx, user_id, key, route, request).await?;
    tx.commit().await?;
    Ok(replay)
}

/// Stores a success, or releases the key of a refused request.
async fn finish_claim(
    state: &crate::Shared,
    user_id: i64,
    key: &str,
    response: Response,
) -> Result<Response, Problem> {
    let status = response.status();
    if !status.is_success() {
        sqlx::query(RELEASE_KEY)
            .bind(user_id)
            .bind(key)
            .execute(&state.pool)
            .await?;
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|_| Problem::internal())?;
    let text = String::from_utf8_lossy(&body);
    let mut tx = state.pool.begin().await?;
    store_response(&mut tx, user_id, key, status, &text).await?;
    tx.commit().await?;
    Ok(Response::from_parts(parts, axum::body::Body::from(body)))
}
