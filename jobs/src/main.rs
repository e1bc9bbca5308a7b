//! `sipline`: one subcommand per scheduled job. The binary parses arguments, sets up logging,
//! records the run and maps the outcome to an exit code; the jobs are the `jobs` library.

use std::process::ExitCode;

use clap::Parser;
use jobs::cli::{job_run, Cli, LogFormat};
use jobs::commands::run;
use jobs::exit::{self, NotABusinessDay};

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
            let message = jobs::redact::urls(&format!("{error:#}"));
            tracing::error!(error = message, "job failed");
            eprintln!("error: {message}");
            code
        }
    }
}
