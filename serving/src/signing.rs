//! HMAC-SHA256 in lower-case hex, the one signature every signed thing here carries: webhook
//! bodies (`X-Sipline-Signature`), unsubscribe links and delivery-report callback URLs. One
//! implementation, so the signer and each verifier cannot drift apart.

/// Lower-case hex HMAC-SHA256 over the concatenated `parts`.
pub fn hmac_sha256_hex(secret: &[u8], parts: &[&[u8]]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut context = ring::hmac::Context::with_key(&key);
    for part in parts {
        context.update(part);
    }
    hex(context.sign().as_ref())
}

/// Whether `signature` (hex, either case) is the HMAC-SHA256 of the concatenated `parts`; the
/// comparison takes constant time, and anything that is not 64 hex digits is refused.
pub fn verify_hmac_sha256_hex(secret: &[u8], parts: &[&[u8]], signature: &str) -> bool {
    let Some(tag) = unhex(signature).filter(|tag| tag.len() == 32) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    ring::hmac::verify(&key, &parts.concat(), &tag).is_ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4231_test_case_2() {
        // RFC 4231 §4.3: key "Jefe", data "what do ya want for nothing?".
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert_eq!(
            hmac_sha256_hex(b"Jefe", &[b"what do ya want ", b"for nothing?"]),
            expected
        );
        assert!(verify_hmac_sha256_hex(
            b"Jefe",
            &[b"what do ya want for nothing?"],
            expected
        ));
        assert!(verify_hmac_sha256_hex(
            b"Jefe",
            &[b"what do ya want for nothing?"],
            &expected.to_uppercase()
        ));
        for bent in [&expected[..62], "zz", "", &format!("{}0", &expected[..63])] {
            assert!(!verify_hmac_sha256_hex(
                b"Jefe",
                &[b"what do ya want for nothing?"],
                bent
            ));
        }
        assert!(!verify_hmac_sha256_hex(
            b"Jefe",
            &[b"what do ya want"],
            expected
        ));
    }
}
