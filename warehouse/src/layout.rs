//! Where every table's files live. This is the one place that builds object-store paths, so
//! the layout (Hive-style `column=value` directories, one Parquet file per partition plus a
//! `_SUCCESS` marker) can be read in one screen.

use chrono::NaiveDate;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use object_store::path::Path;
use pipeline::schema;

/// A warehouse table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// The scheme master, replaced as a whole by each NAV ingest.
    Schemes,
    /// One partition per NAV date.
    Navs,
}

impl Table {
    pub const ALL: [Table; 2] = [Table::Schemes, Table::Navs];

    pub const fn name(self) -> &'static str {
        match self {
            Table::Schemes => "schemes",
            Table::Navs => "navs",
        }
    }

    /// The Hive partition column, if the table is partitioned. Always a date.
    pub const fn partition_column(self) -> Option<&'static str> {
        match self {
            Table::Schemes => None,
            Table::Navs => Some("nav_date"),
        }
    }

    pub const fn partition_type(self) -> DataType {
        DataType::Date32
    }

    /// The columns stored in the Parquet files (the partition column lives in the path).
    pub fn file_schema(self) -> SchemaRef {
        match self {
            Table::Schemes => schema::schemes_schema(),
            Table::Navs => schema::navs_file_schema(),
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

    /// The directory of one partition, or the table's own directory when it is unpartitioned.
    pub fn partition_dir(&self, table: Table, partition: Option<NaiveDate>) -> Path {
        match (table.partition_column(), partition) {
            (Some(column), Some(date)) => self
                .table_dir(table)
                .join(format!("{column}={}", partition_value(date))),
            _ => self.table_dir(table),
        }
    }

    pub fn data_file(&self, table: Table, partition: Option<NaiveDate>) -> Path {
        self.partition_dir(table, partition).join(DATA_FILE)
    }

    pub fn success_marker(&self, table: Table, partition: Option<NaiveDate>) -> Path {
        self.partition_dir(table, partition).join(SUCCESS_MARKER)
    }

    /// The partition a path under the table's directory belongs to, if it is in one.
    pub fn partition_of(&self, table: Table, path: &Path) -> Option<NaiveDate> {
        let column = table.partition_column()?;
        let table_dir = self.table_dir(table);
        let mut parts = path.prefix_match(&table_dir)?;
        let segment = parts.next()?;
        let value = segment.as_ref().strip_prefix(column)?.strip_prefix('=')?;
        parse_partition_value(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_hive_style_date_directories() {
        let layout = Layout::new(Path::from("wh"));
        let date = NaiveDate::from_ymd_opt(2024, 12, 27).unwrap();
        let file = layout.data_file(Table::Navs, Some(date));
        assert_eq!(
            file.as_ref(),
            "wh/navs/nav_date=2024-12-27/part-00000.parquet"
        );
        assert_eq!(layout.partition_of(Table::Navs, &file), Some(date));
        assert_eq!(
            layout.data_file(Table::Schemes, None).as_ref(),
            "wh/schemes/part-00000.parquet"
        );
        assert_eq!(
            layout.partition_of(Table::Navs, &Path::from("wh/navs/_SUCCESS")),
            None
        );
    }
}
