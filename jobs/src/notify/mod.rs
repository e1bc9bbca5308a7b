//! `sipline notify dispatch|worker|stats`: delivers the PostgreSQL outbox.
//!
//! A notification fans out to one delivery per channel the user chose (`notification_deliveries`).
//! A dispatcher claims due deliveries with `FOR UPDATE SKIP LOCKED` under a lease, delivers them
//! concurrently, and records each outcome only while it still holds the claim: several
//! dispatchers never deliver one delivery at once, a dispatcher that dies loses its claim when
//! the lease runs out and another retries. Delivery is therefore at least once; every request
//! carries an idempotency key (`<event_key>/<channel>`) for the receiver to drop repeats.
//! Failures retry with exponential backoff and full jitter up to `max_attempts`, then the
//! delivery is dead with its last error; 4xx answers (but 408 and 429) and 5xx SMTP replies are
//! permanent and die at once.
//!
//! Split by concern: `outbox` (the SQL of fan-out, claims, leases and roll-up and the claimed
//! row), `channels` (webhook, SMS, push and email delivery and how a failure is classified),
//! `email` (submission over `lettre`: TLS, AUTH, MIME), `stats` (queue health for
//! `notify stats` and Prometheus); what a person reads is rendered by the `messages` crate;
//! this module holds the dispatcher's passes and the worker loop.

mod channels;
mod email;
mod outbox;
mod push;
mod sms;
mod stats;

use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use rand::Rng;
use serving::secret::Secret;
use sqlx::{PgPool, Row};

pub use channels::signature;
use channels::{Delivered, Failure};
pub use email::{DkimKey, SmtpConfig, SmtpTls};
pub use push::{ApnsConfig, FcmConfig, ServiceAccount};
pub use sms::{parse_templates as parse_dlt_templates, ExotelConfig, SignedCallbacks};

/// The shortest webhook signing key accepted: receivers verify HMAC-SHA256 with it.
pub const MIN_WEBHOOK_SECRET_BYTES: usize = 16;
use outbox::*;

/// Where deliveries go and how hard to try.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    pub webhook_url: Option<String>,
    pub sms_webhook_url: Option<String>,
    /// SMS through Exotel's API with DLT fields (instead of `sms_webhook_url`).
    pub exotel: Option<ExotelConfig>,
    pub push_webhook_url: Option<String>,
    /// Push to Android (and Firebase-registered iOS) devices through FCM HTTP v1.
    pub fcm: Option<FcmConfig>,
    /// Push to iOS devices through APNs.
    pub apns: Option<ApnsConfig>,
    /// Signs every webhook body (HMAC-SHA256); receivers verify with the same secret.
    pub webhook_secret: Secret,
    /// During a rotation, the old key: bodies carry a signature by each until receivers have
    /// switched and it is dropped.
    pub webhook_previous_secret: Option<Secret>,
    /// The submission server for channel `email`.
    pub smtp: Option<SmtpConfig>,
    pub mail_from: String,
    /// Signed unsubscribe links in every e-mail (and List-Unsubscribe), when set.
    pub unsubscribe: Option<UnsubscribeLinks>,
    /// The app's statement page: the monthly statement e-mail links to the month's PDF there.
    pub statement_url: Option<String>,
    pub batch: i64,
    pub concurrency: usize,
    pub max_attempts: i32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub lease: Duration,
    pub timeout: Duration,
    /// Channels left unconfigured on purpose (`--hold`): their deliveries wait, pending,
    /// for a dispatcher that has them.
    pub held: Vec<String>,
}

/// Every channel a delivery can be on.
pub const CHANNELS: [&str; 4] = ["webhook", "sms", "push", "email"];

impl DispatchConfig {
    /// The channels this dispatcher can deliver on: only these are claimed, so a delivery on
    /// any other waits (pending) instead of failing for want of an endpoint.
    pub fn configured_channels(&self) -> Vec<&'static str> {
        CHANNELS
            .into_iter()
            .filter(|channel| match *channel {
                "webhook" => self.webhook_url.is_some(),
                "sms" => self.exotel.is_some() || self.sms_webhook_url.is_some(),
                "push" => {
                    self.fcm.is_some() || self.apns.is_some() || self.push_webhook_url.is_some()
                }
                "email" => self.smtp.is_some(),
                _ => false,
            })
            .collect()
    }

    /// What configures a channel, for the refusal that names it.
    fn how_to_configure(channel: &str) -> &'static str {
        match channel {
            "webhook" => "--webhook-url",
            "sms" => "--exotel-url/--exotel-sid/--exotel-api-key or --sms-webhook-url",
            "push" => "--fcm-service-account, --apns-key-file or --push-webhook-url",
            _ => "--smtp-relay",
        }
    }

    /// The claim a batch takes: at least `lease`, and long enough for the batch's sends one
    /// after another at `concurrency` (each bounded by `timeout`) plus a margin, so a slow
    /// receiver cannot make a claim expire while its batch is still being sent and another
    /// dispatcher send it again.
    pub fn batch_lease(&self) -> Duration {
        let rounds =
            u32::try_from((self.batch.max(1) as u64).div_ceil(self.concurrency.max(1) as u64))
                .unwrap_or(u32::MAX);
        self.lease
            .max(self.timeout.saturating_mul(rounds) + LEASE_MARGIN)
    }
}

/// Where a person's unsubscribe link points and the key it is signed with (the API's
/// `--unsubscribe-secret`).
#[derive(Debug, Clone)]
pub struct UnsubscribeLinks {
    /// The API's `/v1/unsubscribe` as people reach it.
    pub base_url: String,
    pub secret: Secret,
}

impl UnsubscribeLinks {
    /// The link for one person and kind, valid for [`serving::unsubscribe::LINK_DAYS`] from
    /// `now`; none for a kind a person cannot unsubscribe from.
    pub fn link(
        &self,
        user_id: i64,
        kind: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<String> {
        if !serving::unsubscribe::KINDS.contains(&kind) {
            return None;
        }
        let expires = now.timestamp() + serving::unsubscribe::LINK_DAYS * 86_400;
        let token =
            serving::unsubscribe::token(self.secret.expose().as_bytes(), user_id, kind, expires);
        Some(format!("{}?token={token}", self.base_url))
    }
}

/// Time a claim holds beyond its sends' timeouts (clock skew, the recording round trip).
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// What one pass did.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassSummary {
    pub fanned_out: u64,
    pub reclaimed: u64,
    pub delivered: u64,
    pub retried: u64,
    pub dead: u64,
}

impl PassSummary {
    fn add(&mut self, other: PassSummary) {
        self.fanned_out += other.fanned_out;
        self.reclaimed += other.reclaimed;
        self.delivered += other.delivered;
        self.retried += other.retried;
        self.dead += other.dead;
    }

    pub fn attempts(&self) -> u64 {
        self.delivered + self.retried + self.dead
    }
}

impl std::fmt::Display for PassSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "notifications_fanned_out={} leases_reclaimed={} delivered={} retry_scheduled={} dead={}",
            self.fanned_out, self.reclaimed, self.delivered, self.retried, self.dead
        )
    }
}

/// One attempt's delivery id, notification id, attempt number, provider and outcome.
type Attempted = (i64, i64, i32, &'static str, Result<Delivered, Failure>);

pub struct Dispatcher {
    pool: PgPool,
    http: reqwest::Client,
    /// Pooled SMTP connections, when e-mail is configured.
    smtp: Option<lettre::AsyncSmtpTransport<lettre::Tokio1Executor>>,
    /// Signs every e-mail, when a DKIM key is configured.
    dkim: Option<email::DkimSigner>,
    /// APNs speaks HTTP/2 only.
    apns_http: reqwest::Client,
    fcm_token: push::TokenCache,
    apns_token: push::TokenCache,
    messages: messages::Messages,
    config: DispatchConfig,
}

impl DispatchConfig {
    /// Fails closed (exit 3): a guessable signing key, or a sender address that could carry
    /// SMTP commands or headers.
    pub fn check(&self) -> anyhow::Result<()> {
        for (flag, key) in [
            ("--webhook-secret", Some(&self.webhook_secret)),
            (
                "--webhook-previous-secret",
                self.webhook_previous_secret.as_ref(),
            ),
        ] {
            if key.is_some_and(|key| key.len() < MIN_WEBHOOK_SECRET_BYTES) {
                anyhow::bail!(crate::plumbing::exit::JobFailure::BadInput(format!(
                    "{flag}: at least {MIN_WEBHOOK_SECRET_BYTES} bytes"
                )));
            }
        }
        if let Some(links) = &self.unsubscribe {
            if links.secret.len() < serving::unsubscribe::MIN_SECRET_BYTES {
                anyhow::bail!(crate::plumbing::exit::JobFailure::BadInput(format!(
                    "--unsubscribe-secret: at least {} bytes",
                    serving::unsubscribe::MIN_SECRET_BYTES
                )));
            }
            if !(links.base_url.starts_with("https://") || links.base_url.starts_with("http://"))
                || links.base_url.contains(['?', '#', ' ', '<', '>'])
            {
                anyhow::bail!(crate::plumbing::exit::JobFailure::BadInput(
                    "--unsubscribe-url: an http(s) URL without a query".into()
                ));
            }
        }
        if let Some(url) = &self.statement_url {
            if !(url.starts_with("https://") || url.starts_with("http://"))
                || url.contains(['?', '#', ' ', '<', '>', '"'])
            {
                anyhow::bail!(crate::plumbing::exit::JobFailure::BadInput(
                    "--statement-url: an http(s) URL without a query".into()
                ));
            }
        }
        if !serving::is_mailbox(&self.mail_from) {
            anyhow::bail!(crate::plumbing::exit::JobFailure::BadInput(format!(
                "--mail-from: not a mailbox address: {:?}",
                self.mail_from
            )));
        }
        Ok(())
    }
}

impl Dispatcher {
    pub fn new(pool: PgPool, config: DispatchConfig) -> anyhow::Result<Self> {
        config.check()?;
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .pool_max_idle_per_host(config.concurrency)
            .build()
            .context("building the HTTP client")?;
        let smtp = match &config.smtp {
            Some(smtp) => Some(
                email::transport(smtp, config.timeout, config.concurrency).map_err(|e| {
                    anyhow::anyhow!(crate::plumbing::exit::JobFailure::BadInput(e.to_string()))
                })?,
            ),
            None => None,
        };
        let dkim = match config.smtp.as_ref().and_then(|smtp| smtp.dkim.as_ref()) {
            Some(key) => Some(email::dkim_signer(key, &config.mail_from).map_err(|e| {
                anyhow::anyhow!(crate::plumbing::exit::JobFailure::BadInput(e.to_string()))
            })?),
            None => None,
        };
        let messages = messages::Messages::new().context("loading the message templates")?;
        let apns_http = reqwest::Client::builder()
            .http2_prior_knowledge()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .context("building the APNs client")?;
        Ok(Self {
            pool,
            http,
            smtp,
            dkim,
            apns_http,
            fcm_token: push::TokenCache::default(),
            apns_token: push::TokenCache::default(),
            messages,
            config,
        })
    }

    /// Fails closed (exit 3) on a channel that people chose, or that deliveries wait on, but
    /// that this dispatcher cannot deliver: without it, a setting left out at deploy would
    /// leave every such message undelivered while the dispatcher reports success. A channel
    /// named in `--hold` starts anyway, its deliveries waiting (and said so in a warning).
    pub async fn refuse_unconfigured_channels(&self) -> anyhow::Result<()> {
        let configured = self.config.configured_channels();
        for channel in CHANNELS.into_iter().filter(|c| !configured.contains(c)) {
            // EXISTS, not counts: cheap on every start, at 10M users, when all is configured
            // no query runs at all.
            let (people, waiting): (bool, bool) = sqlx::query_as(CHANNEL_IN_USE)
                .bind(channel)
                .fetch_one(&self.pool)
                .await
                .with_context(|| format!("checking whether channel {channel} is in use"))?;
            if !people && !waiting {
                continue;
            }
            let why = match (people, waiting) {
                (true, true) => "people chose it and deliveries wait on it",
                (true, false) => "people chose it",
                _ => "deliveries wait on it",
            };
            if self.config.held.iter().any(|held| held == channel) {
                tracing::warn!(
                    channel,
                    "{why}, but it is held (--hold): its deliveries wait for a dispatcher that has it"
                );
                continue;
            }
            anyhow::bail!(crate::plumbing::exit::JobFailure::BadInput(format!(
                "channel {channel}: {why}, but it is not configured ({}); configure it, or start \
                 with --hold {channel} to leave its deliveries waiting",
                DispatchConfig::how_to_configure(channel)
            )));
        }
        Ok(())
    }

    /// Fans out, claims and delivers until nothing is due (or `max_batches` batches): the
    /// bounded pass a scheduler runs every minute.
    pub async fn drain(&self, max_batches: Option<u64>) -> anyhow::Result<PassSummary> {
        let mut total = PassSummary::default();
        let mut batches = 0;
        loop {
            let pass = self.pass().await?;
            total.add(pass);
            batches += 1;
            if pass.attempts() == 0 && pass.fanned_out == 0 && pass.reclaimed == 0 {
                break;
            }
            if max_batches.is_some_and(|max| batches >= max) {
                break;
            }
        }
        Ok(total)
    }

    /// One batch: fan out new notifications, reclaim dead leases, defer quiet hours, claim,
    /// deliver, record.
    pub async fn pass(&self) -> anyhow::Result<PassSummary> {
        let mut summary = PassSummary {
            fanned_out: sqlx::query(FAN_OUT)
                .bind(self.config.batch)
                .execute(&self.pool)
                .await
                .context("fanning out notifications")?
                .rows_affected(),
            ..PassSummary::default()
        };
        let reclaimed: Vec<(i64, String)> = sqlx::query_as(RECLAIM)
            .bind(self.config.max_attempts)
            .fetch_all(&self.pool)
            .await
            .context("reclaiming expired claims")?;
        summary.reclaimed = reclaimed.len() as u64;
        let mut died: Vec<i64> = reclaimed
            .iter()
            .filter(|(_, status)| status == "dead")
            .map(|(notification, _)| *notification)
            .collect();
        if !died.is_empty() {
            summary.dead += died.len() as u64;
            died.sort_unstable();
            died.dedup();
            tracing::warn!(
                notifications = died.len(),
                "deliveries whose every attempt ended with the dispatcher stopped: dead"
            );
            sqlx::query(ROLL_UP)
                .bind(&died)
                .execute(&self.pool)
                .await
                .context("rolling up reclaimed deliveries")?;
        }
        sqlx::query(DEFER_QUIET).execute(&self.pool).await?;
        let token: i64 = rand::rng().random_range(1..i64::MAX);
        let claimed: Vec<Claimed> = sqlx::query(CLAIM)
            .bind(self.config.batch)
            .bind(token)
            .bind(self.config.batch_lease().as_secs_f64())
            .bind(self.config.configured_channels())
            .fetch_all(&self.pool)
            .await
            .context("claiming deliveries")?
            .into_iter()
            .map(|row| Claimed {
                delivery_id: row.get("delivery_id"),
                notification_id: row.get("notification_id"),
                channel: row.get("channel"),
                attempts: row.get("attempts"),
                event_key: row.get("event_key"),
                user_id: row.get("user_id"),
                kind: row.get("kind"),
                payload: row.get("payload"),
                created_at: row.get("created_at"),
                email: row.get("email"),
                phone: row.get("phone"),
                push_token: row.get("push_token"),
                push_platform: row.get("push_platform"),
                scheme_name: row.get("scheme_name"),
                unit_decimals: row.get("unit_decimals"),
                target_scheme_name: row.get("target_scheme_name"),
                local_time: row.get("local_time"),
            })
            .collect();
        if claimed.is_empty() {
            return Ok(summary);
        }
        let outcomes: Vec<Attempted> =
            futures::stream::iter(claimed.iter())
                .map(|delivery| async move {
                    // Send only under a claim still ours, renewed to cover this send: one that
                    // ran out may be another dispatcher's by now, and sending it would be a
                    // duplicate without any crash.
                    let renewed = sqlx::query(RENEW_CLAIM)
                        .bind(delivery.delivery_id)
                        .bind(token)
                        .bind((self.config.timeout + LEASE_MARGIN).as_secs_f64())
                        .fetch_optional(&self.pool)
                        .await;
                    match renewed {
                        Ok(Some(_)) => {}
                        Ok(None) => {
                            tracing::warn!(
                                delivery_id = delivery.delivery_id,
                                "claim expired before the send: left to whoever holds it now"
                            );
                            return None;
                        }
                        Err(e) => {
                            tracing::warn!(delivery_id = delivery.delivery_id, error = %e, "claim not renewed: not sent");
                            return None;
                        }
                    }
                    let outcome = self.deliver(delivery).await;
                    if let Err(failure) = &outcome {
                        tracing::warn!(
                            delivery_id = delivery.delivery_id,
                            channel = %delivery.channel,
                            attempt = delivery.attempts,
                            permanent = failure.permanent,
                            // A receiver's URL may carry its key, in the query or the path.
                            error = %crate::plumbing::redact::urls(&failure.error),
                            "delivery failed"
                        );
                    }
                    Some((
                        delivery.delivery_id,
                        delivery.notification_id,
                        delivery.attempts,
                        self.provider_of(delivery),
                        outcome,
                    ))
                })
                .buffer_unordered(self.config.concurrency.max(1))
                .filter_map(std::future::ready)
                .collect()
                .await;

        let mut ids = Vec::with_capacity(outcomes.len());
        let mut oks = Vec::with_capacity(outcomes.len());
        let mut permanents = Vec::with_capacity(outcomes.len());
        let mut delays = Vec::with_capacity(outcomes.len());
        let mut errors: Vec<Option<String>> = Vec::with_capacity(outcomes.len());
        let mut provider_refs: Vec<Option<String>> = Vec::with_capacity(outcomes.len());
        let mut providers: Vec<&str> = Vec::with_capacity(outcomes.len());
        let mut notifications: Vec<i64> = Vec::with_capacity(outcomes.len());
        for (id, notification, attempts, provider, outcome) in outcomes {
            ids.push(id);
            providers.push(provider);
            notifications.push(notification);
            oks.push(outcome.is_ok());
            permanents.push(outcome.as_ref().is_err_and(|f| f.permanent));
            // A provider's Retry-After (429, 503) is a floor under the backoff.
            let asked = outcome
                .as_ref()
                .err()
                .and_then(|f| f.retry_after)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            delays.push(self.backoff_ms(attempts).max(asked));
            match outcome {
                Ok(delivered) => {
                    provider_refs.push(delivered.provider_ref);
                    errors.push(None);
                }
                Err(failure) => {
                    provider_refs.push(None);
                    // A receiver's URL may carry its key: never into `last_error`.
                    errors.push(Some(crate::plumbing::redact::urls(&failure.error)));
                }
            }
        }
        let statuses: Vec<String> = sqlx::query_scalar(RECORD)
            .bind(token)
            .bind(self.config.max_attempts)
            .bind(&ids)
            .bind(&oks)
            .bind(&permanents)
            .bind(&delays)
            .bind(&errors)
            .bind(&provider_refs)
            .bind(&providers)
            .fetch_all(&self.pool)
            .await
            .context("recording delivery outcomes")?;
        for status in &statuses {
            match status.as_str() {
                "delivered" => summary.delivered += 1,
                "dead" => summary.dead += 1,
                _ => summary.retried += 1,
            }
        }
        if statuses.len() < ids.len() {
            tracing::warn!(
                lost = ids.len() - statuses.len(),
                "claims expired before their outcome was recorded; another dispatcher retries them"
            );
        }
        notifications.sort_unstable();
        notifications.dedup();
        sqlx::query(ROLL_UP)
            .bind(&notifications)
            .execute(&self.pool)
            .await?;
        Ok(summary)
    }

    /// Exponential backoff with full jitter: a random delay up to base × 2^(attempt−1), capped,
    /// so receivers coming back up are not hit by every retry at once.
    fn backoff_ms(&self, attempts: i32) -> i64 {
        let exponent = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        let base = self.config.retry_base.as_millis() as u64;
        let cap = self.config.retry_max.as_millis() as u64;
        let ceiling = base.saturating_mul(1 << exponent).min(cap).max(1);
        let delay = rand::rng().random_range(ceiling / 2..=ceiling);
        i64::try_from(delay).unwrap_or(i64::MAX)
    }
}

/// The long-running worker: a pass whenever the outbox grows (LISTEN) or a delivery may have
/// become due (the poll), until SIGTERM or Ctrl-C, finishing the batch in hand.
pub async fn work(
    dispatcher: &Dispatcher,
    database_url: &str,
    poll: Duration,
) -> anyhow::Result<PassSummary> {
    let mut listener = sqlx::postgres::PgListener::connect(database_url)
        .await
        .context("LISTEN connection")?;
    listener.listen(serving::NOTIFICATIONS_CHANNEL).await?;
    let mut total = PassSummary::default();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let drained = dispatcher.drain(None).await?;
        if drained.attempts() > 0 {
            tracing::info!(%drained, "pass done");
        }
        total.add(drained);
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            woken = listener.recv() => {
                // A dropped LISTEN connection is re-established by the next recv; the poll
                // covers what happened meanwhile.
                if let Err(e) = woken {
                    tracing::warn!(error = %e, "LISTEN connection lost");
                }
            }
            () = tokio::time::sleep(poll) => {}
        }
    }
    tracing::info!("shutting down");
    Ok(total)
}
