//! The contract of the PostgreSQL serving store, in one place: the batch (`publish`,
//! `notify`, `sips export`) writes and listens to what the API (`api`) reads and listens to.
//! Both depend on this crate, not on each other.
//!
//! The SQL side of the contract (the `graph_type` CHECK, the channel a trigger notifies)
//! lives in `sql/migrations`; `jobs/tests/jobs/publish.rs` checks those against the constants
//! here on a real PostgreSQL.

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
/// `portfolio_graphs`, the OpenAPI enum and the path segment.
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
