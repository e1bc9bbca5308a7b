//! Bearer tokens as Supabase Auth or Auth0 issue them: HS256 with a shared secret, RS256 and
//! ES256 against a JWKS (a file, or a URL fetched and cached). The token's algorithm picks the
//! key *type* we verify with, and verification accepts only that algorithm: an RS256 public key
//! is never used as an HS256 secret, and `alg: none` does not parse.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::RwLock;

/// Where RS256/ES256 keys come from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    File(std::path::PathBuf),
    Url(String),
}

impl JwksSource {
    pub fn parse(location: &str) -> Self {
        if location.starts_with("http://") || location.starts_with("https://") {
            Self::Url(location.to_string())
        } else {
            Self::File(location.into())
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    pub hs256_secret: Option<String>,
    pub jwks: Option<JwksSource>,
    /// Required `aud` (Supabase: `authenticated`); unset: not checked.
    pub audience: Option<String>,
    pub issuer: Option<String>,
    /// The `role` claim that may read any user's data (Supabase: `service_role`).
    pub service_role: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("token: {0}")]
    Invalid(String),
    #[error("JWKS: {0}")]
    Jwks(String),
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    role: Option<String>,
    /// Supabase and Auth0 both put the verified address here.
    #[serde(default)]
    email: Option<String>,
    /// Supabase's `phone`, Auth0's `phone_number`.
    #[serde(default, alias = "phone_number")]
    phone: Option<String>,
}

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Caller {
    pub subject: String,
    pub service: bool,
    pub email: Option<String>,
    pub phone: Option<String>,
}

pub struct Verifier {
    config: AuthConfig,
    http: reqwest::Client,
    jwks: RwLock<Option<(Instant, JwkSet)>>,
}

/// How long a fetched JWKS is trusted before it is fetched again; an unknown `kid` refetches
/// sooner (key rotation), at most every `JWKS_MIN_REFETCH`.
const JWKS_TTL: Duration = Duration::from_secs(600);
const JWKS_MIN_REFETCH: Duration = Duration::from_secs(30);

impl Verifier {
    pub fn new(config: AuthConfig) -> Self {
        Self {
            config,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            jwks: RwLock::new(None),
        }
    }

    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let key = match header.alg {
            Algorithm::HS256 => {
                let secret = self.config.hs256_secret.as_deref().ok_or_else(|| {
                    AuthError::Invalid("HS256 tokens are not accepted here".into())
                })?;
                DecodingKey::from_secret(secret.as_bytes())
            }
            Algorithm::RS256 | Algorithm::ES256 => {
                self.jwk_key(header.kid.as_deref(), header.alg).await?
            }
            other => {
                return Err(AuthError::Invalid(format!(
                    "algorithm {other:?} is not accepted"
                )))
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = 30;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        match &self.config.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        if let Some(issuer) = &self.config.issuer {
            validation.set_issuer(&[issuer]);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        Ok(Caller {
            service: data.claims.role.as_deref() == Some(self.config.service_role.as_str()),
            subject: data.claims.sub,
            email: data.claims.email.filter(|e| !e.is_empty()),
            phone: data.claims.phone.filter(|p| !p.is_empty()),
        })
    }

    async fn jwk_key(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, AuthError> {
        let source =
            self.config.jwks.as_ref().ok_or_else(|| {
                AuthError::Invalid(format!("{alg:?} tokens are not accepted here"))
            })?;
        if let Some(key) = self.cached_key(kid, alg).await? {
            return Ok(key);
        }
        // An unknown kid may be a rotated key: refetch, but not for every bogus token.
        let recent = self
            .jwks
            .read()
            .await
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < JWKS_MIN_REFETCH);
        if !recent {
            let set = self.fetch(source).await?;
            *self.jwks.write().await = Some((Instant::now(), set));
        }
        self.cached_key(kid, alg)
            .await?
            .ok_or_else(|| AuthError::Invalid("no JWKS key matches the token".into()))
    }

    async fn cached_key(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Option<DecodingKey>, AuthError> {
        match self.jwks.read().await.as_ref() {
            Some((at, set)) if at.elapsed() < JWKS_TTL => find(set, kid, alg),
            _ => Ok(None),
        }
    }

    async fn fetch(&self, source: &JwksSource) -> Result<JwkSet, AuthError> {
        let text = match source {
            JwksSource::File(path) => tokio::fs::read_to_string(path)
                .await
                .map_err(|e| AuthError::Jwks(format!("{}: {e}", path.display())))?,
            JwksSource::Url(url) => self
                .http
                .get(url)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| AuthError::Jwks(format!("{url}: {e}")))?
                .text()
                .await
                .map_err(|e| AuthError::Jwks(format!("{url}: {e}")))?,
        };
        serde_json::from_str(&text).map_err(|e| AuthError::Jwks(e.to_string()))
    }
}

/// The key for `kid` (or the only key of the token's type when the token names none), as long
/// as it is a key of the algorithm's type.
fn find(set: &JwkSet, kid: Option<&str>, alg: Algorithm) -> Result<Option<DecodingKey>, AuthError> {
    use jsonwebtoken::jwk::AlgorithmParameters;
    let fits = |jwk: &&jsonwebtoken::jwk::Jwk| {
        matches!(
            (&jwk.algorithm, alg),
            (AlgorithmParameters::RSA(_), Algorithm::RS256)
                | (AlgorithmParameters::EllipticCurve(_), Algorithm::ES256)
        )
    };
    let jwk = match kid {
        Some(kid) => set.find(kid).filter(fits),
        None => {
            let mut candidates = set.keys.iter().filter(fits);
            match (candidates.next(), candidates.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            }
        }
    };
    jwk.map(|jwk| DecodingKey::from_jwk(jwk).map_err(|e| AuthError::Jwks(e.to_string())))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &str = "a-shared-secret-of-at-least-32-bytes!";

    fn fixture(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    fn verifier(audience: Option<&str>) -> Verifier {
        Verifier::new(AuthConfig {
            hs256_secret: Some(SECRET.into()),
            jwks: Some(JwksSource::File(fixture("jwks.json"))),
            audience: audience.map(str::to_string),
            issuer: None,
            service_role: "service_role".into(),
        })
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn claims(sub: &str) -> serde_json::Value {
        json!({ "sub": sub, "exp": now() + 600, "iat": now(), "aud": "authenticated" })
    }

    fn hs256(claims: &serde_json::Value, secret: &str) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn signed(alg: Algorithm, kid: &str, pem: &str, claims: &serde_json::Value) -> String {
        let pem = std::fs::read(fixture(pem)).unwrap();
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
            _ => EncodingKey::from_ec_pem(&pem).unwrap(),
        };
        let mut header = Header::new(alg);
        header.kid = Some(kid.into());
        encode(&header, claims, &key).unwrap()
    }

    async fn refused(verifier: &Verifier, token: &str) -> String {
        match verifier.verify(token).await {
            Ok(caller) => panic!("accepted: {caller:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[tokio::test]
    async fn accepts_hs256_rs256_and_es256_tokens() {
        let verifier = verifier(Some("authenticated"));
        let caller = verifier
            .verify(&hs256(&claims("user-a"), SECRET))
            .await
            .unwrap();
        assert_eq!(caller.subject, "user-a");
        assert!(!caller.service);
        let rs = signed(Algorithm::RS256, "rsa-1", "rsa.pem", &claims("user-b"));
        assert_eq!(verifier.verify(&rs).await.unwrap().subject, "user-b");
        let es = signed(Algorithm::ES256, "ec-1", "ec.pem", &claims("user-c"));
        assert_eq!(verifier.verify(&es).await.unwrap().subject, "user-c");
        let mut service = claims("backend");
        service["role"] = "service_role".into();
        assert!(
            verifier
                .verify(&hs256(&service, SECRET))
                .await
                .unwrap()
                .service
        );
    }

    #[tokio::test]
    async fn refuses_expired_early_wrong_audience_none_and_wrong_keys() {
        let verifier = verifier(Some("authenticated"));
        let mut expired = claims("u");
        expired["exp"] = (now() - 3600).into();
        assert!(refused(&verifier, &hs256(&expired, SECRET))
            .await
            .contains("ExpiredSignature"));
        let mut early = claims("u");
        early["nbf"] = (now() + 3600).into();
        assert!(refused(&verifier, &hs256(&early, SECRET))
            .await
            .contains("ImmatureSignature"));
        let mut audience = claims("u");
        audience["aud"] = "someone-else".into();
        assert!(refused(&verifier, &hs256(&audience, SECRET))
            .await
            .contains("InvalidAudience"));
        let mut no_exp = claims("u");
        no_exp.as_object_mut().unwrap().remove("exp");
        refused(&verifier, &hs256(&no_exp, SECRET)).await;

        // alg: none, unsigned.
        let none = format!(
            "{}.{}.",
            base64_url(br#"{"alg":"none","typ":"JWT"}"#),
            base64_url(claims("u").to_string().as_bytes())
        );
        refused(&verifier, &none).await;
        // The right shape signed with the wrong key.
        assert!(refused(
            &verifier,
            &hs256(&claims("u"), "another-secret-of-32-bytes-or-more")
        )
        .await
        .contains("InvalidSignature"));
        let forged = signed(Algorithm::RS256, "rsa-1", "rsa_other.pem", &claims("u"));
        assert!(refused(&verifier, &forged)
            .await
            .contains("InvalidSignature"));
        // An unknown kid, and an EC kid on an RS256 token.
        refused(
            &verifier,
            &signed(Algorithm::RS256, "rsa-9", "rsa.pem", &claims("u")),
        )
        .await;
        refused(
            &verifier,
            &signed(Algorithm::RS256, "ec-1", "rsa.pem", &claims("u")),
        )
        .await;
        // The JWKS's public RSA key used as an HS256 secret (algorithm confusion).
        let jwks = std::fs::read_to_string(fixture("jwks.json")).unwrap();
        let n = serde_json::from_str::<serde_json::Value>(&jwks).unwrap()["keys"][0]["n"]
            .as_str()
            .unwrap()
            .to_string();
        let only_jwks = Verifier::new(AuthConfig {
            jwks: Some(JwksSource::File(fixture("jwks.json"))),
            service_role: "service_role".into(),
            ..AuthConfig::default()
        });
        assert!(refused(&only_jwks, &hs256(&claims("u"), &n))
            .await
            .contains("not accepted"));
    }

    fn base64_url(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
                << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
}
