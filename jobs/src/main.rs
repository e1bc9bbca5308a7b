//! `sipline`: one subcommand per scheduled job. The binary parses arguments, sets up logging,
//! records the run and maps the outcome to an exit code; the jobs are the `jobs` library.

use std::process::ExitCode;

use clap::Parser;
use jobs::cli::{job_run, Cli, Command, NotifyCommand};
use jobs::commands::run;
use jobs::plumbing::exit::{self, NotABusinessDay};
use tracing::Instrument;

// Valuation and publish allocate and free large per-bucket vectors continuously; glibc's
// allocator returned them to the kernel and faulted fresh zeroed pages back in (11% of a
// 10M-user valuation's profile). mimalloc keeps and reuses them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.check_args {
        // Not the parsed arguments: they hold secrets (the JWT secret, webhook keys, URLs).
        println!("check-args ok");
        return ExitCode::from(exit::SUCCESS);
    }
    // Processes that run until stopped (the API, the notification worker) give freed memory
    // back as usual; a job that runs to completion keeps it (see `jobs::plumbing::memory`).
    if !matches!(
        cli.command,
        Command::Serve(_) | Command::Notify(NotifyCommand::Worker(_))
    ) {
        jobs::plumbing::memory::keep_freed_memory();
    }
    let service = match cli.command {
        Command::Serve(_) => "sipline-api",
        _ => "sipline",
    };
    let job = job_run(&cli.command);
    // The exporter's HTTP client needs no runtime; `init` runs before the runtime starts.
    let telemetry = match jobs::plumbing::telemetry::init(cli.log_format, service) {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    // Error reports (Sentry) when SENTRY_DSN is set; the guard flushes them at the end.
    let reports = match jobs::plumbing::error_reports::init() {
        Ok(reports) => reports,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    if reports.is_some() {
        jobs::plumbing::error_reports::describe_process(
            job.as_ref().map_or(service, |job| job.name()),
            std::env::args().skip(1).collect(),
        );
    }
    let code = run_to_exit(cli, job);
    drop(reports);
    telemetry.shutdown();
    code
}

/// Runs the command inside its job's root span (long-running services have none: each of
/// their requests or passes is its own trace), records the run, and maps the outcome.
fn run_to_exit(cli: Cli, job: Option<jobs::job_runs::JobRun>) -> ExitCode {
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
    let clock = cli.clock();
    if clock.is_shifted() {
        tracing::warn!(now = %clock.now(), "the clock is set by --now, not the wall clock");
    }
    let span = job
        .as_ref()
        .map_or_else(tracing::Span::none, |job| job.span());
    // A report (a panic, the failure below) names the run's trace when spans are exported.
    if let Some(trace_id) = jobs::plumbing::telemetry::trace_id(&span) {
        sentry::configure_scope(|scope| {
            if let Some(trace) = jobs::plumbing::error_reports::trace_context(&trace_id) {
                scope.set_context("trace", trace);
            }
        });
    }
    let result = runtime.block_on(run(cli.command, database_url, clock).instrument(span.clone()));
    span.record(
        "otel.status_code",
        if result.is_ok() { "ok" } else { "error" },
    );
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
            let message = jobs::plumbing::redact::urls(&format!("{error:#}"));
            tracing::error!(error = message, "job failed");
            eprintln!("error: {message}");
            jobs::plumbing::error_reports::report_failed_job(
                exit::classify(&error),
                exit::outcome(&error),
                &message,
            );
            code
        }
    }
}
