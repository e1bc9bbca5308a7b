//! The command line: every subcommand's arguments as clap types, and what a run of each is
//! for `job_runs`. Turning arguments into a job's options happens in `commands`.

use std::time::Duration;

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};

use crate::job_runs::JobRun;
use crate::plumbing::exit;
use crate::plumbing::fetch::RetryPolicy;
use crate::plumbing::telemetry::LogFormat;
use crate::{nav_ingest, nav_sample, notify, portfolio_value, publish, shard, sip_execute, sql};
use pipeline::nav::collect::NavFormat;
use serving::secret::Secret;

/// sipline: the batch backend of a mutual-fund SIP platform.
///
/// Exit codes: 0 success, 1 internal error, 2 usage, 3 bad input (fix the file),
/// 4 missing upstream (e.g. the NAV file is not published yet: retry later),
/// 5 not a business day (`calendar check` only: skip the day's runs), 6 a past date
/// re-run after later dates ran (`sip execute` without `--rewind`: nothing written),
/// 7 not one NAV dated the day (`nav ingest --date`: late, or a market holiday; retry, and at
/// the deadline end the night waiting: the next business day settles it).
///
/// Errors are reported to Sentry when `SENTRY_DSN` is set (panics, failed jobs, the API's 5xx
/// answers; `SENTRY_ENVIRONMENT` names the deployment); `sipline report-test` checks the setup.
#[derive(Debug, Parser)]
#[command(name = "sipline", version)]
pub struct Cli {
    /// Log format on stderr: `text` for people, `json` for log shippers.
    #[arg(
        long,
        env = "SIPLINE_LOG_FORMAT",
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
    /// PostgreSQL URL. With it, every job records its run in `job_runs`; `nav ingest` also
    /// upserts NAVs there; `publish`, `sips export` and `db migrate` need it.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,
    /// Validate the command line (required options, dates, shards) and exit 0 without running:
    /// how a scheduler's tests check every task's command.
    #[arg(long, global = true)]
    pub check_args: bool,
    /// Run as if the wall clock read this instant (RFC 3339, e.g.
    /// `2027-01-31T14:59:00+05:30`), ticking from there: for tests and replays of the date
    /// rules (`serve`'s cut-off, "today" and "not in the past"; `sips export`'s cut-off check;
    /// what `housekeeping`'s retentions count back from).
    /// Deliberately a flag and not an environment variable, so it is never set by accident.
    #[arg(long, global = true, value_parser = parse_instant)]
    pub now: Option<chrono::DateTime<chrono::Utc>>,
    #[command(subcommand)]
    pub command: Command,
}

fn parse_instant(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&chrono::Utc))
        .map_err(|e| {
            format!("`{text}` is not an RFC 3339 instant (e.g. 2027-01-31T14:59:00+05:30): {e}")
        })
}

impl Cli {
    /// The clock the date rules read: the wall clock, or `--now` ticking.
    pub fn clock(&self) -> serving::Clock {
        self.now
            .map_or_else(serving::Clock::system, serving::Clock::starting_at)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// NAV files: ingest, or write a synthetic one.
    #[command(subcommand)]
    Nav(NavCommand),
    /// Run SQL over every warehouse table (DataFusion).
    Sql(SqlArgs),
    /// PostgreSQL schema management.
    #[command(subcommand)]
    Db(DbCommand),
    /// A deterministic synthetic universe: scheme master, NAV history, users and SIPs.
    Generate(GenerateArgs),
    /// The SIP execution batch.
    #[command(subcommand)]
    Sip(SipCommand),
    /// Portfolio valuation.
    #[command(subcommand)]
    Portfolio(PortfolioCommand),
    /// The quick start: generate a universe, execute its SIP history, value it, and query it.
    Demo(DemoArgs),
    /// Load a valuation date's outputs into the PostgreSQL serving store, atomically.
    Publish(PublishArgs),
    /// SIP mandates: PostgreSQL (the system of record) to the warehouse.
    #[command(subcommand)]
    Sips(SipsCommand),
    /// Orders placed through the API (lumpsums, redemptions, switches): execution.
    #[command(subcommand)]
    Orders(OrdersCommand),
    /// The scheme master's rules that NAV files do not carry.
    #[command(subcommand)]
    Schemes(SchemesCommand),
    /// The bank's report of SIP debits (e-mandate / NACH returns).
    #[command(subcommand)]
    Debits(DebitsCommand),
    /// The business calendar the jobs use (weekends and NSE holidays).
    #[command(subcommand)]
    Calendar(CalendarCommand),
    /// Deliver the notification outbox: webhooks, email, SMS and push.
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// The HTTP API over PostgreSQL (portfolios, charts, SIPs, NAVs, notifications, alerts).
    Serve(Box<ServeArgs>),
    /// Removes what the serving store no longer needs: expired idempotency keys, settled
    /// notifications past their retention (archived to the warehouse first), old job runs.
    Housekeeping(HousekeepingArgs),
    /// Prints the GraphQL subgraph's SDL (with its federation directives), as `serve` offers
    /// it at `GET /graphql`: for a gateway's composition or `rover`.
    GraphqlSdl,
    /// Checks error reporting end to end: sends a test message to the Sentry project of
    /// `SENTRY_DSN`, then panics on purpose so the panic report is seen arriving too (exit 101).
    ReportTest,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[arg(long, env = "SIPLINE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// HS256 shared secret (Supabase's JWT secret), at least 32 bytes. Needs --audience.
    #[arg(long, env = "SIPLINE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// JWKS for RS256/ES256: a file, or an https:// URL (Auth0's /.well-known/jwks.json;
    /// http:// only on loopback). Needs --audience and --issuer.
    #[arg(long, env = "SIPLINE_JWKS", hide_env_values = true)]
    pub jwks: Option<String>,
    /// Required audience (`aud`; Supabase: authenticated). Required with either key source.
    #[arg(long, env = "SIPLINE_JWT_AUDIENCE")]
    pub audience: Option<String>,
    /// Required issuer (`iss`); required with --jwks, checked with --jwt-secret when set.
    #[arg(long, env = "SIPLINE_JWT_ISSUER")]
    pub issuer: Option<String>,
    /// The `role` claim of service tokens, which may read any user.
    #[arg(long, env = "SIPLINE_SERVICE_ROLE", default_value = "service_role")]
    pub service_role: String,
    /// A hot standby (streaming replication) of the database, for reads of published data:
    /// portfolios, charts, instalments, schemes, NAVs, statements. Writes, a person's reads
    /// right after their own writes, and everything while the standby is down or behind go to
    /// the primary.
    #[arg(long, env = "SIPLINE_READ_DATABASE_URL", hide_env_values = true)]
    pub read_database_url: Option<String>,
    /// The standby is left out while it lags the primary by more than this many seconds.
    #[arg(long, env = "SIPLINE_MAX_REPLICA_LAG_SECS", default_value_t = 5)]
    pub max_replica_lag_secs: u64,
    /// Apply the migrations before serving: needs a role that may run DDL, which the serving
    /// role should not have (in production, `sipline db migrate` as the owner before deploying).
    #[arg(long)]
    pub migrate: bool,
    #[arg(long, default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    #[arg(long, env = "SIPLINE_DB_POOL", default_value_t = 16)]
    pub max_connections: u32,
    /// Memory the response caches (NAV, portfolio, graph) may hold together, in MiB; the
    /// least recently used bodies go first.
    #[arg(long, env = "SIPLINE_CACHE_MB", default_value_t = 256)]
    pub cache_mb: u64,
    /// Requests a second per caller (token subject), on average; 0: not limited. A 429 with
    /// Retry-After past it.
    #[arg(long, env = "SIPLINE_RATE_PER_USER", default_value_t = 20)]
    pub rate_per_user: u32,
    /// Requests a caller may burst above the average.
    #[arg(long, env = "SIPLINE_BURST_PER_USER", default_value_t = 60)]
    pub burst_per_user: u32,
    /// Requests a second per client address (the TCP peer: behind a proxy, size it for the
    /// proxy), on average; 0: not limited.
    #[arg(long, env = "SIPLINE_RATE_PER_ADDRESS", default_value_t = 500)]
    pub rate_per_address: u32,
    #[arg(long, env = "SIPLINE_BURST_PER_ADDRESS", default_value_t = 1000)]
    pub burst_per_address: u32,
    /// A token `/metrics` requires (`Authorization: Bearer …`); unset, `/metrics` is open to
    /// whoever can reach the listener (keep it on an internal network then).
    #[arg(long, env = "SIPLINE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// The key the dispatcher signs unsubscribe links with (the same on both); unset,
    /// `/v1/unsubscribe` answers 404.
    #[arg(long, env = "SIPLINE_UNSUBSCRIBE_SECRET", hide_env_values = true)]
    pub unsubscribe_secret: Option<String>,
    /// To rotate the unsubscribe key: the old key, kept here while the dispatcher signs with
    /// the new one, so links in messages already sent work until they expire (60 days).
    #[arg(
        long,
        env = "SIPLINE_UNSUBSCRIBE_PREVIOUS_SECRET",
        hide_env_values = true
    )]
    pub unsubscribe_previous_secret: Option<String>,
    /// The key providers' callback URLs are signed with (the dispatcher's
    /// --provider-callback-secret); unset, `/v1/providers/…` answers 404.
    #[arg(long, env = "SIPLINE_PROVIDER_CALLBACK_SECRET", hide_env_values = true)]
    pub provider_callback_secret: Option<String>,
    /// To rotate the callback key: the old key, so delivery reports on messages sent before
    /// the dispatcher switched keys still land.
    #[arg(
        long,
        env = "SIPLINE_PROVIDER_CALLBACK_PREVIOUS_SECRET",
        hide_env_values = true
    )]
    pub provider_callback_previous_secret: Option<String>,
    #[command(flatten)]
    pub calendar: CalendarArgs,
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// One bounded pass: deliver what is due, then exit (for a scheduler, every minute).
    Dispatch(DispatchArgs),
    /// Long-running: deliver as notifications arrive (LISTEN/NOTIFY), polling as a fallback,
    /// until SIGTERM.
    Worker(WorkerArgs),
    /// The outbox's queue depth, attempts and delivery latency, as Prometheus text.
    Stats,
}

#[derive(Debug, Args)]
pub struct DispatchArgs {
    /// Stop after this many batches even if more is due.
    #[arg(long)]
    pub max_batches: Option<u64>,
    #[command(flatten)]
    pub channels: Box<ChannelArgs>,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Look for due retries at least this often, even without a NOTIFY.
    #[arg(long, default_value_t = 5)]
    pub poll_secs: u64,
    #[command(flatten)]
    pub channels: Box<ChannelArgs>,
}

#[derive(Debug, Args)]
pub struct ChannelArgs {
    /// The platform's webhook endpoint (channel `webhook`).
    #[arg(long, env = "SIPLINE_WEBHOOK_URL", hide_env_values = true)]
    pub webhook_url: Option<String>,
    /// The SMS provider's webhook (channel `sms`).
    #[arg(long, env = "SIPLINE_SMS_WEBHOOK_URL", hide_env_values = true)]
    pub sms_webhook_url: Option<String>,
    /// SMS through Exotel's API (instead of --sms-webhook-url): its base URL,
    /// https://api.in.exotel.com for the Mumbai cluster.
    #[arg(long, env = "SIPLINE_EXOTEL_URL")]
    pub exotel_url: Option<String>,
    #[arg(long, env = "SIPLINE_EXOTEL_SID")]
    pub exotel_sid: Option<String>,
    #[arg(long, env = "SIPLINE_EXOTEL_API_KEY", hide_env_values = true)]
    pub exotel_api_key: Option<String>,
    /// From the environment only.
    #[arg(
        long,
        env = "SIPLINE_EXOTEL_API_TOKEN",
        hide = true,
        hide_env_values = true
    )]
    pub exotel_api_token: Option<String>,
    /// The DLT-registered sender ID SMS go out under.
    #[arg(long, env = "SIPLINE_SMS_SENDER")]
    pub sms_sender: Option<String>,
    /// The principal entity ID registered on the DLT portal.
    #[arg(long, env = "SIPLINE_DLT_ENTITY_ID")]
    pub dlt_entity_id: Option<String>,
    /// The DLT template ID registered for each kind: kind=id,kind=id (a kind without one is
    /// not sent: operators drop it); nav_alert_digest=id for a day's NAV alerts in one SMS.
    #[arg(long, env = "SIPLINE_DLT_TEMPLATES")]
    pub dlt_templates: Option<String>,
    /// The API's delivery-report route as Exotel reaches it
    /// (https://api.example.com/v1/providers/exotel/sms-status); signed per delivery with
    /// --provider-callback-secret, which `serve` must share.
    #[arg(long, env = "SIPLINE_SMS_STATUS_CALLBACK_URL")]
    pub sms_status_callback_url: Option<String>,
    #[arg(long, env = "SIPLINE_PROVIDER_CALLBACK_SECRET", hide_env_values = true)]
    pub provider_callback_secret: Option<String>,
    /// Push through FCM HTTP v1: the service account key file (JSON) the Firebase console gives.
    #[arg(long, env = "SIPLINE_FCM_SERVICE_ACCOUNT")]
    pub fcm_service_account: Option<std::path::PathBuf>,
    #[arg(
        long,
        env = "SIPLINE_FCM_URL",
        default_value = "https://fcm.googleapis.com"
    )]
    pub fcm_url: String,
    /// Push through APNs: the `.p8` key file, its key id, the team id and the app's bundle id.
    #[arg(long, env = "SIPLINE_APNS_KEY_FILE")]
    pub apns_key_file: Option<std::path::PathBuf>,
    #[arg(long, env = "SIPLINE_APNS_KEY_ID")]
    pub apns_key_id: Option<String>,
    #[arg(long, env = "SIPLINE_APNS_TEAM_ID")]
    pub apns_team_id: Option<String>,
    #[arg(long, env = "SIPLINE_APNS_TOPIC")]
    pub apns_topic: Option<String>,
    #[arg(
        long,
        env = "SIPLINE_APNS_URL",
        default_value = "https://api.push.apple.com"
    )]
    pub apns_url: String,
    /// A push gateway's webhook (channel `push`), when neither FCM nor APNs is configured.
    #[arg(long, env = "SIPLINE_PUSH_WEBHOOK_URL", hide_env_values = true)]
    pub push_webhook_url: Option<String>,
    /// The HMAC-SHA256 key every webhook body is signed with (`X-Sipline-Signature`).
    #[arg(long, env = "SIPLINE_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: String,
    /// To rotate the webhook key: the old key. Every body is then signed by both (two `v1=`
    /// in `X-Sipline-Signature`, the new key's first) until receivers hold the new one.
    #[arg(long, env = "SIPLINE_WEBHOOK_PREVIOUS_SECRET", hide_env_values = true)]
    pub webhook_previous_secret: Option<String>,
    /// The SMTP submission server, host:port (channel `email`).
    #[arg(long, env = "SIPLINE_SMTP_RELAY", hide_env_values = true)]
    pub smtp_relay: Option<String>,
    /// How the connection to --smtp-relay is secured: `starttls` (587) or `implicit` (465);
    /// `none` only for a relay on the same host or network.
    #[arg(long, env = "SIPLINE_SMTP_TLS", value_enum, default_value = "starttls")]
    pub smtp_tls: notify::SmtpTls,
    /// SMTP AUTH user (the password comes from SIPLINE_SMTP_PASSWORD only).
    #[arg(long, env = "SIPLINE_SMTP_USERNAME", hide_env_values = true)]
    pub smtp_username: Option<String>,
    #[arg(
        long,
        env = "SIPLINE_SMTP_PASSWORD",
        hide = true,
        hide_env_values = true
    )]
    pub smtp_password: Option<String>,
    /// A PEM file of CA certificates trusted for --smtp-relay besides the public ones.
    #[arg(long, env = "SIPLINE_SMTP_CA_FILE")]
    pub smtp_ca_file: Option<std::path::PathBuf>,
    /// Sign every e-mail with DKIM for this domain (the --mail-from address's, or a parent of
    /// it); with --dkim-selector and --dkim-key-file.
    #[arg(long, env = "SIPLINE_DKIM_DOMAIN", requires_all = ["dkim_selector", "dkim_key_file", "smtp_relay"])]
    pub dkim_domain: Option<String>,
    /// The DKIM selector: the public key is the TXT record <selector>._domainkey.<domain>.
    #[arg(long, env = "SIPLINE_DKIM_SELECTOR", requires = "dkim_domain")]
    pub dkim_selector: Option<String>,
    /// The DKIM private key: RSA, PKCS#1 PEM (`openssl genrsa 2048` writes one).
    #[arg(long, env = "SIPLINE_DKIM_KEY_FILE", requires = "dkim_domain")]
    pub dkim_key_file: Option<std::path::PathBuf>,
    #[arg(
        long,
        env = "SIPLINE_MAIL_FROM",
        default_value = "notifications@sipline.local"
    )]
    pub mail_from: String,
    /// Where unsubscribe links point: the API's `/v1/unsubscribe` as people reach it
    /// (https://api.example.com/v1/unsubscribe). With --unsubscribe-secret, every e-mail
    /// carries a signed link per person and kind, and List-Unsubscribe (RFC 8058).
    #[arg(long, env = "SIPLINE_UNSUBSCRIBE_URL")]
    pub unsubscribe_url: Option<String>,
    #[arg(long, env = "SIPLINE_UNSUBSCRIBE_SECRET", hide_env_values = true)]
    pub unsubscribe_secret: Option<String>,
    /// The app's statement page (https://app.example.com/statement): the monthly statement
    /// e-mail links to `<url>?from=<month start>&to=<as of>&format=pdf` there, where the
    /// person signs in and the app fetches the API's statement.
    #[arg(long, env = "SIPLINE_STATEMENT_URL")]
    pub statement_url: Option<String>,
    /// Deliveries claimed per batch.
    #[arg(long, default_value_t = 500)]
    pub batch: i64,
    /// Deliveries in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Attempts before a delivery is dead.
    #[arg(long, default_value_t = 8)]
    pub max_attempts: i32,
    /// First retry delay (doubled per attempt, with jitter).
    #[arg(long, default_value_t = 30_000)]
    pub retry_base_ms: u64,
    #[arg(long, default_value_t = 3_600_000)]
    pub retry_max_ms: u64,
    /// How long a claim holds before another dispatcher may retry it (raised to cover a
    /// batch's sends at --concurrency and --timeout-secs, plus 5 s).
    #[arg(long, default_value_t = 120)]
    pub lease_secs: u64,
    /// Timeout of one delivery attempt.
    #[arg(long, default_value_t = 10)]
    pub timeout_secs: u64,
    /// Start although this channel is in use and not configured here: its deliveries wait,
    /// pending, for a dispatcher that has it (repeatable). Without it such a start is refused.
    #[arg(long, value_parser = ["webhook", "sms", "push", "email"])]
    pub hold: Vec<String>,
}

impl ChannelArgs {
    pub fn config(&self) -> anyhow::Result<notify::DispatchConfig> {
        let smtp = match &self.smtp_relay {
            None => None,
            Some(relay) => Some(notify::SmtpConfig {
                relay: relay.clone(),
                tls: self.smtp_tls,
                username: self.smtp_username.clone(),
                password: self.smtp_password.clone().map(Secret::from),
                ca_pem: match &self.smtp_ca_file {
                    None => None,
                    Some(path) => Some(std::fs::read(path).map_err(|e| {
                        crate::plumbing::exit::JobFailure::BadInput(format!(
                            "--smtp-ca-file {}: {e}",
                            path.display()
                        ))
                    })?),
                },
                dkim: match (&self.dkim_domain, &self.dkim_selector, &self.dkim_key_file) {
                    (Some(domain), Some(selector), Some(path)) => Some(notify::DkimKey {
                        domain: domain.clone(),
                        selector: selector.clone(),
                        private_key_pem: Secret::from(std::fs::read_to_string(path).map_err(
                            |e| {
                                crate::plumbing::exit::JobFailure::BadInput(format!(
                                    "--dkim-key-file {}: {e}",
                                    path.display()
                                ))
                            },
                        )?),
                    }),
                    _ => None,
                },
            }),
        };
        let bad = |text: String| crate::plumbing::exit::JobFailure::BadInput(text);
        let exotel = match &self.exotel_url {
            None => None,
            Some(url) => {
                if self.sms_webhook_url.is_some() {
                    anyhow::bail!(bad(
                        "--exotel-url and --sms-webhook-url: one SMS route, not both".into()
                    ));
                }
                let need = |value: &Option<String>, name: &str| {
                    value
                        .clone()
                        .filter(|v| !v.is_empty())
                        .ok_or_else(|| bad(format!("--exotel-url needs {name}")))
                };
                let callbacks = match (
                    &self.sms_status_callback_url,
                    &self.provider_callback_secret,
                ) {
                    (Some(url), Some(secret))
                        if secret.len() >= notify::MIN_WEBHOOK_SECRET_BYTES =>
                    {
                        Some(notify::SignedCallbacks {
                            base_url: url.clone(),
                            secret: Secret::new(secret.clone()),
                        })
                    }
                    (Some(_), Some(_)) => anyhow::bail!(bad(format!(
                        "--provider-callback-secret: at least {} bytes",
                        notify::MIN_WEBHOOK_SECRET_BYTES
                    ))),
                    (None, None) => None,
                    _ => anyhow::bail!(bad(
                        "--sms-status-callback-url and --provider-callback-secret go together"
                            .into()
                    )),
                };
                Some(notify::ExotelConfig {
                    base_url: url.clone(),
                    account_sid: need(&self.exotel_sid, "--exotel-sid")?,
                    api_key: Secret::new(need(&self.exotel_api_key, "--exotel-api-key")?),
                    api_token: Secret::new(need(
                        &self.exotel_api_token,
                        "SIPLINE_EXOTEL_API_TOKEN",
                    )?),
                    sender: need(&self.sms_sender, "--sms-sender")?,
                    dlt_entity_id: need(&self.dlt_entity_id, "--dlt-entity-id")?,
                    dlt_templates: notify::parse_dlt_templates(
                        self.dlt_templates.as_deref().unwrap_or_default(),
                    )
                    .map_err(|e| bad(format!("--dlt-templates: {e}")))?,
                    callbacks,
                })
            }
        };
        let read = |path: &std::path::Path, what: &str| {
            std::fs::read_to_string(path)
                .map_err(|e| bad(format!("{what} {}: {e}", path.display())))
        };
        let fcm = match &self.fcm_service_account {
            None => None,
            Some(path) => {
                let account: notify::ServiceAccount =
                    serde_json::from_str(&read(path, "--fcm-service-account")?).map_err(|e| {
                        bad(format!(
                            "--fcm-service-account {}: not a service account key: {e}",
                            path.display()
                        ))
                    })?;
                Some(notify::FcmConfig {
                    account,
                    base_url: self.fcm_url.clone(),
                })
            }
        };
        let apns = match &self.apns_key_file {
            None => None,
            Some(path) => {
                let need = |value: &Option<String>, name: &str| {
                    value
                        .clone()
                        .filter(|v| !v.is_empty())
                        .ok_or_else(|| bad(format!("--apns-key-file needs {name}")))
                };
                Some(notify::ApnsConfig {
                    base_url: self.apns_url.clone(),
                    team_id: need(&self.apns_team_id, "--apns-team-id")?,
                    key_id: need(&self.apns_key_id, "--apns-key-id")?,
                    private_key_pem: Secret::new(read(path, "--apns-key-file")?),
                    topic: need(&self.apns_topic, "--apns-topic")?,
                })
            }
        };
        Ok(notify::DispatchConfig {
            fcm,
            apns,
            webhook_url: self.webhook_url.clone(),
            sms_webhook_url: self.sms_webhook_url.clone(),
            exotel,
            push_webhook_url: self.push_webhook_url.clone(),
            webhook_secret: Secret::new(self.webhook_secret.clone()),
            // Set empty (in an env file) is how an operator drops it: unset.
            webhook_previous_secret: self
                .webhook_previous_secret
                .clone()
                .filter(|key| !key.is_empty())
                .map(Secret::new),
            smtp,
            mail_from: self.mail_from.clone(),
            statement_url: self.statement_url.clone(),
            unsubscribe: match (&self.unsubscribe_url, &self.unsubscribe_secret) {
                (Some(url), Some(secret)) => Some(notify::UnsubscribeLinks {
                    base_url: url.clone(),
                    secret: Secret::new(secret.clone()),
                }),
                (None, None) => None,
                _ => anyhow::bail!(crate::plumbing::exit::JobFailure::BadInput(
                    "--unsubscribe-url and --unsubscribe-secret go together".into()
                )),
            },
            batch: self.batch.max(1),
            concurrency: self.concurrency.max(1),
            max_attempts: self.max_attempts.max(1),
            retry_base: Duration::from_millis(self.retry_base_ms),
            retry_max: Duration::from_millis(self.retry_max_ms.max(self.retry_base_ms)),
            lease: Duration::from_secs(self.lease_secs.max(1)),
            timeout: Duration::from_secs(self.timeout_secs.max(1)),
            held: self.hold.clone(),
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum CalendarCommand {
    /// Exit 0 if --date is a business day, 5 if it is a weekend or a holiday (a scheduler
    /// skips that day's runs: no NAV file will come).
    Check(CalendarCheckArgs),
}

#[derive(Debug, Args)]
pub struct CalendarCheckArgs {
    #[arg(long)]
    pub date: NaiveDate,
    #[command(flatten)]
    pub calendar: CalendarArgs,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The valuation date to publish (its `portfolio value` run must be complete).
    #[arg(long)]
    pub date: NaiveDate,
    /// Months of `investments` kept for the API (the current one included); 0, the default,
    /// keeps a person's whole record (monthly partitions: a publish loads one date whatever
    /// the history, and an old month costs only its disk).
    #[arg(long, default_value_t = 0)]
    pub keep_investment_months: u32,
    /// Also load the users and SIP mandates of a generated universe that PostgreSQL does not
    /// have yet (in production they are created through the API).
    #[arg(long, conflicts_with = "hourly")]
    pub mandates: bool,
    /// Publish the date's latest `portfolio value --hourly` run instead: only the users whose
    /// numbers differ from what the API shows them are written. An hour older than the one
    /// published, or a date before the latest daily publication, is skipped (exit 0).
    #[arg(long)]
    pub hourly: bool,
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
    #[command(flatten)]
    pub calendar: CalendarArgs,
}

#[derive(Debug, Subcommand)]
pub enum SipsCommand {
    /// Write PostgreSQL's `sips` as the warehouse `sips` snapshot as of --date.
    Export(SipsExportArgs),
}

#[derive(Debug, Subcommand)]
pub enum OrdersCommand {
    /// Execute the orders due by --date (their NAV date, or a liquid purchase's next day;
    /// still waiting ones from before too) against each person's lots (first in, first out),
    /// write `orders` and `realized_gains`, and record the outcomes in PostgreSQL. Runs after
    /// `sip execute` of the date and after the date's cut-off (15:00 IST).
    Execute(OrdersExecuteArgs),
}

#[derive(Debug, Args)]
pub struct OrdersExecuteArgs {
    /// The NAV date whose orders execute.
    #[arg(long)]
    pub date: NaiveDate,
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
    #[command(flatten)]
    pub calendar: CalendarArgs,
    #[command(flatten)]
    pub parallel: ParallelArgs,
}

#[derive(Debug, Subcommand)]
pub enum SchemesCommand {
    /// Set per-scheme unit decimals from a CSV file (`scheme_code,unit_decimals`, 0–4); later
    /// NAV ingests keep them.
    Rules(SchemeRulesArgs),
}

#[derive(Debug, Subcommand)]
pub enum DebitsCommand {
    /// Check a debit report (CSV `sip_id,due_date,amount,status,reason_code`) and store its
    /// returned debits for the run of --date: due ones fail, allotted ones are reversed.
    Ingest(DebitsIngestArgs),
}

#[derive(Debug, Args)]
pub struct DebitsIngestArgs {
    /// A local path or an http(s):// URL; `{date}` in it is replaced by --date.
    #[arg(long)]
    pub input: String,
    /// A report that is not there (HTTP 404, no such file) means no returns today: log it and
    /// change nothing. Returns reported late are applied by a later date's run.
    #[arg(long)]
    pub missing_ok: bool,
    /// The `sip execute` run that applies the report (ingest before it).
    #[arg(long)]
    pub date: NaiveDate,
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
    /// Download attempts for a URL (transient failures only).
    #[arg(long, default_value_t = 4)]
    pub retries: u32,
}

#[derive(Debug, Args)]
pub struct SchemeRulesArgs {
    /// The rules file: CSV with the header `scheme_code,unit_decimals`, or with the order
    /// terms too, `scheme_code,unit_decimals,exit_load,tax_class,payout_days,min_redemption`
    /// (an empty field keeps the category default; the terms need --database-url).
    #[arg(long)]
    pub input: std::path::PathBuf,
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
}

#[derive(Debug, Args)]
pub struct HousekeepingArgs {
    /// Hours an idempotency key is kept (a retry after them is a new request).
    #[arg(long, default_value_t = 24)]
    pub idempotency_hours: i32,
    /// Days a delivered or dead notification stays in PostgreSQL before it is archived to
    /// the warehouse's `notifications_archive` and deleted.
    #[arg(long, default_value_t = 90)]
    pub notification_days: i32,
    /// Days a `job_runs` row is kept (the metrics read the last 8).
    #[arg(long, default_value_t = 400)]
    pub job_run_days: i32,
    /// Days of daily portfolio snapshots the serving store keeps, back from the latest
    /// publication (the history route's daily points); older days are thinned to each month's
    /// last published date. The warehouse keeps every day.
    #[arg(long, default_value_t = 92)]
    pub snapshot_days: i32,
    /// Days month-end snapshots are kept (the history route serves ranges of up to 1,100).
    #[arg(long, default_value_t = 1_100)]
    pub snapshot_history_days: i32,
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
}

#[derive(Debug, Args)]
pub struct SipsExportArgs {
    /// The snapshot date: execution runs on or after it use it.
    #[arg(long)]
    pub date: NaiveDate,
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
    #[command(flatten)]
    pub parallel: ParallelArgs,
}

#[derive(Debug, Subcommand)]
pub enum PortfolioCommand {
    /// Value every user's portfolio as of --date: snapshots (with XIRR), lines and chart data;
    /// with --hourly, snapshots without XIRR into `portfolio_hourly`.
    Value(ValueArgs),
}

#[derive(Debug, Args)]
pub struct ValueArgs {
    /// The valuation date: holdings after that day's SIP execution, at the latest NAV on or
    /// before it.
    #[arg(long)]
    pub date: NaiveDate,
    /// The intraday mode: no XIRR or history charts; replaces the date's `portfolio_hourly`.
    #[arg(long)]
    pub hourly: bool,
    /// The hour an hourly run is for (0–23), stored with its rows.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..24))]
    pub hour: u32,
    /// Only this shard's buckets of users (i/N).
    #[arg(long, default_value = "0/1")]
    pub shard: shard::Shard,
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
    #[command(flatten)]
    pub calendar: CalendarArgs,
    #[command(flatten)]
    pub parallel: ParallelArgs,
}

#[derive(Debug, Args)]
pub struct CalendarArgs {
    /// A holiday list (one YYYY-MM-DD per line) replacing the embedded NSE holidays.
    #[arg(long, env = "SIPLINE_HOLIDAYS")]
    pub holidays: Option<std::path::PathBuf>,
}

impl CalendarArgs {
    /// Whether the calendar ends within 60 days of `date` (see `BusinessCalendar::ending_soon`).
    pub fn ending_soon(&self, date: NaiveDate) -> Option<String> {
        self.calendar().ok()?.ending_soon(date)
    }

    pub fn calendar(&self) -> anyhow::Result<pipeline::calendar::BusinessCalendar> {
        let Some(path) = &self.holidays else {
            return Ok(pipeline::calendar::BusinessCalendar::nse());
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        pipeline::calendar::BusinessCalendar::parse(&text)
            .map_err(|e| exit::JobFailure::BadInput(format!("{}: {e}", path.display())).into())
    }
}

#[derive(Debug, Args)]
pub struct ParallelArgs {
    /// Buckets worked on at once (default: the number of CPUs).
    #[arg(long, env = "SIPLINE_PARALLELISM")]
    pub parallelism: Option<usize>,
}

impl ParallelArgs {
    pub fn get(&self) -> usize {
        self.parallelism.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
        })
    }
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Number of users.
    #[arg(long, default_value_t = 100_000)]
    pub users: u64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Months of history (SIP start dates and NAVs) before --end-date.
    #[arg(long, default_value_t = 12)]
    pub months: u32,
    /// The last day of the history.
    #[arg(long, default_value = "2025-06-30")]
    pub end_date: NaiveDate,
    /// Generate only this shard's buckets of users (i/N); shard 0 also writes schemes and NAVs.
    #[arg(long, default_value = "0/1")]
    pub shard: shard::Shard,
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
    #[command(flatten)]
    pub calendar: CalendarArgs,
    #[command(flatten)]
    pub parallel: ParallelArgs,
}

#[derive(Debug, Subcommand)]
pub enum SipCommand {
    /// Execute every instalment due on --date (and every earlier one still pending).
    Execute(ExecuteArgs),
    /// Execute each business day in [--from, --to], in order.
    Backfill(BackfillArgs),
    /// Compact each month (month-end checkpoint on or before --through) not yet compacted
    /// into `purchases`: for warehouses executed before compaction existed. Idempotent.
    Compact(CompactArgs),
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    #[arg(long)]
    pub through: NaiveDate,
    /// Only this shard's buckets of users (i/N).
    #[arg(long, default_value = "0/1")]
    pub shard: shard::Shard,
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
    #[command(flatten)]
    pub parallel: ParallelArgs,
}

#[derive(Debug, Args)]
pub struct ExecuteCommon {
    /// Only this shard's buckets of users (i/N).
    #[arg(long, default_value = "0/1")]
    pub shard: shard::Shard,
    /// Simulate the bank's failed-debit report at this bounce rate (0..1) and write it to
    /// `debit_failures` before executing; without it, a report already there is used.
    #[arg(long, default_value_t = 0.0)]
    pub simulate_failures: f64,
    /// Seed of the simulated failures.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Business days an instalment waits past its applicable date for that date's NAV before
    /// it fails with `no_nav` (scheme merged or wound up; no money taken).
    #[arg(long, default_value_t = pipeline::sip::NO_NAV_AFTER_BUSINESS_DAYS)]
    pub no_nav_after: u32,
    /// Re-run a date although later dates already ran: first retire every later date's
    /// execution and valuation output (newest first), which must then be re-run in order.
    /// Without it such a re-run is refused with exit code 6 and writes nothing.
    #[arg(long)]
    pub rewind: bool,
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
    #[command(flatten)]
    pub calendar: CalendarArgs,
    #[command(flatten)]
    pub parallel: ParallelArgs,
}

impl ExecuteCommon {
    pub fn options(&self) -> anyhow::Result<sip_execute::ExecuteOptions> {
        if !(0.0..=1.0).contains(&self.simulate_failures) {
            anyhow::bail!(exit::JobFailure::BadInput(format!(
                "--simulate-failures {} is not a rate between 0 and 1",
                self.simulate_failures
            )));
        }
        Ok(sip_execute::ExecuteOptions {
            shard: self.shard,
            simulate_failures: self.simulate_failures,
            seed: self.seed,
            parallelism: self.parallel.get(),
            no_nav_after: self.no_nav_after,
            rewind: self.rewind,
        })
    }
}

#[derive(Debug, Args)]
pub struct ExecuteArgs {
    /// The run date.
    #[arg(long)]
    pub date: NaiveDate,
    #[command(flatten)]
    pub common: ExecuteCommon,
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    #[arg(long)]
    pub from: NaiveDate,
    #[arg(long)]
    pub to: NaiveDate,
    #[command(flatten)]
    pub common: ExecuteCommon,
}

#[derive(Debug, Args)]
pub struct WarehouseArgs {
    /// Warehouse folder or object-store URL (file://, s3://bucket/prefix, memory://).
    #[arg(
        long,
        env = "SIPLINE_WAREHOUSE",
        hide_env_values = true,
        default_value = "./data"
    )]
    pub warehouse: String,
}

#[derive(Debug, Subcommand)]
pub enum NavCommand {
    /// Ingest an AMFI or BSE NAV file (path or URL) into the warehouse (and PostgreSQL).
    Ingest(IngestArgs),
    /// Write a synthetic NAV file in a published format.
    Sample(SampleArgs),
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// The file's format.
    #[arg(long, value_parser = nav_format())]
    pub source: NavFormat,
    /// A local path or an http(s):// URL.
    #[arg(long)]
    pub input: String,
    /// The business date this run is for: the file must hold NAVs of that date for enough of
    /// the open-ended schemes that published the previous NAV date, or the job exits 4
    /// (not published yet, retry later) and writes nothing.
    #[arg(long)]
    pub date: Option<NaiveDate>,
    /// With --date: the share (0–1) of the previous NAV date's open-ended publishers that
    /// must have a NAV dated --date; 0 accepts any file holding one.
    #[arg(long, default_value_t = nav_ingest::MIN_PUBLISHER_SHARE)]
    pub min_publisher_share: f64,
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
    /// Download attempts for a URL (transient failures only).
    #[arg(long, default_value_t = 4)]
    pub retries: u32,
    /// Backoff before the first retry, doubled for each further one.
    #[arg(long, default_value_t = 2000)]
    pub retry_backoff_ms: u64,
    /// Timeout of one download attempt.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
}

#[derive(Debug, Args)]
pub struct SampleArgs {
    #[arg(long)]
    pub format: nav_sample::SampleFormat,
    /// Number of scheme codes (AMFI publishes about 14,000).
    #[arg(long, default_value_t = 14_000)]
    pub schemes: usize,
    /// The last NAV date.
    #[arg(long)]
    pub date: NaiveDate,
    /// Calendar days covered (weekends are skipped).
    #[arg(long, default_value_t = 1)]
    pub days: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output file.
    #[arg(long)]
    pub out: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query, e.g. "SELECT nav_date, count(*) FROM navs GROUP BY nav_date".
    pub query: String,
    #[arg(long, default_value = "table")]
    pub format: sql::OutputFormat,
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply the migrations in sql/migrations (idempotent).
    Migrate,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Users in the generated universe.
    #[arg(long, default_value_t = 20_000)]
    pub users: u64,
    #[command(flatten)]
    pub warehouse: WarehouseArgs,
}

/// are not jobs.
/// What a run of `command` is, for `job_runs` and the run manifest; `None` for commands that
/// are not jobs.
pub fn job_run(command: &Command) -> Option<JobRun> {
    let (job, date, shard, warehouse) = match command {
        Command::Nav(NavCommand::Ingest(args)) => ("nav ingest", args.date, None, &args.warehouse),
        Command::Generate(args) => (
            "generate",
            Some(args.end_date),
            Some(args.shard),
            &args.warehouse,
        ),
        Command::Sip(SipCommand::Execute(args)) => (
            "sip execute",
            Some(args.date),
            Some(args.common.shard),
            &args.common.warehouse,
        ),
        Command::Sip(SipCommand::Backfill(args)) => (
            "sip backfill",
            Some(args.to),
            Some(args.common.shard),
            &args.common.warehouse,
        ),
        Command::Sip(SipCommand::Compact(args)) => (
            "sip compact",
            Some(args.through),
            Some(args.shard),
            &args.warehouse,
        ),
        Command::Portfolio(PortfolioCommand::Value(args)) => (
            if args.hourly {
                "portfolio value hourly"
            } else {
                "portfolio value"
            },
            Some(args.date),
            Some(args.shard),
            &args.warehouse,
        ),
        Command::Publish(args) => (
            if args.hourly {
                "publish hourly"
            } else {
                "publish"
            },
            Some(args.date),
            None,
            &args.warehouse,
        ),
        Command::Sips(SipsCommand::Export(args)) => {
            ("sips export", Some(args.date), None, &args.warehouse)
        }
        Command::Orders(OrdersCommand::Execute(args)) => {
            ("orders execute", Some(args.date), None, &args.warehouse)
        }
        Command::Housekeeping(args) => ("housekeeping", None, None, &args.warehouse),
        Command::Schemes(SchemesCommand::Rules(args)) => {
            ("schemes rules", None, None, &args.warehouse)
        }
        Command::Debits(DebitsCommand::Ingest(args)) => {
            ("debits ingest", Some(args.date), None, &args.warehouse)
        }
        // Not tied to a date or a warehouse: recorded in job_runs only.
        Command::Notify(NotifyCommand::Dispatch(_)) => {
            return Some(JobRun::start("notify dispatch", None, None, None))
        }
        Command::Nav(NavCommand::Sample(_))
        | Command::Sql(_)
        | Command::Db(_)
        | Command::Demo(_)
        | Command::Calendar(_)
        | Command::Notify(NotifyCommand::Worker(_) | NotifyCommand::Stats)
        | Command::Serve(_)
        | Command::GraphqlSdl
        | Command::ReportTest => return None,
    };
    let mut run = JobRun::start(
        job,
        date,
        shard.map(|s| s.to_string()),
        Some(warehouse.warehouse.clone()),
    );
    if let Some(warning) = calendar_warning(command) {
        run.warn(warning);
    }
    Some(run)
}

/// A warning when the holiday calendar a dated job uses ends within 60 days of its date (or
/// has ended). A calendar that cannot be read is the job's own error to report, not this.
pub fn calendar_warning(command: &Command) -> Option<String> {
    let (calendar, date) = match command {
        Command::Generate(args) => (&args.calendar, args.end_date),
        Command::Sip(SipCommand::Execute(args)) => (&args.common.calendar, args.date),
        Command::Sip(SipCommand::Backfill(args)) => (&args.common.calendar, args.to),
        Command::Portfolio(PortfolioCommand::Value(args)) => (&args.calendar, args.date),
        Command::Publish(args) => (&args.calendar, args.date),
        Command::Calendar(CalendarCommand::Check(args)) => (&args.calendar, args.date),
        _ => return None,
    };
    calendar.ending_soon(date)
}

impl IngestArgs {
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            attempts: self.retries.max(1),
            first_backoff: Duration::from_millis(self.retry_backoff_ms),
            timeout: Duration::from_secs(self.timeout_secs),
            ..RetryPolicy::default()
        }
    }

    pub fn expected_day(&self) -> Option<nav_ingest::ExpectedDay> {
        self.date.map(|date| nav_ingest::ExpectedDay {
            date,
            min_publisher_share: self.min_publisher_share.clamp(0.0, 1.0),
        })
    }
}

impl GenerateArgs {
    pub fn spec(&self) -> pipeline::generate::UniverseSpec {
        pipeline::generate::UniverseSpec {
            seed: self.seed,
            users: self.users,
            months: self.months,
            end_date: self.end_date,
        }
    }
}

impl ValueArgs {
    pub fn options(&self) -> portfolio_value::ValueOptions {
        portfolio_value::ValueOptions {
            shard: self.shard,
            mode: if self.hourly {
                pipeline::valuation::ValuationMode::Hourly
            } else {
                pipeline::valuation::ValuationMode::Daily
            },
            hour: self.hour,
            parallelism: self.parallel.get(),
        }
    }
}

impl PublishArgs {
    pub fn options(&self) -> anyhow::Result<publish::PublishOptions> {
        Ok(publish::PublishOptions {
            keep_investment_months: self.keep_investment_months,
            monthly_statements: self
                .calendar
                .calendar()?
                .is_last_business_day_of_month(self.date),
        })
    }
}

/// `--source`: one of the formats `pipeline::nav` reads, listed in `--help` and in errors.
fn nav_format() -> impl clap::builder::TypedValueParser<Value = NavFormat> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(NavFormat::ALL.map(NavFormat::name))
        .try_map(|name: String| NavFormat::parse(&name).ok_or("unknown NAV format"))
}
