//! Bearer tokens as Supabase Auth or Auth0 issue them: HS256 with a shared secret, RS256 and
//! ES256 against a JWKS (a file, or a URL fetched and cached). The token's algorithm picks the
//! key *type* we verify with, and verification accepts only that algorithm: an RS256 public key
//! is never used as an HS256 secret, and `alg: none` does not parse.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    pub hs256_secret: Option<serving::secret::Secret>,
    pub jwks: Option<JwksSource>,
    /// Required `aud` (Supabase: `authenticated`); unset: not checked (allowed for an HS256
    /// secret only, which is the application's own).
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
    /// Required (`set_required_spec_claims`): a verified token is remembered until then. A
    /// number, as `jsonwebtoken` reads it: an issuer writing `1.7e9` is not refused here.
    exp: f64,
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

/// A fetched JWKS, and when to try the URL again.
struct JwksState {
    set: Option<JwkSet>,
    fetched_at: Option<Instant>,
    /// No fetch before this (backing off after failures, or a refetch just done).
    next_fetch: Option<Instant>,
    failures: u32,
}

/// A verified token is remembered at most this long: a key withdrawn from the JWKS stops
/// being honoured within it, as it would have with a cached JWKS anyway.
const VERIFIED_FOR: Duration = Duration::from_secs(60);

/// Bytes of tokens remembered (a token is weighed by its length plus the caller it names):
/// tens of thousands of active clients.
const VERIFIED_BYTES: u64 = 32 * 1024 * 1024;

/// A token that verified, whom it named, and until when (unix seconds) that holds.
#[derive(Clone)]
struct Verified {
    caller: Arc<Caller>,
    until: u64,
}

#[derive(Clone)]
struct TokenWeight;

impl quick_cache::Weighter<Box<str>, Verified> for TokenWeight {
    fn weight(&self, token: &Box<str>, _verified: &Verified) -> u64 {
        token.len() as u64 + 256
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

pub struct Verifier {
    config: AuthConfig,
    /// Tokens verified in the last minute, keyed by their exact text: a client sends the same
    /// token on every call until it expires, and checking its signature and claims again was
    /// most of a cached read's CPU. Any other text (one changed bit) is verified afresh.
    verified: quick_cache::sync::Cache<Box<str>, Verified, TokenWeight>,
    timing: JwksTiming,
    http: reqwest::Client,
    jwks: RwLock<JwksState>,
    /// One fetch at a time: concurrent callers wait for it and use its keys.
    refresh: tokio::sync::Mutex<()>,
}

/// How a JWKS is kept: trusted `ttl` after a fetch; an unknown `kid` refetches sooner (key
/// rotation), at most every `min_refetch`; when the provider is down, the last keys are served
/// up to `max_stale` old, and fetches back off from 5 s to 5 min.
#[derive(Debug, Clone, Copy)]
pub struct JwksTiming {
    pub ttl: Duration,
    pub min_refetch: Duration,
    pub max_stale: Duration,
}

impl Default for JwksTiming {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(600),
            min_refetch: Duration::from_secs(30),
            max_stale: Duration::from_secs(24 * 3600),
        }
    }
}

const BACKOFF_FIRST: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Secrets shorter than this are refused: an HS256 key below the hash's size is guessable.
pub const MIN_SECRET_BYTES: usize = 32;

impl AuthConfig {
    /// Refuses a configuration that would accept tokens it should not (fails closed): no key
    /// at all, a short HS256 secret or one without an audience, a JWKS without both audience
    /// and issuer (a token another
    /// application of the same Auth0/Supabase tenant got would pass), or a JWKS fetched over
    /// plain HTTP from anywhere but this machine (keys could be swapped on the way).
    pub fn check(&self) -> Result<(), String> {
        if self.hs256_secret.is_none() && self.jwks.is_none() {
            return Err("needs --jwt-secret or --jwks: no token could be verified".into());
        }
        if self
            .hs256_secret
            .as_ref()
            .is_some_and(|s| s.len() < MIN_SECRET_BYTES)
        {
            return Err(format!(
                "--jwt-secret: at least {MIN_SECRET_BYTES} bytes (a shorter HS256 key is guessable)"
            ));
        }
        if self.hs256_secret.is_some() && self.audience.is_none() {
            // Supabase signs every token of a project with one secret: the anon and
            // service keys, and tokens minted for other audiences, verify as well as a
            // signed-in person's (`aud: authenticated`).
            return Err(
                "--jwt-secret needs --audience (Supabase: authenticated): without it, any token \
                 signed with the project's secret would be accepted, whatever it was issued for"
                    .into(),
            );
        }
        if let Some(jwks) = &self.jwks {
            if self.audience.is_none() || self.issuer.is_none() {
                return Err(
                    "--jwks needs --audience and --issuer: without both, tokens issued to \
                            another application of the same tenant would be accepted"
                        .into(),
                );
            }
            if let JwksSource::Url(location) = jwks {
                // Parsed, not matched as text: `http://127.0.0.1:1@other.host/` is other.host
                // (the part before `@` is user info), and user info has no place in a key URL.
                let parsed =
                    url::Url::parse(location).map_err(|e| format!("--jwks: not a URL ({e})"))?;
                if !parsed.username().is_empty() || parsed.password().is_some() {
                    return Err("--jwks: a URL without user info".into());
                }
                let loopback = match parsed.host() {
                    Some(url::Host::Domain(name)) => name == "localhost",
                    Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                    None => false,
                };
                match parsed.scheme() {
                    "https" => {}
                    "http" if loopback => {}
                    _ => {
                        return Err(
                            "--jwks: an https:// URL (http:// is accepted on loopback only)".into(),
                        )
                    }
                }
            }
        }
        Ok(())
    }
}

impl Verifier {
    pub fn new(config: AuthConfig) -> Self {
        Self::with_timing(config, JwksTiming::default())
    }

    pub fn with_timing(config: AuthConfig, timing: JwksTiming) -> Self {
        Self {
            config,
            verified: quick_cache::sync::Cache::with_weighter(
                (VERIFIED_BYTES / 1024) as usize,
                VERIFIED_BYTES,
                TokenWeight,
            ),
            timing,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            jwks: RwLock::new(JwksState {
                set: None,
                fetched_at: None,
                next_fetch: None,
                failures: 0,
            }),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    /// The caller a token names, if it verifies: its signature, algorithm, expiry, not-before,
    /// audience, issuer and subject (see [`Self::verify_afresh`]); a token verified in the last
    /// minute and not expired since is taken from memory.
    pub async fn verify(&self, token: &str) -> Result<Arc<Caller>, AuthError> {
        let now = unix_now();
        if let Some(known) = self.verified.get(token) {
            if now < known.until {
                return Ok(known.caller);
            }
            self.verified.remove(token);
        }
        let (caller, expires) = self.verify_afresh(token).await?;
        let caller = Arc::new(caller);
        // Remembered until its expiry (without the leeway: stricter than a fresh check), at
        // most a minute.
        let until = expires.min(now + VERIFIED_FOR.as_secs());
        if until > now {
            self.verified.insert(
                token.into(),
                Verified {
                    caller: caller.clone(),
                    until,
                },
            );
        }
        Ok(caller)
    }

    async fn verify_afresh(&self, token: &str) -> Result<(Caller, u64), AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let key = match header.alg {
            Algorithm::HS256 => {
                let secret = self.config.hs256_secret.as_ref().ok_or_else(|| {
                    AuthError::Invalid("HS256 tokens are not accepted here".into())
                })?;
                DecodingKey::from_secret(secret.expose().as_bytes())
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
        // The subject keys the user's row: 1–255 characters, no control characters (PostgreSQL
        // refuses NUL). Profile claims that are not plain text are dropped, not stored.
        let plain = |text: &String| {
            (1..=255).contains(&text.chars().count()) && !text.chars().any(char::is_control)
        };
        if !plain(&data.claims.sub) {
            return Err(AuthError::Invalid("sub: 1 to 255 plain characters".into()));
        }
        let caller = Caller {
            service: data.claims.role.as_deref() == Some(self.config.service_role.as_str()),
            subject: data.claims.sub,
            email: data.claims.email.filter(plain),
            phone: data.claims.phone.filter(plain),
        };
        // Saturating: NaN and negatives are 0 (not remembered), huge values the far future.
        Ok((caller, data.claims.exp as u64))
    }

    async fn jwk_key(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, AuthError> {
        let source =
            self.config.jwks.as_ref().ok_or_else(|| {
                AuthError::Invalid(format!("{alg:?} tokens are not accepted here"))
            })?;
        let seen = {
            let state = self.jwks.read().await;
            let fresh = state
                .fetched_at
                .is_some_and(|at| at.elapsed() < self.timing.ttl);
            if let (true, Some(set)) = (fresh, &state.set) {
                if let Some(key) = find(set, kid, alg)? {
                    return Ok(key);
                }
            }
            state.fetched_at
        };
        // Stale, missing, or an unknown kid (a rotated key?): fetch, one caller at a time.
        let _refreshing = self.refresh.lock().await;
        let due = {
            let state = self.jwks.read().await;
            let refreshed_meanwhile = state.fetched_at != seen;
            let allowed = state.next_fetch.is_none_or(|at| Instant::now() >= at);
            !refreshed_meanwhile && allowed
        };
        if due {
            let fetched = self.fetch(source).await;
            let mut state = self.jwks.write().await;
            match fetched {
                Ok(set) => {
                    state.set = Some(set);
                    state.fetched_at = Some(Instant::now());
                    state.next_fetch = Some(Instant::now() + self.timing.min_refetch);
                    state.failures = 0;
                }
                Err(e) => {
                    state.failures = state.failures.saturating_add(1);
                    let backoff = BACKOFF_FIRST
                        .saturating_mul(1 << state.failures.min(7).saturating_sub(1))
                        .min(BACKOFF_MAX);
                    state.next_fetch = Some(Instant::now() + backoff);
                    tracing::warn!(error = %e, failures = state.failures, backoff_s = backoff.as_secs(),
                        "JWKS fetch failed: serving the last keys");
                }
            }
        }
        let state = self.jwks.read().await;
        let usable = state
            .fetched_at
            .is_some_and(|at| at.elapsed() < self.timing.max_stale);
        match (&state.set, usable) {
            (Some(set), true) => find(set, kid, alg)?
                .ok_or_else(|| AuthError::Invalid("no JWKS key matches the token".into())),
            _ => Err(AuthError::Jwks(
                "no keys: the JWKS could not be fetched".into(),
            )),
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
    async fn a_remembered_token_does_not_vouch_for_another_text() {
        let verifier = verifier(Some("authenticated"));
        let token = hs256(&claims("user-a"), SECRET);
        let first = verifier.verify(&token).await.unwrap();
        let again = verifier.verify(&token).await.unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "the second call was verified afresh"
        );
        // The same claims with a flipped signature bit, and under another secret: each refused
        // although a token with the same header and claims is remembered.
        let (signed_part, signature) = token.rsplit_once('.').unwrap();
        let mut flipped = signature.as_bytes().to_vec();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        let tampered = format!("{signed_part}.{}", String::from_utf8(flipped).unwrap());
        assert!(refused(&verifier, &tampered).await.contains("token"));
        let forged = hs256(&claims("user-a"), "another-secret-of-at-least-32-bytes!!");
        assert!(refused(&verifier, &forged).await.contains("token"));
    }

    #[tokio::test]
    async fn a_token_already_expired_is_not_remembered() {
        let verifier = verifier(Some("authenticated"));
        // Inside the 30 s leeway: accepted, but not kept past its own expiry.
        let token = hs256(
            &json!({ "sub": "user-a", "exp": now() - 5, "aud": "authenticated" }),
            SECRET,
        );
        let first = verifier.verify(&token).await.unwrap();
        let again = verifier.verify(&token).await.unwrap();
        assert!(
            !Arc::ptr_eq(&first, &again),
            "an expired token was remembered"
        );
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_jwks_outage_serves_the_last_keys_and_one_caller_fetches_at_a_time() {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::Arc;
        let body = std::fs::read_to_string(fixture("jwks.json")).unwrap();
        let fetches = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get({
                let (fetches, down) = (fetches.clone(), down.clone());
                move || async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if down.load(Ordering::SeqCst) {
                        (axum::http::StatusCode::SERVICE_UNAVAILABLE, String::new())
                    } else {
                        (axum::http::StatusCode::OK, body)
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let verifier = Arc::new(Verifier::with_timing(
            AuthConfig {
                jwks: Some(JwksSource::Url(format!(
                    "http://{addr}/.well-known/jwks.json"
                ))),
                audience: Some("authenticated".into()),
                service_role: "service_role".into(),
                ..AuthConfig::default()
            },
            JwksTiming {
                ttl: Duration::from_millis(300),
                min_refetch: Duration::ZERO,
                max_stale: Duration::from_secs(60),
            },
        ));
        // Another token for each burst (a verified token is remembered, and would not need
        // the keys again).
        let token = |burst: u32| {
            let mut claims = claims("user-r");
            claims["jti"] = json!(burst);
            signed(Algorithm::RS256, "rsa-1", "rsa.pem", &claims)
        };
        let burst = |verifier: Arc<Verifier>, token: String| async move {
            let calls: Vec<_> = (0..16)
                .map(|_| {
                    let (verifier, token) = (verifier.clone(), token.clone());
                    tokio::spawn(async move { verifier.verify(&token).await })
                })
                .collect();
            for call in calls {
                assert_eq!(call.await.unwrap().unwrap().subject, "user-r");
            }
        };
        // Cold: sixteen callers at once, one fetch.
        burst(verifier.clone(), token(1)).await;
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // Stale: one refetch for all of them.
        tokio::time::sleep(Duration::from_millis(350)).await;
        burst(verifier.clone(), token(2)).await;
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
        // The provider goes down: the last keys still verify, after one failed try.
        down.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(350)).await;
        burst(verifier.clone(), token(3)).await;
        assert_eq!(fetches.load(Ordering::SeqCst), 3);
        // Backing off: no fetch per request while it is down.
        burst(verifier.clone(), token(4)).await;
        assert_eq!(fetches.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_configuration_that_would_accept_foreign_tokens_is_refused() {
        let jwks = |url: &str, audience: Option<&str>, issuer: Option<&str>| AuthConfig {
            jwks: Some(JwksSource::parse(url)),
            audience: audience.map(str::to_string),
            issuer: issuer.map(str::to_string),
            ..AuthConfig::default()
        };
        let iss = Some("https://tenant.auth0.com/");
        let aud = Some("sipline");
        assert!(
            jwks("https://tenant.auth0.com/.well-known/jwks.json", aud, iss)
                .check()
                .is_ok()
        );
        assert!(jwks("http://127.0.0.1:9/jwks.json", aud, iss)
            .check()
            .is_ok());
        assert!(jwks("http://localhost/jwks.json", aud, iss).check().is_ok());
        for (config, refusal) in [
            (jwks("https://t/jwks.json", None, iss), "--audience"),
            (jwks("https://t/jwks.json", aud, None), "--issuer"),
            (
                jwks("http://tenant.auth0.com/jwks.json", aud, iss),
                "https://",
            ),
            (
                jwks("http://127.0.0.1.evil.com/jwks.json", aud, iss),
                "https://",
            ),
            (
                jwks("http://127.0.0.1:1@other.host/jwks.json", aud, iss),
                "user info",
            ),
            (
                jwks("http://other.host/127.0.0.1/jwks.json", aud, iss),
                "https://",
            ),
            (
                jwks("https://user:pass@tenant.auth0.com/jwks.json", aud, iss),
                "user info",
            ),
            (
                AuthConfig {
                    hs256_secret: Some("short-secret".into()),
                    ..AuthConfig::default()
                },
                "32 bytes",
            ),
            (AuthConfig::default(), "--jwt-secret or --jwks"),
            (
                AuthConfig {
                    hs256_secret: Some(SECRET.into()),
                    ..AuthConfig::default()
                },
                "--audience",
            ),
        ] {
            let error = config.check().unwrap_err();
            assert!(error.contains(refusal), "{error}");
        }
        let hs256_with_audience = AuthConfig {
            hs256_secret: Some(SECRET.into()),
            audience: Some("authenticated".into()),
            ..AuthConfig::default()
        };
        assert!(hs256_with_audience.check().is_ok());
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
