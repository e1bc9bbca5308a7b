//! Error reports to Sentry (issue 40 §4): panics, failed jobs and the API's 5xx answers, with
//! the release, the environment and the trace id, so an operator is told of a failure rather
//! than finding it in a log. Off unless `SENTRY_DSN` is set (an environment variable, not a
//! flag: a DSN holds the project's key, and command lines are shown by `ps` and in reports);
//! `SENTRY_ENVIRONMENT` names the deployment (default `production`).
//!
//! What a report may carry is what a log may: every message and exception text passes through
//! `redact::urls` before it is sent, and a job's arguments through `redact::args`.

use std::borrow::Cow;
use std::sync::Arc;

use sentry::protocol::{Context, Event, TraceContext};

/// Why reporting could not start: the DSN is not one (its text is not repeated: it holds a key).
#[derive(Debug, thiserror::Error)]
#[error("SENTRY_DSN is not a Sentry DSN (https://<key>@<host>/<project>)")]
pub struct BadDsn;

/// Starts reporting when `SENTRY_DSN` is set; the guard flushes what is queued when dropped
/// (up to two seconds), so keep it until the process ends.
pub fn init() -> Result<Option<sentry::ClientInitGuard>, BadDsn> {
    let Some(dsn) = std::env::var("SENTRY_DSN")
        .ok()
        .filter(|dsn| !dsn.trim().is_empty())
    else {
        return Ok(None);
    };
    let dsn: sentry::types::Dsn = dsn.trim().parse().map_err(|_| BadDsn)?;
    let environment = std::env::var("SENTRY_ENVIRONMENT")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "production".to_string());
    let guard = sentry::init(sentry::ClientOptions {
        dsn: Some(dsn),
        release: Some(Cow::Borrowed(concat!(
            "sipline@",
            env!("CARGO_PKG_VERSION")
        ))),
        environment: Some(Cow::Owned(environment)),
        // Neither the host's name nor a user's address is the error tracker's to keep.
        send_default_pii: false,
        server_name: None,
        before_send: Some(Arc::new(|event| Some(redacted(event)))),
        ..Default::default()
    });
    Ok(Some(guard))
}

/// The event with URLs stripped from its message and exception texts (a panic message can
/// quote a URL with its key, as an error can).
fn redacted(mut event: Event<'static>) -> Event<'static> {
    if let Some(message) = event.message.as_mut() {
        *message = super::redact::urls(message);
    }
    for exception in event.exception.values.iter_mut() {
        if let Some(value) = exception.value.as_mut() {
            *value = super::redact::urls(value);
        }
    }
    if let Some(logentry) = event.logentry.as_mut() {
        logentry.message = super::redact::urls(&logentry.message);
    }
    event
}

/// What every report from this process carries: the job (or `serve`) and its arguments,
/// redacted. A no-op when reporting is off.
pub fn describe_process(job: &str, args: Vec<String>) {
    let args = super::redact::args(args);
    sentry::configure_scope(|scope| {
        scope.set_tag("job", job);
        scope.set_extra("args", serde_json::json!(args));
    });
}

/// A trace context for a W3C trace id (32 hex digits, not all zero).
pub fn trace_context(trace_id: &str) -> Option<Context> {
    if trace_id.len() != 32 || trace_id.bytes().all(|b| b == b'0') {
        return None;
    }
    let trace_id = trace_id.parse().ok()?;
    Some(Context::Trace(Box::new(TraceContext {
        trace_id,
        ..Default::default()
    })))
}

/// Reports a job that failed: its exit code and outcome as tags, its error (already
/// redacted) as the message (the scope names the job). Waiting for an upstream (exit 4, a
/// file not there yet; exit 7, no NAV dated the day: retried by the scheduler) is a warning,
/// anything else an error.
pub fn report_failed_job(code: u8, outcome: &str, message: &str) {
    let level = if matches!(
        code,
        super::exit::MISSING_UPSTREAM | super::exit::NO_NAV_DATED_YET
    ) {
        sentry::Level::Warning
    } else {
        sentry::Level::Error
    };
    let mut event = Event {
        level,
        message: Some(format!("job failed (exit {code}, {outcome}): {message}")),
        ..Default::default()
    };
    event.tags.insert("exit_code".into(), code.to_string());
    event.tags.insert("outcome".into(), outcome.into());
    sentry::capture_event(event);
}

/// `sipline report-test`: a test message, then a deliberate panic (the panic integration's
/// path, which only a real panic takes). Refuses when reporting is off: nothing would arrive.
pub fn test_reports() -> anyhow::Result<()> {
    if sentry::Hub::current().client().is_none() {
        return Err(super::exit::JobFailure::BadInput(
            "SENTRY_DSN is not set: no report would be sent".into(),
        )
        .into());
    }
    sentry::capture_message(
        "sipline report-test: error reporting works",
        sentry::Level::Info,
    );
    println!("report-test: a test message sent; now panicking on purpose");
    panic!("sipline report-test: a deliberate panic, to check panics are reported");
}
