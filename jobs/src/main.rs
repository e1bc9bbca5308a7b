//! `sipline`: one subcommand per scheduled job. This file only parses arguments, sets up
//! logging and maps outcomes to exit codes; each job lives in its own module.

mod exit;
mod fetch;
mod generate;
mod job_runs;
mod nav_ingest;
mod nav_sample;
mod notify;
mod portfolio_value;
mod postgres;
mod progress;
mod publish;
mod shard;
mod sip_execute;
mod sips_export;
mod sql;

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use warehouse::Warehouse;

use crate::fetch::RetryPolicy;
use crate::nav_ingest::{NavInput, SourceFormat};

/// sipline: the batch backend of a mutual-fund SIP platform.
///
/// Exit codes: 0 success, 1 internal error, 2 usage, 3 bad input (fix the file),
/// 4 missing upstream (e.g. the NAV file is not published yet: retry later),
/// 5 not a business day (`calendar check` only: skip the day's runs).
#[derive(Debug, Parser)]
#[command(name = "sipline", version)]
struct Cli {
    /// Log format on stderr: `text` for people, `json` for log shippers.
    #[arg(
        long,
        env = "SIPLINE_LOG_FORMAT",
        default_value = "text",
        global = true
    )]
    log_format: LogFormat,
    /// PostgreSQL URL. With it, every job records its run in `job_runs`; `nav ingest` also
    /// upserts NAVs there; `publish`, `sips export` and `db migrate` need it.
    #[arg(long, env = "DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// Validate the command line (required options, dates, shards) and exit 0 without running:
    /// how a scheduler's tests check every task's command.
    #[arg(long, global = true)]
    check_args: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    /// The business calendar the jobs use (weekends and NSE holidays).
    #[command(subcommand)]
    Calendar(CalendarCommand),
    /// Deliver the notification outbox: webhooks, email, SMS and push.
    #[command(subcommand)]
    Notify(NotifyCommand),
    /// The HTTP API over PostgreSQL (portfolios, charts, SIPs, NAVs, notifications, alerts).
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[arg(long, env = "SIPLINE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// HS256 shared secret (Supabase's JWT secret).
    #[arg(long, env = "SIPLINE_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// JWKS for RS256/ES256: a file, or an https:// URL (Auth0's /.well-known/jwks.json).
    #[arg(long, env = "SIPLINE_JWKS")]
    jwks: Option<String>,
    /// Required audience (`aud`); unset, not checked.
    #[arg(long, env = "SIPLINE_JWT_AUDIENCE")]
    audience: Option<String>,
    /// Required issuer (`iss`); unset, not checked.
    #[arg(long, env = "SIPLINE_JWT_ISSUER")]
    issuer: Option<String>,
    /// The `role` claim of service tokens, which may read any user.
    #[arg(long, env = "SIPLINE_SERVICE_ROLE", default_value = "service_role")]
    service_role: String,
    /// Apply the migrations before serving.
    #[arg(long)]
    migrate: bool,
    #[arg(long, default_value_t = 10_000)]
    request_timeout_ms: u64,
    #[arg(long, env = "SIPLINE_DB_POOL", default_value_t = 16)]
    max_connections: u32,
    /// Entries per cache (NAV, portfolio, graph) before pruning.
    #[arg(long, default_value_t = 1_000_000)]
    cache_entries: usize,
}

#[derive(Debug, Subcommand)]
enum NotifyCommand {
    /// One bounded pass: deliver what is due, then exit (for a scheduler, every minute).
    Dispatch(DispatchArgs),
    /// Long-running: deliver as notifications arrive (LISTEN/NOTIFY), polling as a fallback,
    /// until SIGTERM.
    Worker(WorkerArgs),
    /// The outbox's queue depth, attempts and delivery latency, as Prometheus text.
    Stats,
}

#[derive(Debug, Args)]
struct DispatchArgs {
    /// Stop after this many batches even if more is due.
    #[arg(long)]
    max_batches: Option<u64>,
    #[command(flatten)]
    channels: ChannelArgs,
}

#[derive(Debug, Args)]
struct WorkerArgs {
    /// Look for due retries at least this often, even without a NOTIFY.
    #[arg(long, default_value_t = 5)]
    poll_secs: u64,
    #[command(flatten)]
    channels: ChannelArgs,
}

#[derive(Debug, Args)]
struct ChannelArgs {
    /// The platform's webhook endpoint (channel `webhook`).
    #[arg(long, env = "SIPLINE_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// The SMS provider's webhook (channel `sms`).
    #[arg(long, env = "SIPLINE_SMS_WEBHOOK_URL")]
    sms_webhook_url: Option<String>,
    /// The push provider's webhook (channel `push`).
    #[arg(long, env = "SIPLINE_PUSH_WEBHOOK_URL")]
    push_webhook_url: Option<String>,
    /// The HMAC-SHA256 key every webhook body is signed with (`X-Sipline-Signature`).
    #[arg(long, env = "SIPLINE_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: String,
    /// SMTP relay, host:port (channel `email`).
    #[arg(long, env = "SIPLINE_SMTP_RELAY")]
    smtp_relay: Option<String>,
    #[arg(
        long,
        env = "SIPLINE_MAIL_FROM",
        default_value = "notifications@sipline.local"
    )]
    mail_from: String,
    /// Deliveries claimed per batch.
    #[arg(long, default_value_t = 500)]
    batch: i64,
    /// Deliveries in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Attempts before a delivery is dead.
    #[arg(long, default_value_t = 8)]
    max_attempts: i32,
    /// First retry delay (doubled per attempt, with jitter).
    #[arg(long, default_value_t = 30_000)]
    retry_base_ms: u64,
    #[arg(long, default_value_t = 3_600_000)]
    retry_max_ms: u64,
    /// How long a claim holds before another dispatcher may retry it.
    #[arg(long, default_value_t = 120)]
    lease_secs: u64,
    /// Timeout of one delivery attempt.
    #[arg(long, default_value_t = 10)]
    timeout_secs: u64,
}

impl ChannelArgs {
    fn config(&self) -> notify::DispatchConfig {
        notify::DispatchConfig {
            webhook_url: self.webhook_url.clone(),
            sms_webhook_url: self.sms_webhook_url.clone(),
            push_webhook_url: self.push_webhook_url.clone(),
            webhook_secret: self.webhook_secret.clone(),
            smtp_relay: self.smtp_relay.clone(),
            mail_from: self.mail_from.clone(),
            batch: self.batch.max(1),
            concurrency: self.concurrency.max(1),
            max_attempts: self.max_attempts.max(1),
            retry_base: Duration::from_millis(self.retry_base_ms),
            retry_max: Duration::from_millis(self.retry_max_ms.max(self.retry_base_ms)),
            lease: Duration::from_secs(self.lease_secs.max(1)),
            timeout: Duration::from_secs(self.timeout_secs.max(1)),
        }
    }
}

#[derive(Debug, Subcommand)]
enum CalendarCommand {
    /// Exit 0 if --date is a business day, 5 if it is a weekend or a holiday (a scheduler
    /// skips that day's runs: no NAV file will come).
    Check(CalendarCheckArgs),
}

#[derive(Debug, Args)]
struct CalendarCheckArgs {
    #[arg(long)]
    date: NaiveDate,
    #[command(flatten)]
    calendar: CalendarArgs,
}

#[derive(Debug, Args)]
struct PublishArgs {
    /// The valuation date to publish (its `portfolio value` run must be complete).
    #[arg(long)]
    date: NaiveDate,
    /// Months of `investments` kept for the API (the current one included).
    #[arg(long, default_value_t = 3)]
    keep_investment_months: u32,
    /// Also load the users and SIP mandates of a generated universe that PostgreSQL does not
    /// have yet (in production they are created through the API).
    #[arg(long)]
    mandates: bool,
    #[command(flatten)]
    warehouse: WarehouseArgs,
    #[command(flatten)]
    calendar: CalendarArgs,
}

#[derive(Debug, Subcommand)]
enum SipsCommand {
    /// Write PostgreSQL's `sips` as the warehouse `sips` snapshot as of --date.
    Export(SipsExportArgs),
}

#[derive(Debug, Args)]
struct SipsExportArgs {
    /// The snapshot date: execution runs on or after it use it.
    #[arg(long)]
    date: NaiveDate,
    #[command(flatten)]
    warehouse: WarehouseArgs,
    #[command(flatten)]
    parallel: ParallelArgs,
}

#[derive(Debug, Subcommand)]
enum PortfolioCommand {
    /// Value every user's portfolio as of --date: snapshots (with XIRR), lines and chart data;
    /// with --hourly, snapshots without XIRR into `portfolio_hourly`.
    Value(ValueArgs),
}

#[derive(Debug, Args)]
struct ValueArgs {
    /// The valuation date: holdings after that day's SIP execution, at the latest NAV on or
    /// before it.
    #[arg(long)]
    date: NaiveDate,
    /// The intraday mode: no XIRR or history charts; replaces the date's `portfolio_hourly`.
    #[arg(long)]
    hourly: bool,
    /// The hour an hourly run is for (0–23), stored with its rows.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..24))]
    hour: u32,
    /// Only this shard's buckets of users (i/N).
    #[arg(long, default_value = "0/1")]
    shard: shard::Shard,
    #[command(flatten)]
    warehouse: WarehouseArgs,
    #[command(flatten)]
    calendar: CalendarArgs,
    #[command(flatten)]
    parallel: ParallelArgs,
}

#[derive(Debug, Args)]
struct CalendarArgs {
    /// A holiday list (one YYYY-MM-DD per line) replacing the embedded NSE holidays.
    #[arg(long, env = "SIPLINE_HOLIDAYS")]
    holidays: Option<std::path::PathBuf>,
}

impl CalendarArgs {
    fn calendar(&self) -> anyhow::Result<pipeline::calendar::BusinessCalendar> {
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
struct ParallelArgs {
    /// Buckets worked on at once (default: the number of CPUs).
    #[arg(long, env = "SIPLINE_PARALLELISM")]
    parallelism: Option<usize>,
}

impl ParallelArgs {
    fn get(&self) -> usize {
        self.parallelism.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
        })
    }
}

#[derive(Debug, Args)]
struct GenerateArgs {
    /// Number of users.
    #[arg(long, default_value_t = 100_000)]
    users: u64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Months of history (SIP start dates and NAVs) before --end-date.
    #[arg(long, default_value_t = 12)]
    months: u32,
    /// The last day of the history.
    #[arg(long, default_value = "2025-06-30")]
    end_date: NaiveDate,
    /// Generate only this shard's buckets of users (i/N); shard 0 also writes schemes and NAVs.
    #[arg(long, default_value = "0/1")]
    shard: shard::Shard,
    #[command(flatten)]
    warehouse: WarehouseArgs,
    #[command(flatten)]
    calendar: CalendarArgs,
    #[command(flatten)]
    parallel: ParallelArgs,
}

#[derive(Debug, Subcommand)]
enum SipCommand {
    /// Execute every instalment due on --date (and every earlier one still pending).
    Execute(ExecuteArgs),
    /// Execute each business day in [--from, --to], in order.
    Backfill(BackfillArgs),
}

#[derive(Debug, Args)]
struct ExecuteCommon {
    /// Only this shard's buckets of users (i/N).
    #[arg(long, default_value = "0/1")]
    shard: shard::Shard,
    /// Simulate the bank's failed-debit report at this bounce rate (0..1) and write it to
    /// `debit_failures` before executing; without it, a report already there is used.
    #[arg(long, default_value_t = 0.0)]
    simulate_failures: f64,
    /// Seed of the simulated failures.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[command(flatten)]
    warehouse: WarehouseArgs,
    #[command(flatten)]
    calendar: CalendarArgs,
    #[command(flatten)]
    parallel: ParallelArgs,
}

impl ExecuteCommon {
    fn options(&self) -> anyhow::Result<sip_execute::ExecuteOptions> {
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
        })
    }
}

#[derive(Debug, Args)]
struct ExecuteArgs {
    /// The run date.
    #[arg(long)]
    date: NaiveDate,
    #[command(flatten)]
    common: ExecuteCommon,
}

#[derive(Debug, Args)]
struct BackfillArgs {
    #[arg(long)]
    from: NaiveDate,
    #[arg(long)]
    to: NaiveDate,
    #[command(flatten)]
    common: ExecuteCommon,
}

#[derive(Debug, Args)]
struct WarehouseArgs {
    /// Warehouse folder or object-store URL (file://, s3://bucket/prefix, memory://).
    #[arg(long, env = "SIPLINE_WAREHOUSE", default_value = "./data")]
    warehouse: String,
}

#[derive(Debug, Subcommand)]
enum NavCommand {
    /// Ingest an AMFI or BSE NAV file (path or URL) into the warehouse (and PostgreSQL).
    Ingest(IngestArgs),
    /// Write a synthetic NAV file in a published format.
    Sample(SampleArgs),
}

#[derive(Debug, Args)]
struct IngestArgs {
    /// The file's format.
    #[arg(long)]
    source: SourceFormat,
    /// A local path or an http(s):// URL.
    #[arg(long)]
    input: String,
    /// The business date this run is for: the file must hold NAVs of that date, or the job
    /// exits 4 (not published yet).
    #[arg(long)]
    date: Option<NaiveDate>,
    #[command(flatten)]
    warehouse: WarehouseArgs,
    /// Download attempts for a URL (transient failures only).
    #[arg(long, default_value_t = 4)]
    retries: u32,
    /// Backoff before the first retry, doubled for each further one.
    #[arg(long, default_value_t = 2000)]
    retry_backoff_ms: u64,
    /// Timeout of one download attempt.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
}

#[derive(Debug, Args)]
struct SampleArgs {
    #[arg(long)]
    format: nav_sample::SampleFormat,
    /// Number of scheme codes (AMFI publishes about 14,000).
    #[arg(long, default_value_t = 14_000)]
    schemes: usize,
    /// The last NAV date.
    #[arg(long)]
    date: NaiveDate,
    /// Calendar days covered (weekends are skipped).
    #[arg(long, default_value_t = 1)]
    days: u32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output file.
    #[arg(long)]
    out: std::path::PathBuf,
}

#[derive(Debug, Args)]
struct SqlArgs {
    /// The query, e.g. "SELECT nav_date, count(*) FROM navs GROUP BY nav_date".
    query: String,
    #[arg(long, default_value = "table")]
    format: sql::OutputFormat,
    #[command(flatten)]
    warehouse: WarehouseArgs,
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Apply the migrations in sql/migrations (idempotent).
    Migrate,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Users in the generated universe.
    #[arg(long, default_value_t = 20_000)]
    users: u64,
    #[command(flatten)]
    warehouse: WarehouseArgs,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // PostgreSQL's notices ("relation … already exists, skipping") are not news.
        .unwrap_or_else(|_| "info,sqlx::postgres::notice=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// A migrated pool, for the jobs that write to PostgreSQL.
async fn connect(url: &str) -> anyhow::Result<sqlx::PgPool> {
    let pool = postgres::connect(url)
        .await
        .context("connecting to PostgreSQL")?;
    postgres::migrate(&pool)
        .await
        .context("migrating PostgreSQL")?;
    Ok(pool)
}

fn required(database_url: Option<&str>, job: &str) -> anyhow::Result<String> {
    database_url.map(str::to_string).ok_or_else(|| {
        exit::JobFailure::BadInput(format!("`{job}` needs --database-url or DATABASE_URL")).into()
    })
}

/// What a run of `command` is, for `job_runs` and the run manifest; `None` for commands that
/// are not jobs.
fn job_run(command: &Command) -> Option<job_runs::JobRun> {
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
        Command::Publish(args) => ("publish", Some(args.date), None, &args.warehouse),
        Command::Sips(SipsCommand::Export(args)) => {
            ("sips export", Some(args.date), None, &args.warehouse)
        }
        // Not tied to a date or a warehouse: recorded in job_runs only.
        Command::Notify(NotifyCommand::Dispatch(_)) => {
            return Some(job_runs::JobRun::start("notify dispatch", None, None, None))
        }
        Command::Nav(NavCommand::Sample(_))
        | Command::Sql(_)
        | Command::Db(_)
        | Command::Demo(_)
        | Command::Calendar(_)
        | Command::Notify(NotifyCommand::Worker(_) | NotifyCommand::Stats)
        | Command::Serve(_) => return None,
    };
    Some(job_runs::JobRun::start(
        job,
        date,
        shard.map(|s| s.to_string()),
        Some(warehouse.warehouse.clone()),
    ))
}

async fn run(command: Command, database_url: Option<&str>) -> anyhow::Result<job_runs::RowCounts> {
    let mut counts = job_runs::RowCounts::default();
    match command {
        Command::Nav(NavCommand::Ingest(args)) => {
            let started = Instant::now();
            let warehouse = Warehouse::open(&args.warehouse.warehouse)?;
            let database = match database_url {
                Some(url) => Some(connect(url).await?),
                None => None,
            };
            let retry = RetryPolicy {
                attempts: args.retries.max(1),
                first_backoff: Duration::from_millis(args.retry_backoff_ms),
                timeout: Duration::from_secs(args.timeout_secs),
                ..RetryPolicy::default()
            };
            let input = NavInput::open(&args.input, retry).await?;
            let summary =
                nav_ingest::ingest(args.source, input, args.date, &warehouse, database.as_ref())
                    .await?;
            counts = job_runs::RowCounts::new(
                (summary.navs + summary.set_aside) as u64,
                summary.navs as u64,
            );
            println!("{summary} elapsed_ms={}", started.elapsed().as_millis());
        }
        Command::Nav(NavCommand::Sample(args)) => {
            let file = std::fs::File::create(&args.out)
                .with_context(|| format!("creating {}", args.out.display()))?;
            let rows = nav_sample::write_sample(
                file,
                args.format,
                args.schemes,
                args.date,
                args.days,
                args.seed,
            )?;
            println!("nav sample ok: file={} rows={rows}", args.out.display());
        }
        Command::Sql(args) => {
            let warehouse = Warehouse::open(&args.warehouse.warehouse)?;
            let stdout = std::io::stdout();
            let rows = sql::run(&warehouse, &args.query, args.format, &mut stdout.lock()).await?;
            tracing::info!(rows, "query done");
        }
        Command::Db(DbCommand::Migrate) => {
            let database_url = required(database_url, "db migrate")?;
            let pool = postgres::connect(&database_url)
                .await
                .context("connecting to PostgreSQL")?;
            postgres::migrate(&pool)
                .await
                .context("migrating PostgreSQL")?;
            println!(
                "db migrate ok: {} migrations known",
                postgres::MIGRATOR.iter().count()
            );
        }
        Command::Generate(args) => {
            let started = Instant::now();
            let warehouse = Warehouse::open(&args.warehouse.warehouse)?;
            let spec = pipeline::generate::UniverseSpec {
                seed: args.seed,
                users: args.users,
                months: args.months,
                end_date: args.end_date,
            };
            let summary = generate::generate(
                spec,
                args.shard,
                &args.calendar.calendar()?,
                &warehouse,
                args.parallel.get(),
            )
            .await?;
            counts = job_runs::RowCounts::new(0, summary.users + summary.sips);
            println!("{summary} elapsed_ms={}", started.elapsed().as_millis());
        }
        Command::Sip(SipCommand::Execute(args)) => {
            let started = Instant::now();
            let warehouse = Warehouse::open(&args.common.warehouse.warehouse)?;
            let summary = sip_execute::execute(
                &warehouse,
                &args.common.calendar.calendar()?,
                args.date,
                args.common.options()?,
            )
            .await?;
            counts = job_runs::RowCounts::new(
                summary.mandates,
                summary.executed + summary.pending + summary.failed,
            );
            println!(
                "{summary} shard={} elapsed_ms={}",
                args.common.shard,
                started.elapsed().as_millis()
            );
        }
        Command::Sip(SipCommand::Backfill(args)) => {
            let started = Instant::now();
            let warehouse = Warehouse::open(&args.common.warehouse.warehouse)?;
            let (days, total) = sip_execute::backfill(
                &warehouse,
                &args.common.calendar.calendar()?,
                args.from,
                args.to,
                args.common.options()?,
            )
            .await?;
            counts = job_runs::RowCounts::new(0, total.executed + total.pending + total.failed);
            println!(
                "sip backfill ok: from={} to={} days={days} executed={} pending_rows={} failed={} cancelled={} amount={} shard={} elapsed_ms={}",
                args.from,
                args.to,
                total.executed,
                total.pending,
                total.failed,
                total.cancelled,
                pipeline::money::Paise(total.executed_amount),
                args.common.shard,
                started.elapsed().as_millis()
            );
        }
        Command::Portfolio(PortfolioCommand::Value(args)) => {
            let started = Instant::now();
            let warehouse = Warehouse::open(&args.warehouse.warehouse)?;
            let options = portfolio_value::ValueOptions {
                shard: args.shard,
                mode: if args.hourly {
                    pipeline::valuation::ValuationMode::Hourly
                } else {
                    pipeline::valuation::ValuationMode::Daily
                },
                hour: args.hour,
                parallelism: args.parallel.get(),
            };
            let summary =
                portfolio_value::value(&warehouse, &args.calendar.calendar()?, args.date, options)
                    .await?;
            counts = job_runs::RowCounts::new(summary.purchases, summary.users + summary.lines);
            println!(
                "{summary} mode={} shard={} elapsed_ms={}",
                if args.hourly { "hourly" } else { "daily" },
                args.shard,
                started.elapsed().as_millis()
            );
        }
        Command::Demo(args) => demo(&args.warehouse.warehouse, args.users).await?,
        Command::Publish(args) => {
            let started = Instant::now();
            let warehouse = Warehouse::open(&args.warehouse.warehouse)?;
            let pool = connect(&required(database_url, "publish")?).await?;
            if args.mandates {
                let (users, sips) = publish::load_mandates(&warehouse, &pool, args.date).await?;
                println!(
                    "mandates loaded: new_users={users} new_sips={sips} elapsed_ms={}",
                    started.elapsed().as_millis()
                );
            }
            let started = Instant::now();
            let options = publish::PublishOptions {
                keep_investment_months: args.keep_investment_months.max(1),
                monthly_statements: args
                    .calendar
                    .calendar()?
                    .is_last_business_day_of_month(args.date),
            };
            let summary = publish::publish(&warehouse, &pool, args.date, options).await?;
            counts = job_runs::RowCounts::new(summary.rows_in(), summary.rows_out());
            println!("{summary} elapsed_ms={}", started.elapsed().as_millis());
        }
        Command::Notify(NotifyCommand::Dispatch(args)) => {
            let started = Instant::now();
            let url = required(database_url, "notify dispatch")?;
            let dispatcher = notify::Dispatcher::new(connect(&url).await?, args.channels.config())?;
            let summary = dispatcher.drain(args.max_batches).await?;
            counts = job_runs::RowCounts::new(summary.attempts(), summary.delivered);
            println!(
                "notify dispatch ok: {summary} elapsed_ms={}",
                started.elapsed().as_millis()
            );
        }
        Command::Notify(NotifyCommand::Worker(args)) => {
            let url = required(database_url, "notify worker")?;
            let dispatcher = notify::Dispatcher::new(connect(&url).await?, args.channels.config())?;
            tracing::info!("notify worker started");
            let poll = Duration::from_secs(args.poll_secs.max(1));
            let summary = notify::work(&dispatcher, &url, poll).await?;
            println!("notify worker stopped: {summary}");
        }
        Command::Notify(NotifyCommand::Stats) => {
            let pool = connect(&required(database_url, "notify stats")?).await?;
            print!("{}", notify::Dispatcher::stats(&pool).await?);
        }
        Command::Serve(args) => {
            if args.jwt_secret.is_none() && args.jwks.is_none() {
                anyhow::bail!(exit::JobFailure::BadInput(
                    "`serve` needs --jwt-secret or --jwks: no token could be verified".into()
                ));
            }
            api::serve(api::ServeConfig {
                listen: args.listen,
                database_url: required(database_url, "serve")?,
                auth: api::auth::AuthConfig {
                    hs256_secret: args.jwt_secret,
                    jwks: args.jwks.as_deref().map(api::auth::JwksSource::parse),
                    audience: args.audience,
                    issuer: args.issuer,
                    service_role: args.service_role,
                },
                migrate: args.migrate,
                request_timeout: Duration::from_millis(args.request_timeout_ms.max(1)),
                max_connections: args.max_connections.max(1),
                cache_entries: args.cache_entries.max(1),
            })
            .await?;
        }
        Command::Calendar(CalendarCommand::Check(args)) => {
            let business = args.calendar.calendar()?.is_business_day(args.date);
            println!(
                "calendar check: {} is {}",
                args.date,
                if business {
                    "a business day"
                } else {
                    "not a business day"
                }
            );
            if !business {
                return Err(NotABusinessDay.into());
            }
        }
        Command::Sips(SipsCommand::Export(args)) => {
            let started = Instant::now();
            let warehouse = Warehouse::open(&args.warehouse.warehouse)?;
            let pool = connect(&required(database_url, "sips export")?).await?;
            let summary =
                sips_export::export(&warehouse, &pool, args.date, args.parallel.get()).await?;
            counts = job_runs::RowCounts::new(summary.sips, summary.sips);
            println!("{summary} elapsed_ms={}", started.elapsed().as_millis());
        }
    }
    Ok(counts)
}

/// `calendar check` on a weekend or holiday: its own exit code, not an error.
#[derive(Debug, thiserror::Error)]
#[error("not a business day")]
struct NotABusinessDay;

async fn demo(location: &str, users: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let warehouse = Warehouse::open(location)?;
    let calendar = pipeline::calendar::BusinessCalendar::nse();
    let parallelism = ParallelArgs { parallelism: None }.get();
    let spec = pipeline::generate::UniverseSpec {
        seed: 42,
        users,
        months: 12,
        end_date: NaiveDate::from_ymd_opt(2025, 6, 30).context("demo end date")?,
    };
    let mut out = std::io::stdout().lock();
    let generated =
        generate::generate(spec, shard::Shard::ALL, &calendar, &warehouse, parallelism).await?;
    writeln!(out, "{generated}")?;
    let options = sip_execute::ExecuteOptions {
        shard: shard::Shard::ALL,
        simulate_failures: 0.02,
        seed: 42,
        parallelism,
    };
    let (days, total) = sip_execute::backfill(
        &warehouse,
        &calendar,
        spec.start_date(),
        spec.end_date,
        options,
    )
    .await?;
    writeln!(
        out,
        "sip backfill ok: days={days} executed={} failed={} cancelled={} amount={}",
        total.executed,
        total.failed,
        total.cancelled,
        pipeline::money::Paise(total.executed_amount)
    )?;
    let valued = portfolio_value::value(
        &warehouse,
        &calendar,
        spec.end_date,
        portfolio_value::ValueOptions {
            shard: shard::Shard::ALL,
            mode: pipeline::valuation::ValuationMode::Daily,
            hour: 0,
            parallelism,
        },
    )
    .await?;
    writeln!(out, "{valued}")?;
    writeln!(
        out,
        "\nPortfolios as of {}: {} users, {} holding funds; invested {}, AUM {}, gain {}, median XIRR {}",
        spec.end_date,
        valued.users,
        valued.holders,
        pipeline::money::Paise(valued.invested),
        pipeline::money::Paise(valued.current_value),
        pipeline::money::Paise(valued.current_value - valued.invested),
        valued
            .median_xirr()
            .map_or_else(|| "none".to_string(), |r| format!("{:.2}%", r * 100.0)),
    )?;
    let queries = [
        (
            "XIRR distribution of investors (daily snapshot)",
            "SELECT CASE WHEN xirr < 0 THEN 'a. below 0%' WHEN xirr < 0.1 THEN 'b. 0-10%' \
             WHEN xirr < 0.2 THEN 'c. 10-20%' ELSE 'd. 20% and more' END AS xirr_band, \
             count(*) AS investors, sum(current_value) AS aum \
             FROM portfolio_snapshots WHERE as_of = (SELECT max(as_of) FROM portfolio_snapshots) \
             AND schemes > 0 AND NOT isnan(xirr) GROUP BY 1 ORDER BY 1",
        ),
        (
            "AUM by category",
            "SELECT s.category, count(DISTINCT l.user_id) AS investors, sum(l.current_value) AS aum \
             FROM portfolio_lines l JOIN schemes s USING (scheme_code) \
             WHERE l.as_of = (SELECT max(as_of) FROM portfolio_lines) \
             GROUP BY s.category ORDER BY aum DESC LIMIT 5",
        ),
        (
            "One user's line chart, as the API serves it",
            "SELECT period, invested, value FROM portfolio_charts \
             WHERE as_of = (SELECT max(as_of) FROM portfolio_charts) AND user_id = \
             (SELECT min(user_id) FROM portfolio_snapshots WHERE schemes > 1) AND chart = 'line' ORDER BY seq",
        ),
        (
            "Instalments by month and outcome",
            "SELECT date_trunc('month', exec_date) AS month, status, count(*) AS instalments, sum(amount) AS amount \
             FROM investments WHERE status <> 'pending' GROUP BY 1, 2 ORDER BY 1, 2 LIMIT 8",
        ),
        (
            "Largest holdings by fund house at the last month end",
            "SELECT s.fund_house, count(DISTINCT h.user_id) AS investors, sum(h.invested) AS invested \
             FROM holdings h JOIN schemes s USING (scheme_code) \
             WHERE h.as_of = (SELECT max(as_of) FROM holdings) \
             GROUP BY s.fund_house ORDER BY invested DESC LIMIT 5",
        ),
        (
            "SIP events for notifications, by kind",
            "SELECT kind, count(*) AS events FROM sip_events GROUP BY kind ORDER BY kind",
        ),
    ];
    for (title, query) in queries {
        writeln!(
            out,
            "\n{title}\n$ sipline sql --warehouse {location} \"{query}\""
        )?;
        sql::run(&warehouse, query, sql::OutputFormat::Table, &mut out).await?;
    }
    writeln!(
        out,
        "\ndemo ok: elapsed_ms={}",
        started.elapsed().as_millis()
    )?;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.check_args {
        println!("check-args ok: {:?}", cli.command);
        return ExitCode::from(exit::SUCCESS);
    }
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    let database_url = cli.database_url.as_deref();
    let job = job_run(&cli.command);
    let result = runtime.block_on(run(cli.command, database_url));
    // The run's records must not turn a finished job into a failed one: warnings, not errors.
    if let Some(job) = &job {
        if let Err(e) = runtime.block_on(job.write_manifest(&result)) {
            tracing::warn!(error = format!("{e:#}"), "could not write the run manifest");
        }
    }
    if let (Some(job), Some(url)) = (job, database_url) {
        if let Err(e) = runtime.block_on(job.record(url, &result)) {
            tracing::warn!(
                error = format!("{e:#}"),
                "could not record the run in job_runs"
            );
        }
    }
    match result {
        Ok(_) => ExitCode::from(exit::SUCCESS),
        Err(error) if error.is::<NotABusinessDay>() => ExitCode::from(exit::NOT_A_BUSINESS_DAY),
        Err(error) => {
            let code = exit::code_for(&error);
            tracing::error!(error = format!("{error:#}"), "job failed");
            eprintln!("error: {error:#}");
            code
        }
    }
}
