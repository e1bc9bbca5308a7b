//! `sipline`: one subcommand per scheduled job. This file only parses arguments, sets up
//! logging and maps outcomes to exit codes; each job lives in its own module.

mod exit;
mod fetch;
mod nav_ingest;
mod nav_sample;
mod postgres;
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
/// 4 missing upstream (e.g. the NAV file is not published yet: retry later).
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
    /// The quick start: ingest the sample NAV file shipped with sipline and query it.
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
struct WarehouseArgs {
    /// Warehouse folder or object-store URL (file://, s3://bucket/prefix, memory://).
    #[arg(long, env = "SIPLINE_WAREHOUSE", default_value = "./data")]
    warehouse: String,
}

#[derive(Debug, Args)]
struct DatabaseArgs {
    /// PostgreSQL URL; when given, results are also written there (migrations run first).
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
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
    #[command(flatten)]
    database: DatabaseArgs,
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
    Migrate {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
    },
}

#[derive(Debug, Args)]
struct DemoArgs {
    #[command(flatten)]
    warehouse: WarehouseArgs,
}

/// The sample `NAVAll.txt` the quick start ingests (made by `sipline nav sample`).
const SAMPLE_NAV_FILE: &[u8] = include_bytes!("../../samples/NAVAll_2024-12-27.txt");
const SAMPLE_NAV_NAME: &str = "samples/NAVAll_2024-12-27.txt";

fn init_logging(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn connect(database: &DatabaseArgs) -> anyhow::Result<Option<sqlx::PgPool>> {
    let Some(url) = &database.database_url else {
        return Ok(None);
    };
    let pool = postgres::connect(url)
        .await
        .context("connecting to PostgreSQL")?;
    postgres::migrate(&pool)
        .await
        .context("migrating PostgreSQL")?;
    Ok(Some(pool))
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Nav(NavCommand::Ingest(args)) => {
            let started = Instant::now();
            let warehouse = Warehouse::open(&args.warehouse.warehouse)?;
            let database = connect(&args.database).await?;
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
        Command::Db(DbCommand::Migrate { database_url }) => {
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
        Command::Demo(args) => demo(&args.warehouse.warehouse).await?,
    }
    Ok(())
}

async fn demo(location: &str) -> anyhow::Result<()> {
    let warehouse = Warehouse::open(location)?;
    let input = NavInput::from_reader(SAMPLE_NAV_NAME, Box::new(SAMPLE_NAV_FILE));
    let summary = nav_ingest::ingest(SourceFormat::Amfi, input, None, &warehouse, None).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{summary}")?;
    let queries = [
        (
            "Schemes and NAVs per fund house on the latest NAV date",
            "SELECT s.fund_house, count(*) AS schemes, min(n.nav) AS lowest_nav, max(n.nav) AS highest_nav \
             FROM navs n JOIN schemes s USING (scheme_code) \
             WHERE n.nav_date = (SELECT max(nav_date) FROM navs) \
             GROUP BY s.fund_house ORDER BY schemes DESC, s.fund_house LIMIT 5",
        ),
        (
            "NAV dates in the warehouse",
            "SELECT nav_date, count(*) AS navs, source FROM navs GROUP BY nav_date, source ORDER BY nav_date",
        ),
    ];
    for (title, query) in queries {
        writeln!(
            out,
            "\n{title}\n$ sipline sql --warehouse {location} \"{query}\""
        )?;
        sql::run(&warehouse, query, sql::OutputFormat::Table, &mut out).await?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::from(exit::SUCCESS),
        Err(error) => {
            let code = exit::code_for(&error);
            tracing::error!(error = format!("{error:#}"), "job failed");
            eprintln!("error: {error:#}");
            code
        }
    }
}
