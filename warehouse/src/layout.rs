//! Where every table's files live. This is the one place that builds object-store paths, so
//! the layout (Hive-style `column=value` directories, one Parquet file per partition plus a
//! `_SUCCESS` marker) can be read in one screen.

use std::sync::Arc;

use crate::schema;
use chrono::NaiveDate;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use object_store::path::Path;
pub use pipeline::bucket::{bucket_of, BUCKETS};

/// A warehouse table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// The scheme master, replaced as a whole by each NAV ingest.
    Schemes,
    /// One partition per NAV date.
    Navs,
    /// One file per bucket.
    Users,
    /// Mandate snapshots, per `as_of` date and bucket.
    Sips,
    /// The bank's failed-debit report, per run date and bucket.
    DebitFailures,
    /// Instalment attempts, per run date and bucket.
    Investments,
    /// Failure streaks and batch cancellations carried from run to run.
    SipState,
    /// Facts for notifications, per run date and bucket.
    SipEvents,
    /// Month-end checkpoints of units and cost per user and scheme.
    Holdings,
    /// A month's executed (and reversed) instalments, compacted from its daily `investments`
    /// partitions at the month-end checkpoint: what daily valuation reads for past months.
    Purchases,
    /// One row per user per valuation date: invested, value, returns, XIRR.
    PortfolioSnapshots,
    /// The latest intraday valuation of the date (no XIRR), replaced each hour.
    PortfolioHourly,
    /// One row per user and scheme per valuation date.
    PortfolioLines,
    /// The API's chart data, one user's charts contiguous.
    PortfolioCharts,
    /// Notifications the serving store no longer keeps (`sipline housekeeping`), by the day
    /// they were created: the outbox's history, for the data team and for support.
    NotificationsArchive,
    /// Orders executed (or failed) by `orders execute`, one row per leg, per run date and
    /// bucket (issue 36).
    Orders,
    /// The pieces of lots the run's redemptions consumed, with their gains.
    RealizedGains,
}

impl Table {
    pub const ALL: [Table; 17] = [
        Table::Schemes,
        Table::Navs,
        Table::Users,
        Table::Sips,
        Table::DebitFailures,
        Table::Investments,
        Table::SipState,
        Table::SipEvents,
        Table::Holdings,
        Table::Purchases,
        Table::PortfolioSnapshots,
        Table::PortfolioHourly,
        Table::PortfolioLines,
        Table::PortfolioCharts,
        Table::NotificationsArchive,
        Table::Orders,
        Table::RealizedGains,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Table::Schemes => "schemes",
            Table::Navs => "navs",
            Table::Users => "users",
            Table::Sips => "sips",
            Table::DebitFailures => "debit_failures",
            Table::Investments => "investments",
            Table::SipState => "sip_state",
            Table::SipEvents => "sip_events",
            Table::Holdings => "holdings",
            Table::Purchases => "purchases",
            Table::PortfolioSnapshots => "portfolio_snapshots",
            Table::PortfolioHourly => "portfolio_hourly",
            Table::PortfolioLines => "portfolio_lines",
            Table::PortfolioCharts => "portfolio_charts",
            Table::NotificationsArchive => "notifications_archive",
            Table::Orders => "orders",
            Table::RealizedGains => "realized_gains",
        }
    }

    /// The Hive date partition column, if the table is partitioned by date.
    pub const fn partition_column(self) -> Option<&'static str> {
        match self {
            Table::Schemes | Table::Users => None,
            Table::Navs => Some("nav_date"),
            Table::Sips
            | Table::Holdings
            | Table::Purchases
            | Table::PortfolioSnapshots
            | Table::PortfolioHourly
            | Table::PortfolioLines
            | Table::PortfolioCharts => Some("as_of"),
            Table::DebitFailures
            | Table::Investments
            | Table::SipState
            | Table::SipEvents
            | Table::Orders
            | Table::RealizedGains => Some("exec_date"),
            Table::NotificationsArchive => Some("created_on"),
        }
    }

    /// Whether the table is split into `bucket=` directories by user (below the date, if
    /// any), so a shard reads and writes only its own users' files.
    pub const fn is_bucketed(self) -> bool {
        !matches!(
            self,
            Table::Schemes | Table::Navs | Table::NotificationsArchive
        )
    }

    pub const fn partition_type(self) -> DataType {
        DataType::Date32
    }

    /// Rows per Parquet row group. Small for `sips`, which is sorted by `sip_day` so a run
    /// can skip the row groups of days it does not execute; the default elsewhere.
    pub const fn row_group_rows(self) -> usize {
        match self {
            Table::Sips => 8_192,
            _ => 1_048_576,
        }
    }

    /// The columns stored in the Parquet files (partition columns live in the path).
    pub fn file_schema(self) -> SchemaRef {
        match self {
            Table::Schemes => schema::schemes_schema(),
            Table::Navs => schema::navs_file_schema(),
            Table::Users => schema::users_schema(),
            Table::Sips => schema::sips_file_schema(),
            Table::DebitFailures => schema::debit_failures_file_schema(),
            Table::Investments => schema::investments_file_schema(),
            Table::SipState => schema::sip_state_file_schema(),
            Table::SipEvents => schema::sip_events_file_schema(),
            Table::Holdings => schema::holdings_file_schema(),
            Table::Purchases => schema::purchases_file_schema(),
            Table::PortfolioSnapshots => schema::portfolio_snapshots_file_schema(),
            Table::PortfolioHourly => schema::portfolio_hourly_file_schema(),
            Table::PortfolioLines => schema::portfolio_lines_file_schema(),
            Table::PortfolioCharts => schema::portfolio_charts_file_schema(),
            Table::NotificationsArchive => notifications_archive_file_schema(),
            Table::Orders => schema::orders_file_schema(),
            Table::RealizedGains => schema::realized_gains_file_schema(),
        }
    }
}

/// The Hive column of bucketed tables.
pub const BUCKET_COLUMN: &str = "bucket";

/// One partition of a table: its date (for date-partitioned tables) and bucket (for
/// bucketed ones). An unpartitioned, unbucketed table has one partition, `Part::WHOLE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Part {
    pub date: Option<NaiveDate>,
    pub bucket: Option<u32>,
}

impl Part {
    pub const WHOLE: Part = Part {
        date: None,
        bucket: None,
    };

    pub const fn date(date: NaiveDate) -> Self {
        Part {
            date: Some(date),
            bucket: None,
        }
    }

    pub const fn bucket(bucket: u32) -> Self {
        Part {
            date: None,
            bucket: Some(bucket),
        }
    }

    pub const fn dated_bucket(date: NaiveDate, bucket: u32) -> Self {
        Part {
            date: Some(date),
            bucket: Some(bucket),
        }
    }
}

/// The name of the one data file a partition (or an unpartitioned table) holds. Fixed, so a
/// rewrite replaces it in a single atomic put rather than leaving an older file beside it.
pub const DATA_FILE: &str = "part-00000.parquet";

/// Written after the data file: a partition without it is not (yet) published.
pub const SUCCESS_MARKER: &str = "_SUCCESS";

pub const PARQUET_EXTENSION: &str = ".parquet";

/// The value of a partition column in a path: `2024-12-27`.
/// The folder of run manifests, at the warehouse root.
pub const RUNS_DIR: &str = "_runs";

pub fn partition_value(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

pub fn parse_partition_value(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// Paths within a warehouse rooted at `root`.
#[derive(Debug, Clone)]
pub struct Layout {
    root: Path,
}

impl Layout {
    pub fn new(root: Path) -> Self {
        Self { root }
    }

    pub fn table_dir(&self, table: Table) -> Path {
        self.root.clone().join(table.name())
    }

    /// The directory of one partition: `table/<date column>=<date>/bucket=<n>`, with the
    /// levels the table does not have left out.
    pub fn partition_dir(&self, table: Table, part: Part) -> Path {
        let mut dir = self.table_dir(table);
        if let (Some(column), Some(date)) = (table.partition_column(), part.date) {
            dir = dir.join(format!("{column}={}", partition_value(date)));
        }
        if let (true, Some(bucket)) = (table.is_bucketed(), part.bucket) {
            dir = dir.join(format!("{BUCKET_COLUMN}={bucket}"));
        }
        dir
    }

    /// The directory of a date partition of a bucketed table (all its buckets).
    pub fn date_dir(&self, table: Table, date: NaiveDate) -> Path {
        self.partition_dir(table, Part::date(date))
    }

    pub fn data_file(&self, table: Table, part: Part) -> Path {
        self.partition_dir(table, part).join(DATA_FILE)
    }

    /// Where a job run's manifest goes: `_runs/<job>/date=<date>/<shard>.json`, beside the
    /// tables (the leading `_` keeps it out of every table's listing). One file per job, date
    /// and shard: a re-run replaces its predecessor's.
    pub fn run_manifest(&self, job: &str, date: Option<NaiveDate>, shard: &str) -> Path {
        let date = date.map_or_else(|| "none".to_string(), partition_value);
        self.root
            .clone()
            .join(RUNS_DIR)
            .join(job)
            .join(format!("date={date}"))
            .join(format!("{shard}.json"))
    }

    pub fn success_marker(&self, table: Table, part: Part) -> Path {
        self.partition_dir(table, part).join(SUCCESS_MARKER)
    }

    /// The partition a path under the table's directory belongs to, if it is in one of the
    /// table's partitions (date and bucket levels both present where the table has them).
    pub fn part_of(&self, table: Table, path: &Path) -> Option<Part> {
        let table_dir = self.table_dir(table);
        let mut segments = path.prefix_match(&table_dir)?;
        let mut part = Part::WHOLE;
        if let Some(column) = table.partition_column() {
            let segment = segments.next()?;
            let value = segment.as_ref().strip_prefix(column)?.strip_prefix('=')?;
            part.date = Some(parse_partition_value(value)?);
        }
        if table.is_bucketed() {
            let segment = segments.next()?;
            let value = segment
                .as_ref()
                .strip_prefix(BUCKET_COLUMN)?
                .strip_prefix('=')?;
            part.bucket = Some(value.parse().ok()?);
        }
        Some(part)
    }
}

/// `notifications_archive` as stored in each `created_on=` partition: a notification as the
/// outbox held it when it was archived, and its deliveries as JSON (channel, status, attempts,
/// last error, delivered at), since their number varies by person.
pub fn notifications_archive_file_schema() -> SchemaRef {
    let at = |name: &str, nullable: bool| {
        Field::new(
            name,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            nullable,
        )
    };
    Arc::new(Schema::new(vec![
        Field::new("notification_id", DataType::Int64, false),
        Field::new("event_key", DataType::Utf8, false),
        Field::new("user_id", DataType::Int64, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("payload", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        at("created_at", false),
        at("delivered_at", true),
        Field::new("deliveries", DataType::Utf8, false),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_hive_style_date_directories() {
        let layout = Layout::new(Path::from("wh"));
        let date = NaiveDate::from_ymd_opt(2024, 12, 27).unwrap();
        let file = layout.data_file(Table::Navs, Part::date(date));
        assert_eq!(
            file.as_ref(),
            "wh/navs/nav_date=2024-12-27/part-00000.parquet"
        );
        assert_eq!(layout.part_of(Table::Navs, &file), Some(Part::date(date)));
        assert_eq!(
            layout.data_file(Table::Schemes, Part::WHOLE).as_ref(),
            "wh/schemes/part-00000.parquet"
        );
        assert_eq!(
            layout.part_of(Table::Navs, &Path::from("wh/navs/_SUCCESS")),
            None
        );
        let bucketed = layout.data_file(Table::Investments, Part::dated_bucket(date, 7));
        assert_eq!(
            bucketed.as_ref(),
            "wh/investments/exec_date=2024-12-27/bucket=7/part-00000.parquet"
        );
        assert_eq!(
            layout.part_of(Table::Investments, &bucketed),
            Some(Part::dated_bucket(date, 7))
        );
        assert_eq!(
            layout.data_file(Table::Users, Part::bucket(3)).as_ref(),
            "wh/users/bucket=3/part-00000.parquet"
        );
    }
}
