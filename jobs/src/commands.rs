//! What each subcommand does: its arguments turned into the job's options, the job run, its
//! summary printed. `run` only dispatches.

use std::time::{Duration, Instant};

use anyhow::Context;
use warehouse::Warehouse;

use crate::cli::*;
use crate::job_runs::{self, RowCounts};
use crate::nav_ingest::NavInput;
use crate::plumbing::exit::{self, NotABusinessDay};
use crate::plumbing::postgres;
use crate::{
    debits_ingest, generate, nav_ingest, nav_sample, notify, orders_execute, portfolio_value,
    publish, scheme_rules, sip_execute, sips_export, sql,
};

/// Runs one subcommand; the row counts are what `job_runs` records. `clock` is "now" for the
/// date rules (`serve`'s cut-off and today, `sips export`'s cut-off check).
pub async fn run(
    command: Command,
    database_url: Option<&str>,
    clock: serving::Clock,
) -> anyhow::Result<RowCounts> {
    match command {
        Command::Nav(NavCommand::Ingest(args)) => ingest_navs(args, database_url).await,
        Command::Nav(NavCommand::Sample(args)) => write_nav_sample(args).await,
        Command::Sql(args) => query_sql(args).await,
        Command::Db(DbCommand::Migrate) => migrate_db(database_url).await,
        Command::Generate(args) => generate_universe(args).await,
        Command::Sip(SipCommand::Execute(args)) => execute_sips(args).await,
        Command::Sip(SipCommand::Backfill(args)) => backfill_sips(args).await,
        Command::Sip(SipCommand::Compact(args)) => compact_purchases(args).await,
        Command::Portfolio(PortfolioCommand::Value(args)) => value_portfolios(args).await,
        Command::Demo(args) => {
            crate::demo::demo(&args.warehouse.warehouse, args.users).await?;
            Ok(RowCounts::default())
        }
        Command::Publish(args) => publish_date(args, database_url).await,
        Command::Notify(NotifyCommand::Dispatch(args)) => {
            dispatch_notifications(args, database_url).await
        }
        Command::Notify(NotifyCommand::Worker(args)) => run_notify_worker(args, database_url).await,
        Command::Notify(NotifyCommand::Stats) => print_notify_stats(database_url).await,
        Command::Serve(args) => serve_api(*args, database_url, clock).await,
        Command::GraphqlSdl => {
            print!("{}", api::graphql::sdl());
            Ok(RowCounts::default())
        }
        Command::ReportTest => {
            crate::plumbing::error_reports::test_reports().map(|()| RowCounts::default())
        }
        Command::Calendar(CalendarCommand::Check(args)) => check_calendar(args).await,
        Command::Sips(SipsCommand::Export(args)) => export_sips(args, database_url, clock).await,
        Command::Orders(OrdersCommand::Execute(args)) => {
            execute_orders(args, database_url, clock).await
        }
        Command::Schemes(SchemesCommand::Rules(args)) => set_scheme_rules(args, database_url).await,
        Command::Debits(DebitsCommand::Ingest(args)) => ingest_debits(args).await,
        Command::Housekeeping(args) => keep_house(args, database_url, clock).await,
    }
}

/// A migrated pool, for the jobs that write to PostgreSQL.
pub async fn connect(url: &str) -> anyhow::Result<sqlx::PgPool> {
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

async fn ingest_navs(args: IngestArgs, database_url: Option<&str>) -> anyhow::Result<RowCounts> {
    let started = Instant::now();
    let warehouse = Warehouse::open(&args.warehouse.warehouse)?;
    let database = match database_url {
        Some(url) => Some(connect(url).await?),
        None => None,
    };
    let input = NavInput::open(&args.input, args.retry_policy()).await?;
    let summary = nav_ingest::ingest(
        args.source,
        input,
        args.expected_day(),
        &warehouse,
        database.as_ref(),
    )
    .await?;
    let counts = job_runs::RowCounts::new(
        (summary.navs + summary.set_aside) as u64,
        summary.navs as u64,
    );
    println!("{summary} elapsed_ms={}", started.elapsed().as_millis());
    Ok(counts)
}

async fn write_nav_sample(args: SampleArgs) -> anyhow::Result<RowCounts> {
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
    Ok(RowCounts::default())
}

async fn query_sql(args: SqlArgs) -> anyhow::Result<RowCounts> {
    let warehouse = Warehouse::open(&args.warehouse.warehouse)?;
    let stdout = std::io::stdout();
    let rows = sql::run(&warehouse, &args.query, args.format, &mut stdout.lock()).await?;
    tracing::info!(rows, "query done");
    Ok(RowCounts::default())
}

async fn migrate_db(database_url: Option<&str>) -> anyhow::Result<RowCounts> {
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
    Ok(RowCounts::default())
}

async fn generate_universe(args: GenerateArgs) -> anyhow::Result<RowCounts> {
    let started = Instant::now();
    let warehouse = Warehouse::open(&args.warehouse.warehouse)?;
    let summary = generate::generate(
        args.spec(),
        args.shard,
        &args.calendar.calendar()?,
        &warehouse,
        args.parallel.get(),
    )
    .await?;
    let counts = job_runs::RowCounts::new(0, summary.users + summary.sips);
    println!("{summary} elapsed_ms={}", started.elapsed().as_millis());
    Ok(counts)
}

async fn execute_sips(args: ExecuteArgs) -> anyhow::Result<RowCounts> {
    let started = Instant::now();
    let warehouse = Warehouse::open(&args.common.warehouse.warehouse)?;
    let summary = sip_execute::execute(
        &warehouse,
        &args.common.calendar.calendar()?,
        args.date,
        args.common.options()?,
    )
    .await?;
    let counts = job_runs::RowCounts::new(
        summary.mandates,
        summary.executed + summary.pending + summary.failed,
    );
    println!(
        "{summary} shard={} elapsed_ms={}",
        args.common.shard,
        started.elapsed().as_millis()
    );
    Ok(counts)
}

async fn backfill_sips(args: BackfillArgs) -> anyhow::Result<RowCounts> {
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
    let counts = job_runs::RowCounts::new(0, total.executed + total.pending + total.failed);
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
    Ok(counts)
}

async fn compact_purchases(args: CompactArgs) -> anyhow::Result<RowCounts> {
    let started = Instant::now();
    let warehouse = Warehouse::open(&args.warehouse.warehouse)?;
    let summary =
        sip_execute::compact(&warehouse, args.through, args.shard, args.parallel.get()).await?;
    println!(
        "{summary} through={} shard={} elapsed_ms={}",
        args.through,
        args.shard,
        started.elapsed().as_millis()
    );
    Ok(job_runs::RowCounts::new(
        summary.purchases,
        summary.purchases,
    ))
}

async fn value_portfolios(args: ValueArgs) -> anyhow::Result<RowCounts> {
    let started = Instant::now();
    let warehouse = Warehouse::open(&args.warehouse.warehouse)?;
    let summary = portfolio_value::value(
        &warehouse,
        &args.calendar.calendar()?,
        args.date,
        args.options(),
    )
    .await?;
    let counts = job_runs::RowCounts::new(summary.purchases, summary.users + summary.lines);
    println!(
        "{summary} mode={} shard={} elapsed_ms={}",
        if args.hourly { "hourly" } else { "daily" },
        args.shard,
        started.elapsed().as_millis()
    );
    Ok(counts)
}

async fn publish_date(args: PublishArgs, database_url: Option<&str>) -> anyhow::Result<RowCounts> {
    let started = Instant::now();
    let warehouse = Warehouse::open(&args.warehouse.warehouse)?;
    let pool = connect(&required(database_url, "publish")?).await?;
    if args.hourly {
        let summary = publish::hourly::publish_hourly(&warehouse, &pool, args.date).await?;
        println!("{summary} elapsed_ms={}", started.elapsed().as_millis());
        return Ok(job_runs::RowCounts::new(summary.users, summary.changed));
    }
    if args.mandates {
        let (users, sips) = publish::load_mandates(&warehouse, &pool, args.date).await?;
        println!(
            "mandates loaded: new_users={users} new_sips={sips} elapsed_ms={}",
            started.elapsed().as_millis()
        );
    }
    let started = Instant::now();
    let summary = publish::publish(&warehouse, &pool, args.date, args.options()?)
        .await
        .with_context(|| format!("publishing {} to PostgreSQL", args.date))?;
    let counts = job_runs::RowCounts::new(summary.rows_in(), summary.rows_out());
    println!("{summary} elapsed_ms={}", started.elapsed().as_millis());
    Ok(counts)
}

async fn dispatch_notifications(
    args: DispatchArgs,
    database_url: Option<&str>,
) -> anyhow::Result<RowCounts> {
    let started = Instant::now();
    let config = args.channels.config()?;
    config.check()?;
    let url = required(database_url, "notify dispatch")?;
    let dispatcher = notify::Dispatcher::new(connect(&url).await?, config)?;
    dispatcher.refuse_unconfigured_channels().await?;
    let summary = dispatcher.drain(args.max_batches).await?;
    let counts = job_runs::RowCounts::new(summary.attempts(), summary.delivered);
    println!(
        "notify dispatch ok: {summary} elapsed_ms={}",
        started.elapsed().as_millis()
    );
    Ok(counts)
}

async fn run_notify_worker(
    args: WorkerArgs,
    database_url: Option<&str>,
) -> anyhow::Result<RowCounts> {
    let config = args.channels.config()?;
    config.check()?;
    let url = required(database_url, "notify worker")?;
    let dispatcher = notify::Dispatcher::new(connect(&url).await?, config)?;
    dispatcher.refuse_unconfigured_channels().await?;
    tracing::info!("notify worker started");
    let poll = Duration::from_secs(args.poll_secs.max(1));
    let summary = notify::work(&dispatcher, &url, poll).await?;
    println!("notify worker stopped: {summary}");
    Ok(RowCounts::default())
}

async fn print_notify_stats(database_url: Option<&str>) -> anyhow::Result<RowCounts> {
    let pool = connect(&required(database_url, "notify stats")?).await?;
    print!("{}", notify::Dispatcher::stats(&pool).await?);
    Ok(RowCounts::default())
}

async fn serve_api(
    args: ServeArgs,
    database_url: Option<&str>,
    clock: serving::Clock,
) -> anyhow::Result<RowCounts> {
    let auth = api::auth::AuthConfig {
        hs256_secret: args.jwt_secret.map(api::Secret::from),
        jwks: args.jwks.as_deref().map(api::auth::JwksSource::parse),
        audience: args.audience,
        issuer: args.issuer,
        service_role: args.service_role,
    };
    if let Err(refusal) = auth.check() {
        anyhow::bail!(exit::JobFailure::BadInput(format!("`serve` {refusal}")));
    }
    // A previous key set empty (`…_PREVIOUS_SECRET=` in an env file) is how an operator
    // drops it after a rotation: unset, not a key anyone can sign with.
    let previous = |key: Option<String>| key.filter(|k| !k.is_empty());
    let unsubscribe_previous_secret = previous(args.unsubscribe_previous_secret);
    let provider_callback_previous_secret = previous(args.provider_callback_previous_secret);
    // Every shared signing key has the webhook key's floor: an empty or short one would let
    // anyone sign links or delivery reports.
    for (flag, key) in [
        ("--unsubscribe-secret", &args.unsubscribe_secret),
        (
            "--unsubscribe-previous-secret",
            &unsubscribe_previous_secret,
        ),
        ("--provider-callback-secret", &args.provider_callback_secret),
        (
            "--provider-callback-previous-secret",
            &provider_callback_previous_secret,
        ),
    ] {
        if key
            .as_ref()
            .is_some_and(|s| s.len() < serving::unsubscribe::MIN_SECRET_BYTES)
        {
            anyhow::bail!(exit::JobFailure::BadInput(format!(
                "{flag}: at least {} bytes",
                serving::unsubscribe::MIN_SECRET_BYTES
            )));
        }
    }
    // A previous key alone would accept only old links and sign nothing new: a slip in a
    // rotation, said at start rather than found in the 403s.
    for (previous, current, flag) in [
        (
            &unsubscribe_previous_secret,
            &args.unsubscribe_secret,
            "--unsubscribe-previous-secret needs --unsubscribe-secret (the new key)",
        ),
        (
            &provider_callback_previous_secret,
            &args.provider_callback_secret,
            "--provider-callback-previous-secret needs --provider-callback-secret (the new key)",
        ),
    ] {
        if previous.is_some() && current.is_none() {
            anyhow::bail!(exit::JobFailure::BadInput(flag.to_string()));
        }
    }
    api::serve(api::ServeConfig {
        listen: args.listen,
        database_url: required(database_url, "serve")?,
        read_database_url: args.read_database_url,
        max_replica_lag: Duration::from_secs(args.max_replica_lag_secs),
        auth,
        migrate: args.migrate,
        request_timeout: Duration::from_millis(args.request_timeout_ms.max(1)),
        max_connections: args.max_connections.max(1),
        cache_bytes: args.cache_mb.max(1) * 1024 * 1024,
        limits: api::limits::RateLimits {
            per_user: api::limits::Rate::new(args.rate_per_user, args.burst_per_user),
            per_address: api::limits::Rate::new(args.rate_per_address, args.burst_per_address),
        },
        calendar: args.calendar.calendar()?,
        clock,
        metrics_token: args.metrics_token.map(api::Secret::from),
        unsubscribe_secret: args.unsubscribe_secret.map(api::Secret::from),
        unsubscribe_previous_secret: unsubscribe_previous_secret.map(api::Secret::from),
        provider_callback_secret: args.provider_callback_secret.map(api::Secret::from),
        provider_callback_previous_secret: provider_callback_previous_secret.map(api::Secret::from),
    })
    .await?;
    Ok(RowCounts::default())
}

async fn check_calendar(args: CalendarCheckArgs) -> anyhow::Result<RowCounts> {
    // Not a job run with a manifest, but the first task of every nightly DAG: say it here.
    if let Some(warning) = args.calendar.ending_soon(args.date) {
        tracing::warn!("{warning}");
    }
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
    Ok(RowCounts::default())
}

async fn export_sips(
    args: SipsExportArgs,
    database_url: Option<&str>,
    clock: serving::Clock,
) -> anyhow::Result<RowCounts> {
    let started = Instant::now();
    let warehouse = Warehouse::open(&args.warehouse.warehouse)?;
    let pool = connect(&required(database_url, "sips export")?).await?;
    let summary =
        sips_export::export(&warehouse, &pool, args.date, args.parallel.get(), clock).await?;
    let counts = job_runs::RowCounts::new(summary.sips, summary.sips);
    println!("{summary} elapsed_ms={}", started.elapsed().as_millis());
    Ok(counts)
}

async fn execute_orders(
    args: OrdersExecuteArgs,
    database_url: Option<&str>,
    clock: serving::Clock,
) -> anyhow::Result<RowCounts> {
    let started = Instant::now();
    let warehouse = Warehouse::open(&args.warehouse.warehouse)?;
    let calendar = args.calendar.calendar()?;
    let pool = connect(&required(database_url, "orders execute")?).await?;
    let summary = orders_execute::execute_orders(
        &warehouse,
        &pool,
        args.date,
        &calendar,
        clock,
        args.parallel.get(),
    )
    .await?;
    println!("{summary} elapsed_ms={}", started.elapsed().as_millis());
    Ok(RowCounts::new(summary.orders, summary.executed))
}

async fn set_scheme_rules(
    args: SchemeRulesArgs,
    database_url: Option<&str>,
) -> anyhow::Result<RowCounts> {
    let warehouse = Warehouse::open(&args.warehouse.warehouse)?;
    let file = args.input.display().to_string();
    let text = std::fs::read_to_string(&args.input)
        .map_err(|e| exit::JobFailure::BadInput(format!("{file}: {e}")))?;
    let rules = scheme_rules::parse_rules(&file, &text)?;
    let database = match database_url {
        Some(url) => Some(connect(url).await?),
        None => None,
    };
    let summary = scheme_rules::apply(&file, &rules, &warehouse, database.as_ref()).await?;
    println!("{summary}");
    Ok(RowCounts::new(rules.len() as u64, summary.changed as u64))
}

async fn ingest_debits(args: DebitsIngestArgs) -> anyhow::Result<RowCounts> {
    let warehouse = Warehouse::open(&args.warehouse.warehouse)?;
    let policy = crate::plumbing::fetch::RetryPolicy {
        attempts: args.retries.max(1),
        ..crate::plumbing::fetch::RetryPolicy::default()
    };
    let input = args.input.replace("{date}", &args.date.to_string());
    let text = match crate::plumbing::fetch::read_text(&input, policy).await {
        Ok(text) => text,
        Err(error) if args.missing_ok && crate::plumbing::fetch::is_missing(&error) => {
            // The report's URL may be signed: shown as its host and file name only.
            let shown = crate::plumbing::redact::urls(&input);
            let error = crate::plumbing::redact::urls(&format!("{error:#}"));
            tracing::warn!(input = %shown, %error, "no debit report: nothing to apply");
            println!("debits ingest ok: file={shown} date={} missing", args.date);
            return Ok(RowCounts::new(0, 0));
        }
        Err(error) => return Err(error),
    };
    let summary = debits_ingest::ingest(&input, &text, args.date, &warehouse).await?;
    println!("{summary}");
    Ok(RowCounts::new(
        summary.lines as u64,
        if summary.unchanged {
            0
        } else {
            summary.returned as u64
        },
    ))
}

async fn keep_house(
    args: crate::cli::HousekeepingArgs,
    database_url: Option<&str>,
    clock: serving::Clock,
) -> anyhow::Result<RowCounts> {
    let started = Instant::now();
    let warehouse = Warehouse::open(&args.warehouse.warehouse)?;
    let pool = connect(&required(database_url, "housekeeping")?).await?;
    let retention = crate::housekeeping::Retention {
        idempotency_hours: args.idempotency_hours.max(1),
        notification_days: args.notification_days.max(1),
        job_run_days: args.job_run_days.max(8),
        // The lines' two dates and at least a month of daily points stay.
        snapshot_days: args.snapshot_days.max(31),
        snapshot_history_days: args.snapshot_history_days.max(args.snapshot_days.max(31)),
        now: clock.now(),
    };
    let summary = crate::housekeeping::housekeep(&warehouse, &pool, retention).await?;
    println!("{summary} elapsed_ms={}", started.elapsed().as_millis());
    Ok(RowCounts::new(
        summary.notifications_archived,
        summary.notifications_archived,
    ))
}
