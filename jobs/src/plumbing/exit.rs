//! Exit codes, so a scheduler can tell "fix the input" from "try again later" from "page
//! someone". Airflow retries on any non-zero code; operators read the distinction in logs
//! and alerts.

use std::process::ExitCode;

/// A job's failure as the operator needs to see it.
#[derive(Debug, thiserror::Error)]
pub enum JobFailure {
    /// The input is wrong; re-running will not help until it is fixed.
    #[error("bad input: {0}")]
    BadInput(String),
    /// What the job needs is not there yet (a NAV file not published): retry later.
    #[error("missing upstream: {0}")]
    MissingUpstream(String),
    /// Not one NAV in the file is dated the expected day (its newest are older): AMFI has not
    /// published the day yet, or the day is a market holiday the list does not have. Retry like
    /// a missing upstream; past the night's deadline it is a waiting outcome, not a failure:
    /// the next business day's file settles which (see `BusinessCalendar::observe`).
    #[error("no NAV dated the day yet: {0}")]
    NoNavDatedYet(String),
    /// A date was run after later dates already ran: refused, since it would settle again what
    /// they settled. `--rewind` retires the later dates first.
    #[error("later dates ran: {0}")]
    LaterDatesRan(String),
}

impl JobFailure {
    /// No mandate snapshot to run `date` with: the generator or `sips export` has not run.
    pub fn no_sips_snapshot(date: chrono::NaiveDate) -> Self {
        Self::MissingUpstream(format!(
            "no `sips` snapshot on or before {date} (run `sipline generate` or `sips export`)"
        ))
    }
}

/// `calendar check` on a weekend or holiday: its own exit code, not an error.
#[derive(Debug, thiserror::Error)]
#[error("not a business day")]
pub struct NotABusinessDay;

pub const SUCCESS: u8 = 0;
/// An internal error: a bug, the database or the store unreachable.
pub const INTERNAL: u8 = 1;
pub const BAD_INPUT: u8 = 3;
pub const MISSING_UPSTREAM: u8 = 4;
/// `calendar check` on a weekend or holiday: nothing is wrong, there is nothing to do.
pub const NOT_A_BUSINESS_DAY: u8 = 5;
/// A past date re-run after later dates ran, without `--rewind`: nothing was written.
pub const LATER_DATES_RAN: u8 = 6;
/// `nav ingest --date D`: not one NAV dated D yet (late, or a market holiday): retry; at the
/// deadline, end the night as waiting (the next business day settles it).
pub const NO_NAV_DATED_YET: u8 = 7;

/// The outcome recorded in `job_runs` for a failed run.
pub fn outcome(error: &anyhow::Error) -> &'static str {
    match classify(error) {
        BAD_INPUT => "bad_input",
        MISSING_UPSTREAM => "missing_upstream",
        LATER_DATES_RAN => "later_dates_ran",
        NO_NAV_DATED_YET => "no_nav_dated_yet",
        _ => "failed",
    }
}

/// The exit code for an error, from the first classified cause in its chain.
pub fn code_for(error: &anyhow::Error) -> ExitCode {
    ExitCode::from(classify(error))
}

/// The exit code number for an error (as `code_for` returns it).
pub fn classify(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(failure) = cause.downcast_ref::<JobFailure>() {
            return match failure {
                JobFailure::BadInput(_) => BAD_INPUT,
                JobFailure::MissingUpstream(_) => MISSING_UPSTREAM,
                JobFailure::LaterDatesRan(_) => LATER_DATES_RAN,
                JobFailure::NoNavDatedYet(_) => NO_NAV_DATED_YET,
            };
        }
        if cause.is::<pipeline::nav::NavFileError>()
            || cause.is::<pipeline::debits::DebitReportError>()
            || cause.is::<pipeline::nav::collect::ConflictingNav>()
            || cause.is::<pipeline::nav::collect::CollectError>()
        {
            return BAD_INPUT;
        }
        if let Some(fetch) = cause.downcast_ref::<crate::plumbing::fetch::FetchError>() {
            if fetch.is_not_published() {
                return MISSING_UPSTREAM;
            }
            if fetch.is_bad_input() {
                return BAD_INPUT;
            }
        }
    }
    INTERNAL
}
