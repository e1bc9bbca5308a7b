//! Push through the providers' own protocols, as they document them.
//!
//! Firebase Cloud Messaging HTTP v1: an OAuth 2.0 access token from the service account's key
//! (a JWT assertion signed RS256 with the key, POSTed to the key's `token_uri` as the
//! `jwt-bearer` grant; cached until shortly before it expires), then
//! `POST {fcm}/v1/projects/{project}/messages:send` with `{"message": {"token", "notification":
//! {"title", "body"}, "data"}}`. `UNREGISTERED` means the app was removed: the token goes.
//!
//! Apple Push Notification service: HTTP/2 `POST {apns}/3/device/{token}` with a provider
//! token (a JWT signed ES256 with the `.p8` key, `kid` the key id, `iss` the team; reused for
//! 50 minutes, as Apple asks for no more than one new token every 20 and accepts one for 60),
//! `apns-topic` (the app's bundle id), `apns-push-type: alert` and `apns-priority: 10`.
//! 410 `Unregistered` and 400 `BadDeviceToken` mean the token is dead: it goes.
//!
//! Both: 429 and 5xx are retried after `Retry-After` when given; endpoints are configuration,
//! so tests point them at local servers and production at the providers.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serving::secret::Secret;

use super::channels::{retry_after, Delivered, Failure};
use super::outbox::Claimed;
use super::Dispatcher;

/// A Google service account key (the JSON file the Firebase console gives).
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceAccount {
    pub project_id: String,
    pub private_key_id: String,
    pub private_key: Secret,
    pub client_email: String,
    pub token_uri: String,
}

#[derive(Debug, Clone)]
pub struct FcmConfig {
    pub account: ServiceAccount,
    /// `https://fcm.googleapis.com`.
    pub base_url: String,
}

#[derive(Debug, Clone)]
pub struct ApnsConfig {
    /// `https://api.push.apple.com` (`https://api.sandbox.push.apple.com` for development).
    pub base_url: String,
    pub team_id: String,
    pub key_id: String,
    /// The `.p8` key (PKCS #8 PEM, P-256).
    pub private_key_pem: Secret,
    /// The app's bundle id.
    pub topic: String,
}

/// A bearer token and when to stop using it.
#[derive(Default)]
pub(super) struct TokenCache(tokio::sync::Mutex<Option<(String, Instant)>>);

impl TokenCache {
    async fn get_or<F, Fut>(&self, make: F) -> Result<String, Failure>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(String, Duration), Failure>>,
    {
        let mut slot = self.0.lock().await;
        if let Some((token, until)) = slot.as_ref() {
            if Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        let (token, lifetime) = make().await?;
        *slot = Some((token.clone(), Instant::now() + lifetime));
        Ok(token)
    }

    async fn forget(&self) {
        *self.0.lock().await = None;
    }
}

/// Apple's provider token is reused this long (it accepts one up to 60 minutes old).
const APNS_TOKEN_REUSE: Duration = Duration::from_secs(50 * 60);

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A failure from a push provider's answer: 429 and 5xx retried after `Retry-After`, other
/// 4xx final.
fn answer_failure(
    provider: &str,
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    reason: &str,
) -> Failure {
    let text = format!("{provider}: HTTP {status} {reason}");
    let mut failure =
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            Failure::transient(text)
        } else {
            Failure::permanent(text)
        };
    failure.retry_after = retry_after(headers);
    failure
}

const FORGET_TOKEN: &str = "UPDATE notification_preferences \
     SET push_token = NULL, channels = array_remove(channels, 'push'), updated_at = now() \
     WHERE user_id = $1 AND push_token = $2";

impl Dispatcher {
    pub(super) async fn push(&self, delivery: &Claimed) -> Result<Delivered, Failure> {
        let token = delivery
            .push_token
            .as_deref()
            .ok_or_else(|| Failure::permanent("the user has no push token"))?;
        let message = self.rendered_push(delivery)?;
        let (title, body) = (message.title.as_str(), message.body.as_str());
        let platform = delivery.push_platform.as_deref().unwrap_or("fcm");
        match (platform, &self.config.fcm, &self.config.apns) {
            ("fcm", Some(fcm), _) => self.fcm_send(fcm, delivery, token, title, body).await,
            ("apns", _, Some(apns)) => self.apns_send(apns, delivery, token, title, body).await,
            (platform, _, _) => Err(Failure::permanent(format!(
                "no {platform} push provider configured"
            ))),
        }
    }

    /// A token the provider says is gone leaves the person's preferences (and push with it),
    /// so no later notification is sent to it.
    async fn forget_push_token(&self, delivery: &Claimed, token: &str) {
        if let Err(e) = sqlx::query(FORGET_TOKEN)
            .bind(delivery.user_id)
            .bind(token)
            .execute(&self.pool)
            .await
        {
            tracing::warn!(error = %e, user_id = delivery.user_id, "could not remove a dead push token");
        } else {
            tracing::info!(
                user_id = delivery.user_id,
                "push token unregistered: removed"
            );
        }
    }

    async fn fcm_access_token(&self, fcm: &FcmConfig) -> Result<String, Failure> {
        self.fcm_token
            .get_or(|| async {
                let account = &fcm.account;
                let now = unix_now();
                let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
                header.kid = Some(account.private_key_id.clone());
                let claims = serde_json::json!({
                    "iss": account.client_email,
                    "scope": "https://www.googleapis.com/auth/firebase.messaging",
                    "aud": account.token_uri,
                    "iat": now,
                    "exp": now + 3600,
                });
                let key = jsonwebtoken::EncodingKey::from_rsa_pem(
                    account.private_key.expose().as_bytes(),
                )
                .map_err(|e| Failure::permanent(format!("FCM service account key: {e}")))?;
                let assertion = jsonwebtoken::encode(&header, &claims, &key)
                    .map_err(|e| Failure::permanent(format!("FCM assertion: {e}")))?;
                let response = self
                    .http
                    .post(&account.token_uri)
                    .form(&[
                        ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                        ("assertion", assertion.as_str()),
                    ])
                    .send()
                    .await
                    .map_err(|e| Failure::transient(format!("FCM token: {e}")))?;
                let status = response.status();
                if !status.is_success() {
                    let headers = response.headers().clone();
                    return Err(answer_failure("FCM token", status, &headers, ""));
                }
                #[derive(Deserialize)]
                struct Granted {
                    access_token: String,
                    expires_in: u64,
                }
                let granted: Granted = serde_json::from_slice(
                    &response
                        .bytes()
                        .await
                        .map_err(|e| Failure::transient(format!("FCM token: {e}")))?,
                )
                .map_err(|e| Failure::transient(format!("FCM token answer: {e}")))?;
                // Renewed a minute early: a token must not expire between the check and the send.
                Ok((
                    granted.access_token,
                    Duration::from_secs(granted.expires_in.saturating_sub(60)),
                ))
            })
            .await
    }

    async fn fcm_send(
        &self,
        fcm: &FcmConfig,
        delivery: &Claimed,
        token: &str,
        title: &str,
        body: &str,
    ) -> Result<Delivered, Failure> {
        let access = self.fcm_access_token(fcm).await?;
        let url = format!(
            "{}/v1/projects/{}/messages:send",
            fcm.base_url.trim_end_matches('/'),
            fcm.account.project_id
        );
        let message = serde_json::json!({"message": {
            "token": token,
            "notification": {"title": title, "body": body},
            "data": {"kind": delivery.kind, "event_key": delivery.event_key},
        }});
        let response = self
            .http
            .post(&url)
            .bearer_auth(&access)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(message.to_string())
            .send()
            .await
            .map_err(|e| Failure::transient(format!("FCM: {e}")))?;
        let status = response.status();
        let headers = response.headers().clone();
        let answer: serde_json::Value = response
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        if status.is_success() {
            return Ok(Delivered {
                provider_ref: answer["name"].as_str().map(String::from),
            });
        }
        let error_code = answer["error"]["details"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|d| d["errorCode"].as_str())
            .unwrap_or_else(|| answer["error"]["status"].as_str().unwrap_or_default())
            .to_string();
        if error_code == "UNREGISTERED" {
            self.forget_push_token(delivery, token).await;
            return Err(Failure::permanent("FCM: UNREGISTERED: token removed"));
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            // The access token was revoked or expired early: a fresh one on the next attempt.
            self.fcm_token.forget().await;
            return Err(Failure::transient("FCM: HTTP 401, access token renewed"));
        }
        Err(answer_failure("FCM", status, &headers, &error_code))
    }

    fn apns_provider_token(apns: &ApnsConfig) -> Result<(String, Duration), Failure> {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(apns.key_id.clone());
        let claims = serde_json::json!({"iss": apns.team_id, "iat": unix_now()});
        let key = jsonwebtoken::EncodingKey::from_ec_pem(apns.private_key_pem.expose().as_bytes())
            .map_err(|e| Failure::permanent(format!("APNs key: {e}")))?;
        let token = jsonwebtoken::encode(&header, &claims, &key)
            .map_err(|e| Failure::permanent(format!("APNs provider token: {e}")))?;
        Ok((token, APNS_TOKEN_REUSE))
    }

    async fn apns_send(
        &self,
        apns: &ApnsConfig,
        delivery: &Claimed,
        token: &str,
        title: &str,
        body: &str,
    ) -> Result<Delivered, Failure> {
        // A device token is hex; anything else would bend the request path.
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            self.forget_push_token(delivery, token).await;
            return Err(Failure::permanent("APNs: not a device token: removed"));
        }
        let provider = self
            .apns_token
            .get_or(|| async { Self::apns_provider_token(apns) })
            .await?;
        let url = format!("{}/3/device/{token}", apns.base_url.trim_end_matches('/'));
        let payload = serde_json::json!({
            "aps": {"alert": {"title": title, "body": body}, "sound": "default"},
            "kind": delivery.kind,
            "event_key": delivery.event_key,
        });
        let response = self
            .apns_http
            .post(&url)
            .header("authorization", format!("bearer {provider}"))
            .header("apns-topic", &apns.topic)
            .header("apns-push-type", "alert")
            .header("apns-priority", "10")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(payload.to_string())
            .send()
            .await
            .map_err(|e| Failure::transient(format!("APNs: {e}")))?;
        let status = response.status();
        let headers = response.headers().clone();
        if status.is_success() {
            return Ok(Delivered {
                provider_ref: headers
                    .get("apns-id")
                    .and_then(|v| v.to_str().ok())
                    .map(String::from),
            });
        }
        let reason: String = response
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["reason"].as_str().map(String::from))
            .unwrap_or_default();
        if status == reqwest::StatusCode::GONE
            || reason == "BadDeviceToken"
            || reason == "Unregistered"
        {
            self.forget_push_token(delivery, token).await;
            return Err(Failure::permanent(format!("APNs: {reason}: token removed")));
        }
        if reason == "ExpiredProviderToken" || reason == "InvalidProviderToken" {
            self.apns_token.forget().await;
            return Err(Failure::transient(format!(
                "APNs: {reason}: provider token renewed"
            )));
        }
        Err(answer_failure("APNs", status, &headers, &reason))
    }
}
