//! The signature on a provider's delivery-report callback. Exotel signs nothing, so the
//! dispatcher puts the delivery's id and an HMAC-SHA256 of it (a secret it shares with the API)
//! in the `StatusCallback` URL it sends with each SMS; the API's callback route accepts a
//! report only for a delivery whose signature matches, so nobody else can mark a message
//! delivered or failed.

/// The query a callback URL carries: `delivery=<id>&sig=<hex HMAC>`.
pub fn query(secret: &[u8], delivery_id: i64) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, format!("sms-status:{delivery_id}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("delivery={delivery_id}&sig={hex}")
}

/// Whether `sig` (hex) signs `delivery_id`; constant-time.
pub fn verify(secret: &[u8], delivery_id: i64, sig: &str) -> bool {
    if sig.len() != 64 || !sig.bytes().all(|b| b.is_ascii_hexdigit()) {
        return false;
    }
    let Some(tag): Option<Vec<u8>> = (0..sig.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&sig[i..i + 2], 16).ok())
        .collect()
    else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    ring::hmac::verify(&key, format!("sms-status:{delivery_id}").as_bytes(), &tag).is_ok()
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
        // hmac.new(b"k", b"sms-status:1", "sha256").hexdigest(), computed with Python.
        assert_eq!(
            query(b"k", 1),
            "delivery=1&sig=41df5f97c679e08318d14c2430a5974b858a2a1b1c1004a7768edac094f2595d"
        );
    }
}
