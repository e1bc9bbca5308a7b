//! What a person sees of their money over time: every instalment with its latest status
//! (`GET /v1/users/{id}/investments`, filtered and cursor-paged) and the published daily
//! portfolio snapshots as a series (`GET /v1/users/{id}/portfolio/history`).
//!
//! The serving store's `investments` holds one row per instalment per run while it waits (a
//! pending row means "still pending as of `exec_date`"); an instalment's state is its latest row.

use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::NaiveDate;
use pipeline::sip::InstalmentStatus;
use serde::{Deserialize, Serialize};

use super::extract::{ApiPath, ApiQuery, Authed, UserRef};
use super::{json_value, timed};
use crate::problem::Problem;
use crate::Shared;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/users/{user_id}/investments", get(list_investments))
        .route("/users/{user_id}/portfolio/history", get(portfolio_history))
}

const MAX_PAGE: i64 = 200;
/// A history longer than this many daily points is asked for in parts.
const MAX_HISTORY_DAYS: i64 = 1_100;

/// `$1` user, `$2` SIP, `$3` scheme, `$4`/`$5` due-date range, `$6` status, `$7`/`$8` the
/// cursor (due date, SIP id; newest first), `$9` limit.
const INVESTMENTS: &str = "SELECT * FROM ( \
       SELECT DISTINCT ON (sip_id, due_date) sip_id, due_date, exec_date, scheme_code, status, \
              amount::text AS amount, stamp_duty::text AS stamp_duty, nav_date, \
              sipline_nav_text(nav) AS nav, units::text AS units \
         FROM investments \
        WHERE user_id = $1 AND ($2::bigint IS NULL OR sip_id = $2) \
          AND ($3::bigint IS NULL OR scheme_code = $3) \
          AND ($4::date IS NULL OR due_date >= $4) AND ($5::date IS NULL OR due_date <= $5) \
        ORDER BY sip_id, due_date, exec_date DESC) latest \
     WHERE ($6::text IS NULL OR status = $6) \
       AND ($7::date IS NULL OR (due_date, sip_id) < ($7, $8)) \
     ORDER BY due_date DESC, sip_id DESC LIMIT $9";

const HISTORY: &str =
    "SELECT as_of, invested::text AS invested, current_value::text AS current_value, \
            gain::text AS gain, abs_return_pct::text AS abs_return_pct, \
            CASE WHEN xirr = 'NaN' THEN NULL ELSE xirr END AS xirr \
     FROM portfolio_snapshots WHERE user_id = $1 AND as_of BETWEEN $2 AND $3 \
       AND as_of IN (SELECT as_of FROM publications) ORDER BY as_of";

#[derive(Deserialize)]
struct InvestmentQuery {
    sip_id: Option<i64>,
    scheme_code: Option<i64>,
    status: Option<String>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    limit: Option<i64>,
    /// `YYYY-MM-DD:sip_id` from a previous page's `next_before`.
    before: Option<String>,
}

/// One instalment as of its latest run: money and units as exact decimal strings; NAV, its
/// date and units only once executed.
#[derive(sqlx::FromRow, Serialize)]
struct Instalment {
    sip_id: i64,
    due_date: NaiveDate,
    /// The run that last recorded it.
    exec_date: NaiveDate,
    scheme_code: i64,
    status: String,
    amount: String,
    stamp_duty: String,
    nav_date: Option<NaiveDate>,
    nav: Option<String>,
    units: Option<String>,
}

#[derive(Serialize)]
struct InstalmentPage {
    investments: Vec<Instalment>,
    next_before: Option<String>,
}

fn parse_before(before: Option<&str>) -> Result<(Option<NaiveDate>, i64), Problem> {
    let Some(before) = before else {
        return Ok((None, 0));
    };
    let bad = || Problem::bad_request("before: not a cursor this list returned");
    let (date, sip) = before.split_once(':').ok_or_else(bad)?;
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| bad())?;
    Ok((Some(date), sip.parse().map_err(|_| bad())?))
}

async fn list_investments(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath(user): ApiPath<UserRef>,
    ApiQuery(query): ApiQuery<InvestmentQuery>,
) -> Result<Response, Problem> {
    let user_id = authed.reach(user, false)?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Problem::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    if query
        .status
        .as_deref()
        .is_some_and(|s| InstalmentStatus::parse(s).is_none())
    {
        let names: Vec<&str> = InstalmentStatus::ALL.map(|s| s.as_str()).to_vec();
        return Err(Problem::bad_request(format!(
            "status is one of {}",
            names.join(", ")
        )));
    }
    if let (Some(from), Some(to)) = (query.from, query.to) {
        if to < from {
            return Err(Problem::bad_request("to must not be before from"));
        }
    }
    let (before_date, before_sip) = parse_before(query.before.as_deref())?;
    let investments: Vec<Instalment> = timed(
        &state,
        state.read_published(Some(user_id), |pool| {
            sqlx::query_as(INVESTMENTS)
                .bind(user_id)
                .bind(query.sip_id)
                .bind(query.scheme_code)
                .bind(query.from)
                .bind(query.to)
                .bind(query.status.as_deref())
                .bind(before_date)
                .bind(before_sip)
                .bind(limit)
                .fetch_all(pool)
        }),
    )
    .await?;
    let next_before = (investments.len() as i64 == limit)
        .then(|| investments.last())
        .flatten()
        .map(|last| format!("{}:{}", last.due_date, last.sip_id));
    Ok(json_value(&InstalmentPage {
        investments,
        next_before,
    }))
}

#[derive(Deserialize)]
struct HistoryQuery {
    from: NaiveDate,
    to: NaiveDate,
}

#[derive(sqlx::FromRow, Serialize)]
struct HistoryPoint {
    as_of: NaiveDate,
    invested: String,
    current_value: String,
    gain: String,
    abs_return_pct: Option<String>,
    xirr: Option<f64>,
}

#[derive(Serialize)]
struct History {
    user_id: i64,
    points: Vec<HistoryPoint>,
}

async fn portfolio_history(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath(user): ApiPath<UserRef>,
    ApiQuery(range): ApiQuery<HistoryQuery>,
) -> Result<Response, Problem> {
    let user_id = authed.reach(user, false)?;
    let days = (range.to - range.from).num_days();
    if !(0..=MAX_HISTORY_DAYS).contains(&days) {
        return Err(Problem::bad_request(format!(
            "from..to must be a range of at most {MAX_HISTORY_DAYS} days, from first"
        )));
    }
    let points: Vec<HistoryPoint> = timed(
        &state,
        state.read_published(Some(user_id), |pool| {
            sqlx::query_as(HISTORY)
                .bind(user_id)
                .bind(range.from)
                .bind(range.to)
                .fetch_all(pool)
        }),
    )
    .await?;
    Ok(json_value(&History { user_id, points }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_investments_cursor_is_a_due_date_and_a_sip() {
        assert_eq!(
            parse_before(Some("2025-03-05:17")).ok(),
            Some((NaiveDate::from_ymd_opt(2025, 3, 5), 17))
        );
        assert_eq!(parse_before(None).ok(), Some((None, 0)));
        for bad in ["2025-03-05", "x:1", "2025-13-01:1", "2025-03-05:x"] {
            assert!(parse_before(Some(bad)).is_err(), "{bad}");
        }
    }
}
