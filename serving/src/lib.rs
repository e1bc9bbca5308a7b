//! The contract of the PostgreSQL serving store, in one place: the batch (`publish`,
//! `notify`, `sips export`) writes and listens to what the API (`api`) reads and listens to.
//! Both depend on this crate, not on each other.
//!
//! The SQL side of the contract (the `graph_type` CHECK, the channel a trigger notifies)
//! lives in `sql/migrations`; `jobs/tests/jobs/publish.rs` checks those against the constants
//! here on a real PostgreSQL.

pub mod callbacks;
pub mod clock;
pub mod mandates;
pub mod secret;
pub mod signing;
pub mod unsubscribe;
pub use clock::Clock;

use sqlx::migrate::Migrator;

/// The schema, embedded: `sipline db migrate`, the jobs, and the API at start (`--migrate`).
pub static MIGRATOR: Migrator = sqlx::migrate!("../sql/migrations");

/// The channel `sipline publish` notifies (on commit) when a date is published; the API
/// clears its caches on it.
pub const PUBLISH_CHANNEL: &str = "sipline_publish";

/// The channel the `notifications` insert trigger notifies (migration 0003); the dispatcher's
/// worker wakes on it.
pub const NOTIFICATIONS_CHANNEL: &str = "sipline_notifications";

/// An e-mail address the API stores and the dispatcher sends to: one that can go between
/// `<` and `>` in an SMTP command and a header. Visible ASCII without `<`, `>` (so no CR/LF to
/// inject a command or a header, no space, no bracket to close the path early, no look-alike
/// letters), a local part, an `@`, and a dotted domain that neither starts nor ends with a dot.
/// The API checks addresses with it when they are saved, the dispatcher again when it sends.
pub fn is_mailbox(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    address.len() <= 254
        && address
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>')
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
}

/// A chart the API serves at `/v1/users/{id}/charts/{graph_type}`: the `graph_type` of
/// `visibility_graphs` (the user's chart choices), the OpenAPI enum and the path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GraphType {
    /// Allocation by scheme, category and fund house.
    Pie,
    /// Invested and value at each month end, then today.
    Line,
    /// Invested per month.
    Bar,
}

impl GraphType {
    pub const ALL: [GraphType; 3] = [GraphType::Pie, GraphType::Line, GraphType::Bar];

    pub const fn as_str(self) -> &'static str {
        match self {
            GraphType::Pie => "pie",
            GraphType::Line => "line",
            GraphType::Bar => "bar",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == text)
    }

    /// "pie, line or bar", for error messages and API descriptions.
    pub fn listed() -> String {
        let names: Vec<&str> = Self::ALL.iter().map(|g| g.as_str()).collect();
        match names.split_last() {
            Some((last, [])) => (*last).to_string(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }
}

/// The latest published snapshot of user `$1`: what every chart statement starts from.
macro_rules! latest_snapshot {
    () => {
        "WITH p AS (SELECT as_of, user_id, invested, current_value, schemes \
           FROM portfolio_latest WHERE user_id = $1), \
         points AS ( \
           SELECT m.month_end AS period, m.invested, m.value \
           FROM p JOIN portfolio_month_ends m ON m.user_id = p.user_id AND m.month_end < p.as_of \
           UNION ALL SELECT as_of, invested, current_value FROM p) "
    };
}

/// A user who never invested has no charts: no holdings, nothing invested, no history.
macro_rules! has_charts {
    () => {
        " WHERE p.schemes > 0 OR p.invested <> 0 OR (SELECT count(*) FROM points) > 1"
    };
}

/// Allocation by scheme, category and fund house, from the latest date's lines: slices by
/// value, largest first, ties by name (byte order); names the scheme master lacks are
/// "Unknown".
const PIE: &str = concat!(
    latest_snapshot!(),
    ", lines AS ( \
       SELECT l.invested, l.current_value AS value, \
              coalesce(s.scheme_name, 'Unknown') AS by_scheme, \
              coalesce(s.category, 'Unknown') AS by_category, \
              coalesce(s.fund_house, 'Unknown') AS by_fund_house \
       FROM p JOIN portfolio_lines l ON l.as_of = p.as_of AND l.user_id = p.user_id \
       LEFT JOIN schemes s USING (scheme_code)), \
     slices AS ( \
       SELECT 'by_scheme' AS grouping, by_scheme AS label, sum(invested) AS invested, sum(value) AS value \
         FROM lines GROUP BY by_scheme \
       UNION ALL SELECT 'by_category', by_category, sum(invested), sum(value) FROM lines GROUP BY by_category \
       UNION ALL SELECT 'by_fund_house', by_fund_house, sum(invested), sum(value) FROM lines GROUP BY by_fund_house), \
     series AS ( \
       SELECT grouping, jsonb_build_object( \
         'label', jsonb_agg(label ORDER BY value DESC, label COLLATE \"C\"), \
         'invested', jsonb_agg(invested::text ORDER BY value DESC, label COLLATE \"C\"), \
         'value', jsonb_agg(value::text ORDER BY value DESC, label COLLATE \"C\")) AS series \
       FROM slices GROUP BY grouping) \
     SELECT (jsonb_build_object('as_of', p.as_of, \
         'by_scheme', '{\"label\": [], \"value\": [], \"invested\": []}'::jsonb, \
         'by_category', '{\"label\": [], \"value\": [], \"invested\": []}'::jsonb, \
         'by_fund_house', '{\"label\": [], \"value\": [], \"invested\": []}'::jsonb) \
       || coalesce((SELECT jsonb_object_agg(grouping, series) FROM series), '{}'))::text \
     FROM p",
    has_charts!()
);

/// Invested and value at each month end since the first purchase, then today's.
const LINE: &str = concat!(
    latest_snapshot!(),
    "SELECT jsonb_build_object('as_of', p.as_of, \
         'period', (SELECT jsonb_agg(period ORDER BY period) FROM points), \
         'invested', (SELECT jsonb_agg(invested::text ORDER BY period) FROM points), \
         'value', (SELECT jsonb_agg(value::text ORDER BY period) FROM points))::text \
     FROM p",
    has_charts!()
);

/// Invested per calendar month (months with none left out): the month-end `invested` is
/// cumulative, so a month's amount is its end's less the previous end's, and the running
/// month's is today's less the last month end's.
const BAR: &str = concat!(
    latest_snapshot!(),
    ", months AS ( \
       SELECT date_trunc('month', period)::date AS month, \
              invested - coalesce(lag(invested) OVER (ORDER BY period), 0) AS amount \
       FROM points) \
     SELECT jsonb_build_object('as_of', p.as_of, \
         'period', coalesce((SELECT jsonb_agg(month ORDER BY month) FROM months WHERE amount <> 0), '[]'), \
         'invested', coalesce((SELECT jsonb_agg(amount::text ORDER BY month) FROM months WHERE amount <> 0), '[]'))::text \
     FROM p",
    has_charts!()
);

impl GraphType {
    /// The statement that composes this chart for user `$1` from the latest published date:
    /// one row of JSON text, or none when the user has no charts. Readers and the publish
    /// test share it, so what the test checks is what the API serves.
    pub const fn statement(self) -> &'static str {
        match self {
            GraphType::Pie => PIE,
            GraphType::Line => LINE,
            GraphType::Bar => BAR,
        }
    }

    /// The chart of a person with nothing valued yet: the same shape as [`Self::statement`]'s,
    /// every series empty and `as_of` null, so an app draws an empty chart, not an error.
    pub const fn empty(self) -> &'static str {
        match self {
            GraphType::Pie => {
                r#"{"as_of": null, "by_scheme": {"label": [], "value": [], "invested": []}, "by_category": {"label": [], "value": [], "invested": []}, "by_fund_house": {"label": [], "value": [], "invested": []}}"#
            }
            GraphType::Line => r#"{"as_of": null, "period": [], "invested": [], "value": []}"#,
            GraphType::Bar => r#"{"as_of": null, "period": [], "invested": []}"#,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_types_read_back_and_list() {
        for g in GraphType::ALL {
            assert_eq!(GraphType::parse(g.as_str()), Some(g));
        }
        assert_eq!(GraphType::parse("donut"), None);
        assert_eq!(GraphType::listed(), "pie, line or bar");
    }

    #[test]
    fn the_migrations_are_embedded_in_order() {
        let versions: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
        assert!(versions.len() >= 5, "{versions:?}");
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    }
}
