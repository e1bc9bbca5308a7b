//! A user's portfolio (summary and lines of the latest published date, and the newest intraday
//! valuation after it; before the first, an empty portfolio with what is pending) and charts
//! (empty series before there is anything to draw), composed
//! from the served lines, month ends and snapshot (`serving::GraphType::statement`), both
//! cached until the next publish.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::NaiveDate;
use serde::Serialize;
use serde_json::value::RawValue;
use serving::GraphType;

use super::extract::{ApiPath, Authed, UserRef};
use super::sips::upcoming_instalment;
use super::sips::UpcomingInstalment;
use super::{json_body, json_value, timed};
use crate::problem::Problem;
use crate::Shared;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/users/{user_id}/portfolio", get(portfolio))
        .route("/users/{user_id}/charts/{graph_type}", get(chart))
}

/// One statement, so the summary and the lines come from the same published date.
const PORTFOLIO: &str =
    "SELECT p.user_id, p.as_of, p.invested::text AS invested, p.current_value::text AS current_value, \
            p.gain::text AS gain, p.abs_return_pct::text AS abs_return_pct, \
            CASE WHEN p.xirr = 'NaN' THEN NULL ELSE p.xirr END AS xirr, p.schemes, p.nav_date, \
            coalesce((SELECT json_agg(json_build_object( \
                'scheme_code', l.scheme_code, 'scheme_name', s.scheme_name, 'units', l.units::text, \
                'invested', l.invested::text, 'nav', sipline_nav_text(l.nav), 'nav_date', l.nav_date, \
                'current_value', l.current_value::text, 'weight_pct', l.weight_pct::text, \
                'xirr', l.xirr, 'day_change', l.day_change::text) \
                ORDER BY l.current_value DESC, l.scheme_code) \
              FROM portfolio_lines l LEFT JOIN schemes s USING (scheme_code) \
              WHERE l.as_of = p.as_of AND l.user_id = p.user_id), '[]')::text AS lines, \
            (SELECT json_build_object('as_of', h.as_of, 'hour', h.hour, 'valued_at', h.published_at, \
                'invested', (CASE WHEN i.user_id IS NULL THEN p.invested ELSE i.invested END)::text, \
                'current_value', (CASE WHEN i.user_id IS NULL THEN p.current_value ELSE i.current_value END)::text, \
                'gain', (CASE WHEN i.user_id IS NULL THEN p.gain ELSE i.gain END)::text, \
                'abs_return_pct', (CASE WHEN i.user_id IS NULL THEN p.abs_return_pct ELSE i.abs_return_pct END)::text, \
                'schemes', CASE WHEN i.user_id IS NULL THEN p.schemes ELSE i.schemes END, \
                'nav_date', CASE WHEN i.user_id IS NULL THEN p.nav_date ELSE i.nav_date END) \
              FROM (SELECT as_of, hour, published_at FROM intraday_publications \
                    WHERE as_of >= p.as_of ORDER BY as_of DESC, hour DESC LIMIT 1) h \
              LEFT JOIN LATERAL (SELECT * FROM portfolio_intraday i \
                    WHERE i.user_id = p.user_id AND i.as_of = h.as_of ORDER BY i.hour DESC LIMIT 1) i ON true \
            )::text AS intraday \
     FROM portfolio_latest p WHERE p.user_id = $1";

/// The latest published portfolio: money as exact decimal strings, XIRR a fraction (`null`
/// when it cannot be computed), lines by value, largest first.
#[derive(sqlx::FromRow, Serialize)]
struct Portfolio {
    user_id: i64,
    as_of: NaiveDate,
    invested: String,
    current_value: String,
    gain: String,
    abs_return_pct: Option<String>,
    xirr: Option<f64>,
    schemes: i32,
    nav_date: Option<NaiveDate>,
    /// Already JSON, built by PostgreSQL: passed through, not parsed and re-encoded.
    #[sqlx(try_from = "String")]
    lines: Lines,
    /// The newest valuation, when `publish --hourly` published one after this date's: its
    /// time (`valued_at`, the hour's publication) and the user's numbers then (the daily ones
    /// where the hour did not change them). No XIRR or lines: those are daily figures. `null`
    /// when the daily date is the newest.
    #[sqlx(try_from = "Option<String>")]
    intraday: Intraday,
}

struct Intraday(Option<Box<RawValue>>);

impl TryFrom<Option<String>> for Intraday {
    type Error = serde_json::Error;
    fn try_from(text: Option<String>) -> Result<Self, Self::Error> {
        text.map(RawValue::from_string).transpose().map(Intraday)
    }
}

impl Serialize for Intraday {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

struct Lines(Box<RawValue>);

impl TryFrom<String> for Lines {
    type Error = serde_json::Error;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        RawValue::from_string(text).map(Lines)
    }
}

impl Serialize for Lines {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

async fn portfolio(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath(user): ApiPath<UserRef>,
) -> Result<Response, Problem> {
    let user_id = authed.reach(user, false)?;
    let load = async {
        let portfolio: Option<Portfolio> = timed(
            &state,
            state.read_published(Some(user_id), |pool| {
                sqlx::query_as(PORTFOLIO).bind(user_id).fetch_optional(pool)
            }),
        )
        .await?;
        let Some(portfolio) = portfolio else {
            return Ok(None);
        };
        Ok(Some(Bytes::from(serde_json::to_vec(&portfolio).map_err(
            |e| {
                tracing::error!(error = %e, "portfolio not serialisable");
                Problem::internal()
            },
        )?)))
    };
    let body = state.caches.portfolio.get_or_load(user_id, load).await?;
    match body {
        Some(body) => Ok(json_body(body)),
        // Read live, not cached: what is pending changes with every SIP or order the person
        // makes before their first valuation is published.
        None => Ok(json_value(&empty_portfolio(&state, user_id).await?)),
    }
}

/// What a person with nothing valued yet sees: the portfolio's shape with zeros and no
/// lines, and what is on its way (`pending`).
#[derive(Serialize)]
struct EmptyPortfolio {
    user_id: i64,
    as_of: Option<NaiveDate>,
    invested: &'static str,
    current_value: &'static str,
    gain: &'static str,
    abs_return_pct: Option<String>,
    xirr: Option<f64>,
    schemes: i32,
    nav_date: Option<NaiveDate>,
    lines: [(); 0],
    intraday: Option<()>,
    pending: Pending,
}

/// What will show in the portfolio once the batch runs.
#[derive(Serialize)]
struct Pending {
    /// The first instalment any SIP settles next (null: no SIP falls due).
    next_instalment: Option<UpcomingInstalment>,
    /// SIPs that may still fall due (not cancelled).
    sips: usize,
    /// Orders placed and not yet executed.
    orders_received: i64,
}

const ORDERS_RECEIVED: &str =
    "SELECT count(*) FROM orders WHERE user_id = $1 AND status = 'received'";

async fn empty_portfolio(state: &Shared, user_id: i64) -> Result<EmptyPortfolio, Problem> {
    let (next_instalment, sips) = upcoming_instalment(state, user_id).await?;
    let orders_received: i64 = timed(
        state,
        // The person's own orders: the primary, like every list they write to.
        sqlx::query_scalar(ORDERS_RECEIVED)
            .bind(user_id)
            .fetch_one(&state.pool),
    )
    .await?;
    Ok(EmptyPortfolio {
        user_id,
        as_of: None,
        invested: "0.00",
        current_value: "0.00",
        gain: "0.00",
        abs_return_pct: None,
        xirr: None,
        schemes: 0,
        nav_date: None,
        lines: [],
        intraday: None,
        pending: Pending {
            next_instalment,
            sips,
            orders_received,
        },
    })
}

async fn chart(
    State(state): State<Shared>,
    authed: Authed,
    ApiPath((user, graph_type)): ApiPath<(UserRef, String)>,
) -> Result<Response, Problem> {
    let Some(graph_type) = GraphType::parse(&graph_type) else {
        return Err(Problem::bad_request(format!(
            "chart type must be {}",
            GraphType::listed()
        )));
    };
    let user_id = authed.reach(user, false)?;
    let load = async {
        let config: Option<String> = timed(
            &state,
            state.read_published(Some(user_id), |pool| {
                sqlx::query_scalar(graph_type.statement())
                    .bind(user_id)
                    .fetch_optional(pool)
            }),
        )
        .await?;
        Ok(config.map(Bytes::from))
    };
    let body = state
        .caches
        .graph
        .get_or_load((user_id, graph_type.as_str()), load)
        .await?;
    // A person with nothing valued yet gets the chart's shape with empty series.
    Ok(json_body(body.unwrap_or_else(|| {
        Bytes::from_static(graph_type.empty().as_bytes())
    })))
}

#[cfg(test)]
mod tests {
    /// `benches/api.sh` compares a cached read with pgbench running the route's statement;
    /// that comparison means something only while the two statements are the same.
    #[test]
    fn the_benchmarks_pgbench_script_runs_the_routes_statement() {
        let script = include_str!("../../../benches/api-portfolio.pgbench");
        let statement: String = script
            .lines()
            .filter(|line| !line.starts_with("--") && !line.starts_with('\\'))
            .collect::<Vec<_>>()
            .join(" ")
            .replace(":user_id;", "$1");
        let words = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(words(&statement), words(super::PORTFOLIO));
    }
}
