//! A secret held in memory: printed as `[redacted]` by `Debug` and `Display`, so a
//! configuration struct can derive `Debug` and no log, error or `--check-args` shows the
//! value; it is read only through [`Secret::expose`], at the one place that sends or signs.

use std::fmt;

#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself: only for the request or signature that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its length in bytes (the floors on key sizes), without exposing it.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The keys a signature is made or checked with while a key is rotated: the current one
/// first (what new messages are signed with), then the previous one if set, so links and
/// reports signed before the rotation keep verifying until the previous key is dropped.
pub fn rotation_keys<'a>(current: &'a Secret, previous: Option<&'a Secret>) -> Vec<&'a [u8]> {
    std::iter::once(current)
        .chain(previous)
        .map(|key| key.expose().as_bytes())
        .collect()
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_string())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let secret = Secret::new("hunter2-hunter2");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Config {
            secret: Secret,
            maybe: Option<Secret>,
        }
        let config = Config {
            secret: secret.clone(),
            maybe: Some(secret.clone()),
        };
        for shown in [
            format!("{config:?}"),
            format!("{config:#?}"),
            format!("{secret}"),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("[redacted]"), "{shown}");
        }
        assert_eq!(secret.expose(), "hunter2-hunter2");
        assert_eq!(secret.len(), 15);
    }

    #[test]
    fn rotation_keys_put_the_current_key_first() {
        let (current, previous) = (Secret::new("new-key"), Secret::new("old-key"));
        assert_eq!(
            rotation_keys(&current, Some(&previous)),
            [b"new-key".as_slice(), b"old-key".as_slice()]
        );
        assert_eq!(rotation_keys(&current, None), [b"new-key".as_slice()]);
    }
}
