//! Typed table access: a row type knows its table and its Arrow conversions, so a job reads
//! and writes `Vec<Row>` without naming a table, a schema or a decoder, and cannot pair a
//! table with the wrong row type.

use crate::schema::{self, SchemaError};
use chrono::NaiveDate;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::error::ArrowError;
use pipeline::holdings::Holding;
use pipeline::nav::{NavRow, SchemeRow};
use pipeline::orders::{OrderOutcome, RealizedGain};
use pipeline::sip::{DebitFailure, Investment, Mandate, SipEvent, SipState};
use pipeline::user::UserRow;
use pipeline::valuation::{ChartPoint, PortfolioLine, PortfolioSnapshot, Purchase};

use crate::{Commit, Part, Table, Warehouse, WarehouseError};

/// A row of one warehouse table, written as a record batch of the table's file schema.
pub trait TableRow: Sized {
    const TABLE: Table;
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError>;
}

/// A row the jobs also read back.
pub trait ReadRow: TableRow {
    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>, SchemaError>;
}

macro_rules! table_row {
    ($row:ty, $table:ident, $to:path) => {
        impl TableRow for $row {
            const TABLE: Table = Table::$table;
            fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
                $to(rows)
            }
        }
    };
    ($row:ty, $table:ident, $to:path, $from:path) => {
        table_row!($row, $table, $to);
        impl ReadRow for $row {
            fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>, SchemaError> {
                $from(batch)
            }
        }
    };
}

table_row!(
    SchemeRow,
    Schemes,
    schema::schemes_to_batch,
    schema::schemes_from_batch
);
table_row!(NavRow, Navs, schema::navs_to_batch, schema::navs_from_batch);
table_row!(UserRow, Users, schema::users_to_batch);
table_row!(
    Mandate,
    Sips,
    schema::sips_to_batch,
    schema::sips_from_batch
);
table_row!(
    DebitFailure,
    DebitFailures,
    schema::debit_failures_to_batch,
    schema::debit_failures_from_batch
);
table_row!(
    Investment,
    Investments,
    schema::investments_to_batch,
    schema::investments_from_batch
);
table_row!(
    SipState,
    SipState,
    schema::sip_state_to_batch,
    schema::sip_state_from_batch
);
table_row!(SipEvent, SipEvents, schema::sip_events_to_batch);
table_row!(
    Holding,
    Holdings,
    schema::holdings_to_batch,
    schema::holdings_from_batch
);
table_row!(
    Purchase,
    Purchases,
    schema::purchases_to_batch,
    schema::purchases_from_batch
);
table_row!(
    PortfolioSnapshot,
    PortfolioSnapshots,
    schema::portfolio_snapshots_to_batch
);
table_row!(
    PortfolioLine,
    PortfolioLines,
    schema::portfolio_lines_to_batch
);
table_row!(
    OrderOutcome,
    Orders,
    schema::orders_to_batch,
    schema::orders_from_batch
);
table_row!(
    RealizedGain,
    RealizedGains,
    schema::realized_gains_to_batch,
    schema::realized_gains_from_batch
);
table_row!(
    ChartPoint,
    PortfolioCharts,
    schema::portfolio_charts_to_batch
);

impl Commit {
    /// Stages `rows` as the new contents of a partition of `R`'s table (see [`Commit::stage`]).
    pub fn stage_rows<R: TableRow>(
        &mut self,
        part: Part,
        rows: &[R],
    ) -> Result<&mut Self, WarehouseError> {
        let batch = R::to_batch(rows).map_err(|e| WarehouseError::rows(R::TABLE, part, e))?;
        Ok(self.stage(R::TABLE, part, &[batch]))
    }
}

impl Warehouse {
    /// Replaces a partition of `R`'s table with `rows` (see [`Warehouse::write`]).
    pub async fn write_rows<R: TableRow>(
        &self,
        part: Part,
        rows: &[R],
    ) -> Result<u64, WarehouseError> {
        let batch = R::to_batch(rows).map_err(|e| WarehouseError::rows(R::TABLE, part, e))?;
        self.write(R::TABLE, part, &[batch]).await
    }

    /// A published partition of `R`'s table as rows, or `None` if it was never published.
    pub async fn read_rows<R: ReadRow>(
        &self,
        part: Part,
    ) -> Result<Option<Vec<R>>, WarehouseError> {
        let Some(batches) = self.read(R::TABLE, part).await? else {
            return Ok(None);
        };
        decode_all(part, &batches).map(Some)
    }

    /// Like [`Warehouse::read_rows`], decoding only the row groups whose statistics for the
    /// `Int32` column `column` pass `keep` (see [`Warehouse::read_pruned`]).
    pub async fn read_rows_pruned<R: ReadRow>(
        &self,
        part: Part,
        column: &str,
        keep: impl Fn(i32, i32) -> bool,
    ) -> Result<Option<Vec<R>>, WarehouseError> {
        let Some(batches) = self.read_pruned(R::TABLE, part, column, keep).await? else {
            return Ok(None);
        };
        decode_all(part, &batches).map(Some)
    }

    /// Every published partition of `parts` of `R`'s table as rows, in the order given;
    /// partitions never published are skipped.
    pub async fn read_rows_of<R: ReadRow>(&self, parts: &[Part]) -> Result<Vec<R>, WarehouseError> {
        let mut rows = Vec::new();
        for part in parts {
            if let Some(read) = self.read_rows::<R>(*part).await? {
                rows.extend(read);
            }
        }
        Ok(rows)
    }

    /// Replaces a partition of `portfolio_hourly` with the hour's snapshots: the one table
    /// whose rows carry a value (the hour) that is not in the row type.
    pub async fn write_hourly_snapshots(
        &self,
        part: Part,
        hour: u32,
        rows: &[PortfolioSnapshot],
    ) -> Result<u64, WarehouseError> {
        let table = Table::PortfolioHourly;
        let batch = schema::portfolio_hourly_to_batch(hour, rows)
            .map_err(|e| WarehouseError::rows(table, part, e))?;
        self.write(table, part, &[batch]).await
    }

    /// The latest of `dates` (the table's dates, ascending) before `date` at which `bucket`'s
    /// partition of `table` is published. Checked per bucket, newest first, so a run touches
    /// one marker per date it skips rather than listing every file.
    pub async fn latest_published_before(
        &self,
        table: Table,
        dates: &[NaiveDate],
        date: NaiveDate,
        bucket: u32,
    ) -> Result<Option<NaiveDate>, WarehouseError> {
        for candidate in dates.iter().rev().filter(|d| **d < date) {
            if self
                .is_published(table, Part::dated_bucket(*candidate, bucket))
                .await?
            {
                return Ok(Some(*candidate));
            }
        }
        Ok(None)
    }

    /// The dates `R`'s table has partitions for, ascending (see [`Warehouse::dates`]).
    pub async fn dates_in<R: TableRow>(&self) -> Result<Vec<NaiveDate>, WarehouseError> {
        self.dates(R::TABLE).await
    }
}

/// `batches` of a partition of `R`'s table as rows; a batch the codec rejects names the
/// table and partition.
pub fn decode_all<R: ReadRow>(
    part: Part,
    batches: &[RecordBatch],
) -> Result<Vec<R>, WarehouseError> {
    let mut rows = Vec::new();
    for batch in batches {
        rows.extend(R::from_batch(batch).map_err(|e| WarehouseError::rows(R::TABLE, part, e))?);
    }
    Ok(rows)
}
