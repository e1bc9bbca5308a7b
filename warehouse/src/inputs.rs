//! What more than one job reads: the NAVs of a date range, the latest holdings checkpoint, the
//! mandate snapshot a run uses. They live here, not in the job that first needed them, so no
//! job imports another.

use chrono::NaiveDate;
use pipeline::holdings::Holding;
use pipeline::nav::NavRow;
use pipeline::schema::{purchases_from_investments_batch, user_ids_from_batch};
use pipeline::sip::NavLookup;
use pipeline::valuation::Purchase;

use crate::{Part, Table, Warehouse, WarehouseError};

impl Warehouse {
    /// The NAVs published on the dates in `[from, to]`.
    pub async fn nav_lookup(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<NavLookup, WarehouseError> {
        let mut lookup = NavLookup::default();
        let dates = self.dates(Table::Navs).await?;
        for date in dates.into_iter().filter(|d| *d >= from && *d <= to) {
            for row in self
                .read_rows::<NavRow>(Part::date(date))
                .await?
                .unwrap_or_default()
            {
                lookup.insert(row.scheme_code, date, row.nav);
            }
        }
        lookup.finish();
        Ok(lookup)
    }

    /// The bucket's latest `holdings` checkpoint dated before `before` (of `dates`, the
    /// table's dates), with its date; none yet is an empty checkpoint.
    pub async fn holdings_checkpoint_before(
        &self,
        dates: &[NaiveDate],
        before: NaiveDate,
        bucket: u32,
    ) -> Result<(Option<NaiveDate>, Vec<Holding>), WarehouseError> {
        let Some(as_of) = self
            .latest_published_before(Table::Holdings, dates, before, bucket)
            .await?
        else {
            return Ok((None, Vec::new()));
        };
        let rows = self
            .read_rows::<Holding>(Part::dated_bucket(as_of, bucket))
            .await?
            .unwrap_or_default();
        Ok((Some(as_of), rows))
    }

    /// The date of the `sips` snapshot a run on `date` uses: the latest on or before it.
    pub async fn sips_snapshot_on_or_before(
        &self,
        date: NaiveDate,
    ) -> Result<Option<NaiveDate>, WarehouseError> {
        Ok(self
            .dates(Table::Sips)
            .await?
            .into_iter()
            .filter(|d| *d <= date)
            .max())
    }

    /// The user ids of a `users` bucket, or `None` if it was never published.
    pub async fn user_ids(&self, bucket: u32) -> Result<Option<Vec<i64>>, WarehouseError> {
        let part = Part::bucket(bucket);
        let Some(batches) = self.read(Table::Users, part).await? else {
            return Ok(None);
        };
        let mut ids = Vec::new();
        for batch in &batches {
            ids.extend(
                user_ids_from_batch(batch)
                    .map_err(|e| WarehouseError::rows(Table::Users, part, e))?,
            );
        }
        Ok(Some(ids))
    }

    /// The bucket's executed purchases from the `investments` partitions of `dates`, sorted,
    /// decoding only the six columns a purchase is made of.
    pub async fn purchases(
        &self,
        bucket: u32,
        dates: &[NaiveDate],
    ) -> Result<Vec<Purchase>, WarehouseError> {
        let mut out = Vec::new();
        for date in dates {
            let part = Part::dated_bucket(*date, bucket);
            let Some(batches) = self
                .read_columns(Table::Investments, part, &PURCHASE_COLUMNS)
                .await?
            else {
                continue;
            };
            for batch in &batches {
                out.extend(
                    purchases_from_investments_batch(batch)
                        .map_err(|e| WarehouseError::rows(Table::Investments, part, e))?,
                );
            }
        }
        out.sort_unstable();
        Ok(out)
    }
}

/// The `investments` columns a purchase is made of.
const PURCHASE_COLUMNS: [&str; 6] = [
    "user_id",
    "scheme_code",
    "status",
    "nav_date",
    "amount",
    "units",
];
