//! The signature on a provider's delivery-report callback. Exotel signs nothing, so the
//! dispatcher puts the delivery's id and an HMAC-SHA256 of it (a secret it shares with the API)
//! in the `StatusCallback` URL it sends with each SMS; the API's callback route accepts a
//! report only for a delivery whose signature matches, so nobody else can mark a message
//! delivered or failed.

/// The query a callback URL carries: `delivery=<id>&sig=<hex HMAC>`.
pub fn query(secret: &[u8], delivery_id: i64) -> String {
    let signed = format!("sms-status:{delivery_id}");
    let sig = crate::signing::hmac_sha256_hex(secret, &[signed.as_bytes()]);
    format!("delivery={delivery_id}&sig={sig}")
}

/// Whether `sig` (hex) signs `delivery_id`; constant-time.
pub fn verify(secret: &[u8], delivery_id: i64, sig: &str) -> bool {
    let signed = format!("sms-status:{delivery_id}");
    crate::signing::verify_hmac_sha256_hex(secret, &[signed.as_bytes()], sig)
}

/// Whether any of `keys` (the current one, and the previous one during a rotation) signed
/// `delivery_id`: a report on an SMS sent before the rotation still lands.
pub fn verify_with_keys(keys: &[&[u8]], delivery_id: i64, sig: &str) -> bool {
    keys.iter().any(|key| verify(key, delivery_id, sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callback_signature_is_bound_to_its_delivery() {
        let q = query(b"callback-secret-0123456789", 42);
        let sig = q.split("sig=").nth(1).unwrap();
        assert!(q.starts_with("delivery=42&sig="));
        assert!(verify(b"callback-secret-0123456789", 42, sig));
        assert!(!verify(b"callback-secret-0123456789", 43, sig));
        assert!(!verify(b"another-secret-0123456789", 42, sig));
        assert!(!verify(b"callback-secret-0123456789", 42, "zz"));
        // During a rotation a report signed with either key lands; none other does.
        let keys: [&[u8]; 2] = [
            b"the-new-callback-secret-0123",
            b"callback-secret-0123456789",
        ];
        assert!(verify_with_keys(&keys, 42, sig));
        assert!(!verify_with_keys(&keys[..1], 42, sig));
        assert!(!verify_with_keys(&keys, 43, sig));
        // hmac.new(b"k", b"sms-status:1", "sha256").hexdigest(), computed with Python.
        assert_eq!(
            query(b"k", 1),
            "delivery=1&sig=41df5f97c679e08318d14c2430a5974b858a2a1b1c1004a7768edac094f2595d"
        );
    }
}
