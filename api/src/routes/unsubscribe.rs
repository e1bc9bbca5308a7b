//! Unsubscribing without signing in: the signed link in every e-mail (`serving::unsubscribe`)
//! opens a page that says what it stops and asks to confirm (`GET`, which changes nothing: mail
//! scanners follow links), and confirming (`POST`, also the one-click of RFC 8058 that mail
//! clients send with `List-Unsubscribe=One-Click`) mutes that kind on the person's own channels.
//! No bearer token: the link is the credential, bound to one person and kind, and it expires.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serving::secret::rotation_keys;
use serving::unsubscribe::{verify_with_keys, LinkError, Unsubscribe};

use super::extract::ApiQuery;
use super::timed;
use crate::problem::Problem;
use crate::Shared;

pub fn routes() -> Router<Shared> {
    Router::new().route("/unsubscribe", get(show).post(confirm))
}

#[derive(Deserialize)]
struct Link {
    token: Option<String>,
}

/// Adds the kind to the person's muted kinds (creating their preferences with the defaults if
/// they never set any); a user who no longer exists has nothing left to unsubscribe from.
const MUTE: &str = "INSERT INTO notification_preferences AS p (user_id, muted_kinds) \
     SELECT user_id, ARRAY[$2::text] FROM users WHERE user_id = $1 \
     ON CONFLICT (user_id) DO UPDATE SET \
       muted_kinds = (SELECT array_agg(DISTINCT k ORDER BY k) FROM unnest(p.muted_kinds || $2::text) AS k), \
       updated_at = now()";

fn checked(state: &Shared, link: &Link) -> Result<Unsubscribe, Problem> {
    let Some(secret) = &state.unsubscribe_secret else {
        return Err(Problem::not_found("unsubscribe links are not enabled here"));
    };
    let token = link
        .token
        .as_deref()
        .ok_or_else(|| Problem::bad_request("token: required"))?;
    let keys = rotation_keys(secret, state.unsubscribe_previous_secret.as_ref());
    // Not a link's shape: 400. A forged, bent or expired one: 403, with the way out.
    verify_with_keys(&keys, token, state.clock.now().timestamp()).map_err(|e| match e {
        LinkError::Malformed => Problem::bad_request(e.to_string()),
        LinkError::BadSignature | LinkError::Expired => Problem::forbidden(e.to_string()),
    })
}

/// What a kind is, in the words of the page.
/// A verified link names a kind of the contract, which always has words; "these
/// notifications" only if the two lists ever drifted.
fn words(kind: &str) -> &'static str {
    serving::unsubscribe::described(kind).unwrap_or("these notifications")
}

fn page(title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\"><title>{title}</title></head>\
         <body style=\"font-family: sans-serif; max-width: 480px; margin: 48px auto; padding: 0 16px\">\
         <h1 style=\"font-size: 20px\">{title}</h1>{body}</body></html>\n"
    );
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

async fn show(
    State(state): State<Shared>,
    ApiQuery(link): ApiQuery<Link>,
) -> Result<Response, Problem> {
    let unsubscribe = checked(&state, &link)?;
    // The token is hex, digits, dots and an underscore in the kind: nothing to escape, checked
    // by `verify` before it is written into the page.
    let token = link.token.unwrap_or_default();
    Ok(page(
        "Unsubscribe",
        &format!(
            "<p>Stop e-mails, SMS and push messages about <strong>{}</strong>? You will still \
             see them in the app.</p>\
             <form method=\"post\" action=\"?token={token}\">\
             <button type=\"submit\" name=\"List-Unsubscribe\" value=\"One-Click\">Unsubscribe</button>\
             </form>",
            words(&unsubscribe.kind)
        ),
    ))
}

async fn confirm(
    State(state): State<Shared>,
    ApiQuery(link): ApiQuery<Link>,
) -> Result<Response, Problem> {
    let unsubscribe = checked(&state, &link)?;
    timed(
        &state,
        sqlx::query(MUTE)
            .bind(unsubscribe.user_id)
            .bind(&unsubscribe.kind)
            .execute(&state.pool),
    )
    .await?;
    tracing::info!(user_id = unsubscribe.user_id, kind = %unsubscribe.kind, "unsubscribed by link");
    Ok(page(
        "Unsubscribed",
        &format!(
            "<p>You will no longer get e-mails, SMS or push messages about <strong>{}</strong>. \
             To have them again, turn them back on in the app's notification settings.</p>",
            words(&unsubscribe.kind)
        ),
    ))
}
