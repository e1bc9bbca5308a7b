//! The signed link in every message that unsubscribes a person from one kind of notification
//! without signing in (RFC 8058 one-click): the dispatcher makes it, the API's
//! `/v1/unsubscribe` checks it. Both hold the same secret; the token carries the user, the
//! kind and an expiry, and an HMAC-SHA256 over them, so it can be neither forged nor bent to
//! another person or kind, and an old message's link stops working.

/// How long a link works: a statement read a few weeks late still unsubscribes.
pub const LINK_DAYS: i64 = 60;

/// The shortest secret accepted (the same floor as the webhook signing key).
pub const MIN_SECRET_BYTES: usize = 16;

/// The notification kinds a person can unsubscribe from (and `notifications.kind` takes).
pub const KINDS: &[&str] = &[
    "sip_executed",
    "sip_pending",
    "sip_failed",
    "sip_no_nav",
    "sip_cancelled",
    "sip_reversed",
    "order_executed",
    "order_failed",
    "plan_stopped",
    "nav_alert",
    "statement_ready",
];

/// What a person is unsubscribing from, in the words the unsubscribe page shows: one entry
/// per kind of [`KINDS`] (a test holds the two together).
pub fn described(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "sip_executed" => "SIP instalments invested",
        "sip_pending" => "SIP instalments waiting for their NAV",
        "sip_failed" => "SIP instalments that could not be invested",
        "sip_no_nav" => "SIP instalments with no NAV",
        "sip_cancelled" => "SIPs cancelled",
        "sip_reversed" => "SIP instalments reversed by the bank",
        "order_executed" => "orders executed",
        "order_failed" => "orders not executed",
        "plan_stopped" => "SWPs and STPs stopped",
        "nav_alert" => "NAV alerts",
        "statement_ready" => "monthly statements",
        _ => return None,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("not an unsubscribe link")]
    Malformed,
    #[error("the link's signature does not match")]
    BadSignature,
    #[error("the link has expired; unsubscribe in the app's notification settings")]
    Expired,
}

/// What a valid link unsubscribes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub user_id: i64,
    pub kind: String,
}

/// `<user>.<kind>.<expires unix>.<hex HMAC>`: URL-safe as it is.
pub fn token(secret: &[u8], user_id: i64, kind: &str, expires_unix: i64) -> String {
    let payload = format!("{user_id}.{kind}.{expires_unix}");
    let signature = crate::signing::hmac_sha256_hex(secret, &[payload.as_bytes()]);
    format!("{payload}.{signature}")
}

/// Checks a token at `now_unix`; the comparison of signatures takes constant time.
pub fn verify(secret: &[u8], token: &str, now_unix: i64) -> Result<Unsubscribe, LinkError> {
    let mut parts = token.splitn(4, '.');
    let (Some(user), Some(kind), Some(expires), Some(tag)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(LinkError::Malformed);
    };
    let user_id: i64 = user.parse().map_err(|_| LinkError::Malformed)?;
    let expires: i64 = expires.parse().map_err(|_| LinkError::Malformed)?;
    // Not hex: not a link's shape. Hex of the wrong length: a signature that does not match.
    if tag.is_empty() || tag.len() % 2 != 0 || !tag.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(LinkError::Malformed);
    }
    // The signature first: a link we did not sign is refused as such, whatever it names.
    let payload = format!("{user_id}.{kind}.{expires}");
    if !crate::signing::verify_hmac_sha256_hex(secret, &[payload.as_bytes()], tag) {
        return Err(LinkError::BadSignature);
    }
    if !KINDS.contains(&kind) {
        return Err(LinkError::Malformed);
    }
    if now_unix > expires {
        return Err(LinkError::Expired);
    }
    // No link we sign lives longer than LINK_DAYS (a day's slack for the signer's clock): one
    // that claims to was signed by someone else holding the key, a key leaked and not yet
    // dropped, and is refused as such rather than honoured for years.
    if expires > now_unix.saturating_add((LINK_DAYS + 1) * 86_400) {
        return Err(LinkError::BadSignature);
    }
    Ok(Unsubscribe {
        user_id,
        kind: kind.to_string(),
    })
}

/// Checks a token against each of `keys` in turn: the current key and, while a rotation is
/// under way, the previous one, so a link in a message sent before the rotation keeps working
/// until it expires. A link none of them signed is refused as such.
pub fn verify_with_keys(
    keys: &[&[u8]],
    token: &str,
    now_unix: i64,
) -> Result<Unsubscribe, LinkError> {
    for key in keys {
        match verify(key, token, now_unix) {
            Err(LinkError::BadSignature) => continue,
            answer => return answer,
        }
    }
    Err(LinkError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"unsubscribe-secret-0123456789";

    #[test]
    fn a_link_works_until_it_expires_and_cannot_be_bent() {
        let t = token(SECRET, 42, "nav_alert", 1_800_000_000);
        assert_eq!(
            verify(SECRET, &t, 1_799_999_999),
            Ok(Unsubscribe {
                user_id: 42,
                kind: "nav_alert".into()
            })
        );
        assert_eq!(verify(SECRET, &t, 1_800_000_001), Err(LinkError::Expired));
        // Another person, another kind, a later expiry, another key: refused.
        for bent in [
            t.replacen("42.", "43.", 1),
            t.replacen("nav_alert", "statement_ready", 1),
            t.replacen("1800000000", "1900000000", 1),
        ] {
            assert_eq!(
                verify(SECRET, &bent, 0),
                Err(LinkError::BadSignature),
                "{bent}"
            );
        }
        assert_eq!(
            verify(b"another-secret-0123456789", &t, 0),
            Err(LinkError::BadSignature)
        );
        for junk in ["", "1.2.3", "x.nav_alert.1.00", "1.nav_alert.1.zz"] {
            assert_eq!(verify(SECRET, junk, 0), Err(LinkError::Malformed), "{junk}");
        }
        assert_eq!(
            verify(SECRET, "1.nope.1.00", 0),
            Err(LinkError::BadSignature)
        );
        // Signed, but for a kind that is not one: still no use.
        assert_eq!(
            verify(SECRET, &token(SECRET, 1, "nope", 9), 0),
            Err(LinkError::Malformed)
        );
    }

    #[test]
    fn a_link_signed_before_a_rotation_works_until_it_expires() {
        const OLD: &[u8] = b"the-key-before-rotation-0123";
        let old = token(OLD, 42, "nav_alert", 1_800_000_000);
        let new = token(SECRET, 42, "nav_alert", 1_800_000_000);
        for t in [&old, &new] {
            assert_eq!(
                verify_with_keys(&[SECRET, OLD], t, 1_799_999_999).map(|u| u.user_id),
                Ok(42)
            );
            assert_eq!(
                verify_with_keys(&[SECRET, OLD], t, 1_800_000_001),
                Err(LinkError::Expired)
            );
        }
        // Once the previous key is dropped, its links are refused; a key nobody holds never
        // signed anything; no key at all accepts nothing.
        assert_eq!(
            verify_with_keys(&[SECRET], &old, 0),
            Err(LinkError::BadSignature)
        );
        let forged = token(
            b"a-key-nobody-holds-0123456",
            42,
            "nav_alert",
            1_800_000_000,
        );
        assert_eq!(
            verify_with_keys(&[SECRET, OLD], &forged, 0),
            Err(LinkError::BadSignature)
        );
        assert_eq!(verify_with_keys(&[], &new, 0), Err(LinkError::BadSignature));
        assert_eq!(
            verify_with_keys(&[SECRET, OLD], "1.2.3", 0),
            Err(LinkError::Malformed)
        );
    }

    #[test]
    fn a_link_that_outlives_any_we_sign_is_refused() {
        let now = 1_800_000_000;
        let longest = now + (LINK_DAYS + 1) * 86_400;
        assert!(verify(SECRET, &token(SECRET, 7, "nav_alert", longest), now).is_ok());
        assert_eq!(
            verify(SECRET, &token(SECRET, 7, "nav_alert", longest + 1), now),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            verify(SECRET, &token(SECRET, 7, "nav_alert", i64::MAX), now),
            Err(LinkError::BadSignature)
        );
    }

    #[test]
    fn every_kind_is_described_and_nothing_else_is() {
        for kind in KINDS {
            assert!(described(kind).is_some(), "{kind} has no words");
        }
        assert_eq!(described("nope"), None);
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_payload() {
        // Computed with Python: hmac.new(b"Jefe", b"7.nav_alert.1700000000", "sha256").hexdigest()
        assert_eq!(
            token(b"Jefe", 7, "nav_alert", 1_700_000_000),
            "7.nav_alert.1700000000.8691d752b708ebbe2f990fcf3fcd1843f3c0ed755d7b448d89890779cd2da51e"
        );
    }
}
