//! Where a user's notifications go: channels, addresses, quiet hours and the time zone they are
//! read in. Everything is checked before it is stored (OWASP API3/API8): a time zone PostgreSQL
//! does not know, a channel without its address, or an address that could inject headers into
//! an e-mail is a 422, never a row that stalls the dispatcher.

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::NaiveTime;
use serde::{Deserialize, Serialize};

use super::extract::{ApiJson, ApiPath, Authed, UserRef};
use super::{json_value, timed};
use crate::problem::Problem;
use crate::Shared;

pub fn routes() -> Router<Shared> {
    Router::new().route(
        "/users/{user_id}/notification-preferences",
        get(get_preferences).put(put_preferences),
    )
}

const CHANNELS: [&str; 4] = ["webhook", "email", "sms", "push"];

const SELECT_PREFERENCES: &str = "SELECT channels, email, phone, push_token, \
            to_char(quiet_start, 'HH24:MI') AS quiet_start, to_char(quiet_end, 'HH24:MI') AS quiet_end, time_zone, \
            muted_kinds, push_platform \
     FROM notification_preferences WHERE user_id = $1";

// `muted_kinds` ($9) left out keeps what is stored: an app that does not know the field must not
// undo an unsubscribe made from an e-mail.
const UPSERT_PREFERENCES: &str = "INSERT INTO notification_preferences AS p \
            (user_id, channels, email, phone, push_token, quiet_start, quiet_end, time_zone, muted_kinds, \
             push_platform) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, '{}'), $10) \
     ON CONFLICT (user_id) DO UPDATE SET channels = EXCLUDED.channels, email = EXCLUDED.email, \
        phone = EXCLUDED.phone, push_token = EXCLUDED.push_token, quiet_start = EXCLUDED.quiet_start, \
        quiet_end = EXCLUDED.quiet_end, time_zone = EXCLUDED.time_zone, \
        push_platform = EXCLUDED.push_platform, muted_kinds = coalesce($9, p.muted_kinds), updated_at = now() \
     RETURNING p.muted_kinds";

const IS_TIME_ZONE: &str = "SELECT sipline_is_time_zone($1)";

/// As stored, and as `PUT` takes them (every field; what is left out is cleared).
#[derive(sqlx::FromRow, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Preferences {
    channels: Vec<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    push_token: Option<String>,
    /// `HH:MM` in `time_zone`: SMS, e-mail and push wait until `quiet_end`.
    #[serde(default)]
    quiet_start: Option<String>,
    #[serde(default)]
    quiet_end: Option<String>,
    #[serde(default = "india")]
    time_zone: String,
    /// Kinds the person unsubscribed from on e-mail, SMS and push (the app still lists them).
    /// Left out of a `PUT`: kept as stored.
    #[serde(default)]
    muted_kinds: Option<Vec<String>>,
    /// The push service `push_token` belongs to: `fcm` (default) or `apns`.
    #[serde(default = "fcm")]
    push_platform: String,
}

fn fcm() -> String {
    "fcm".into()
}

fn india() -> String {
    "Asia/Kolkata".into()
}

impl Default for Preferences {
    /// No row yet: the platform webhook only, no quiet hours.
    fn default() -> Self {
        Self {
            channels: vec!["webhook".into()],
            email: None,
            phone: None,
            push_token: None,
            quiet_start: None,
            quiet_end: None,
            time_zone: india(),
            muted_kinds: Some(Vec::new()),
            push_platform: fcm(),
        }
    }
}

async fn get_preferences(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath(user): ApiPath<UserRef>,
) -> Result<Response, Problem> {
    let user_id = authed.reach(user, false)?;
    let stored: Option<Preferences> = timed(
        &state,
        sqlx::query_as(SELECT_PREFERENCES)
            .bind(user_id)
            .fetch_optional(&state.pool),
    )
    .await?;
    Ok(json_value(&stored.unwrap_or_default()))
}

/// A single-line value without control characters (no CR/LF header injection).
fn is_plain(text: &str) -> bool {
    !text.chars().any(char::is_control)
}

/// E.164: `+`, then 8 to 15 digits.
fn phone_ok(phone: &str) -> bool {
    phone
        .strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

/// `HH:MM`, two digits each (chrono alone would take `7:5`).
fn quiet_time(text: Option<&str>) -> Result<Option<NaiveTime>, ()> {
    text.map(|t| {
        let b = t.as_bytes();
        let shaped =
            b.len() == 5 && b[2] == b':' && [0, 1, 3, 4].iter().all(|&i| b[i].is_ascii_digit());
        if !shaped {
            return Err(());
        }
        NaiveTime::parse_from_str(t, "%H:%M").map_err(|_| ())
    })
    .transpose()
}

async fn put_preferences(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath(user): ApiPath<UserRef>,
    ApiJson(prefs): ApiJson<Preferences>,
) -> Result<Response, Problem> {
    let user_id = authed.reach(user, true)?;
    let mut errors = Vec::new();
    let mut fail =
        |field: &str, message: &str| errors.push((field.to_string(), message.to_string()));
    let mut channels = prefs.channels.clone();
    channels.sort();
    channels.dedup();
    if channels.len() != prefs.channels.len()
        || channels.iter().any(|c| !CHANNELS.contains(&c.as_str()))
    {
        fail("channels", "distinct values of webhook, email, sms, push");
    }
    let has = |channel: &str| prefs.channels.iter().any(|c| c == channel);
    match prefs.email.as_deref() {
        Some(email) if !serving::is_mailbox(email) => fail("email", "not an e-mail address"),
        None if has("email") => fail("email", "required for the email channel"),
        _ => {}
    }
    match prefs.phone.as_deref() {
        Some(phone) if !phone_ok(phone) => fail("phone", "an E.164 number: + and 8 to 15 digits"),
        None if has("sms") => fail("phone", "required for the sms channel"),
        _ => {}
    }
    match prefs.push_token.as_deref() {
        Some(token) if token.is_empty() || token.chars().count() > 4096 || !is_plain(token) => {
            fail("push_token", "1 to 4096 printable characters")
        }
        None if has("push") => fail("push_token", "required for the push channel"),
        _ => {}
    }
    let start = quiet_time(prefs.quiet_start.as_deref());
    let end = quiet_time(prefs.quiet_end.as_deref());
    match (start, end) {
        (Err(()), _) => fail("quiet_start", "HH:MM"),
        (_, Err(())) => fail("quiet_end", "HH:MM"),
        (Ok(s), Ok(e)) if s.is_some() != e.is_some() => {
            fail("quiet_end", "quiet_start and quiet_end go together")
        }
        _ => {}
    }
    let zone_known = prefs.time_zone.len() <= 64
        && is_plain(&prefs.time_zone)
        && timed(
            &state,
            sqlx::query_scalar::<_, bool>(IS_TIME_ZONE)
                .bind(&prefs.time_zone)
                .fetch_one(&state.pool),
        )
        .await?;
    if !zone_known {
        errors.push((
            "time_zone".into(),
            "not a time zone PostgreSQL knows (an IANA name such as Asia/Kolkata)".into(),
        ));
    }
    if !["fcm", "apns"].contains(&prefs.push_platform.as_str()) {
        errors.push(("push_platform".into(), "fcm or apns".into()));
    }
    if let Some(muted) = &prefs.muted_kinds {
        let mut distinct = muted.clone();
        distinct.sort();
        distinct.dedup();
        if distinct.len() != muted.len()
            || muted
                .iter()
                .any(|k| !serving::unsubscribe::KINDS.contains(&k.as_str()))
        {
            errors.push((
                "muted_kinds".into(),
                format!(
                    "distinct notification kinds: {}",
                    serving::unsubscribe::KINDS.join(", ")
                ),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(Problem::invalid(errors));
    }
    let mut prefs = prefs;
    prefs.muted_kinds = Some(
        timed(
            &state,
            sqlx::query_scalar::<_, Vec<String>>(UPSERT_PREFERENCES)
                .bind(user_id)
                .bind(&prefs.channels)
                .bind(prefs.email.as_deref())
                .bind(prefs.phone.as_deref())
                .bind(prefs.push_token.as_deref())
                .bind(start.ok().flatten())
                .bind(end.ok().flatten())
                .bind(&prefs.time_zone)
                .bind(prefs.muted_kinds.as_ref())
                .bind(&prefs.push_platform)
                .fetch_one(&state.pool),
        )
        .await?,
    );
    Ok(json_value(&prefs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_before_they_reach_a_channel() {
        assert!(serving::is_mailbox("asha@example.in"));
        for bad in [
            "asha@example.in\r\nBcc: all@example.com",
            "asha",
            "@example.in",
            "asha@localhost",
            "a sha@example.in",
        ] {
            assert!(!serving::is_mailbox(bad), "{bad:?}");
        }
        assert!(phone_ok("+919812345678"));
        for bad in [
            "919812345678",
            "+91 98123 45678",
            "+12",
            "+1234567890123456",
        ] {
            assert!(!phone_ok(bad), "{bad:?}");
        }
        assert_eq!(
            quiet_time(Some("22:30")),
            Ok(NaiveTime::from_hms_opt(22, 30, 0))
        );
        assert!(quiet_time(Some("25:00")).is_err());
    }
}
