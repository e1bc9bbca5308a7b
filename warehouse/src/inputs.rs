//! What more than one job reads: the NAVs of a date range, the latest holdings checkpoint, the
//! mandate snapshot a run uses. They live here, not in the job that first needed them, so no
//! job imports another.

use crate::schema::{purchases_from_investments_batch, user_ids_from_batch};
use chrono::NaiveDate;
use pipeline::holdings::Holding;
use pipeline::nav::NavRow;
use pipeline::sip::NavLookup;
use pipeline::valuation::Purchase;

use crate::{Part, Table, Warehouse, WarehouseError};

/// Executed order legs as valuation counts them (see [`Warehouse::order_flows`]).
#[derive(Debug, Default)]
pub struct OrderFlows {
    /// Purchase rows: units and cost in (buys) or out (sales).
    pub flows: Vec<Purchase>,
    /// XIRR's extra flows: a sale's net proceeds less its cost.
    pub adjustments: Vec<Purchase>,
}

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
        self.read_daily_purchases(bucket, dates, &mut out).await?;
        out.sort_unstable();
        Ok(out)
    }

    /// The executed order legs of `bucket` run on or before `through` (issue 36), as
    /// valuation counts them: a purchase or switch-in adds its units at its debit, a
    /// redemption or switch-out takes its units out at what they were paid (cost and
    /// `Lot::residue`), so holdings and invested (what the units still held were paid) come
    /// out right. Orders are few beside
    /// SIP instalments, so every run reads them all rather than checkpointing them.
    ///
    /// With them, XIRR's adjustments: for each sale, its net proceeds less the cost it took
    /// out (`amount` negated, as a purchase's), so XIRR counts what the person received.
    pub async fn order_flows(
        &self,
        bucket: u32,
        through: NaiveDate,
    ) -> Result<OrderFlows, WarehouseError> {
        let mut flows = Vec::new();
        let mut adjustments = Vec::new();
        for date in self.dates(Table::Orders).await? {
            if date > through {
                break;
            }
            let legs = self
                .read_rows::<pipeline::orders::OrderOutcome>(Part::dated_bucket(date, bucket))
                .await?
                .unwrap_or_default();
            for l in legs.into_iter().filter(|l| l.executed) {
                let sign = if l.leg.buys() { 1 } else { -1 };
                let row = |amount: i64, units: i64| Purchase {
                    user_id: l.user_id,
                    nav_date: l.nav_date,
                    scheme_code: l.scheme_code,
                    amount: pipeline::money::Paise(amount),
                    units: pipeline::money::Units(units),
                };
                flows.push(row(sign * l.cost.0, sign * l.units.0));
                if !l.leg.buys() {
                    adjustments.push(row(-(l.net_amount.0 - l.cost.0), 0));
                }
            }
        }
        flows.sort_unstable();
        adjustments.sort_unstable();
        Ok(OrderFlows { flows, adjustments })
    }

    /// Every executed purchase of `bucket` run on one of `investment_dates` (the valuation's
    /// `investments` dates, ascending), sorted. A month compacted into `purchases` at its
    /// checkpoint comes from that one file; the rest (this month, and months from before
    /// compaction existed) from the daily `investments` files.
    ///
    /// `checkpoints` are the `holdings` dates and `compacted` the `purchases` dates, both
    /// ascending. The compacted partition at `c` holds the runs after the bucket's previous
    /// published checkpoint, up to `c`: what `sip execute` rolled into the checkpoint at `c`.
    pub async fn purchases_compacted(
        &self,
        bucket: u32,
        investment_dates: &[NaiveDate],
        checkpoints: &[NaiveDate],
        compacted: &[NaiveDate],
    ) -> Result<PurchaseRead, WarehouseError> {
        let mut read = PurchaseRead::default();
        let Some(last) = investment_dates.last().copied() else {
            return Ok(read);
        };
        let mut covered: Vec<CheckpointSpan> = Vec::new();
        let mut months: Vec<Vec<Purchase>> = Vec::new();
        for &through in compacted.iter().filter(|c| **c <= last) {
            let part = Part::dated_bucket(through, bucket);
            if !self.is_published(Table::Purchases, part).await? {
                continue;
            }
            let span = self.checkpoint_span(checkpoints, through, bucket).await?;
            months.push(self.read_rows::<Purchase>(part).await?.unwrap_or_default());
            read.compacted_months += 1;
            covered.push(span);
        }
        let daily: Vec<NaiveDate> = investment_dates
            .iter()
            .copied()
            .filter(|d| !covered.iter().any(|span| span.contains(*d)))
            .collect();
        read.daily_files = daily.len();
        let mut recent = Vec::new();
        self.read_daily_purchases(bucket, &daily, &mut recent)
            .await?;
        // One allocation of the final size rather than doubling through ~1.3M rows a bucket.
        read.rows = Vec::with_capacity(months.iter().map(Vec::len).sum::<usize>() + recent.len());
        for month in months {
            read.rows.extend(month);
        }
        read.rows.extend(recent);
        // Compacted months arrive as sorted runs, which a stable sort merges rather than
        // re-sorts; the order is the same total order either way.
        read.rows.sort();
        Ok(read)
    }

    /// The runs the bucket's `holdings` checkpoint at `through` rolled in, and so the runs its
    /// compacted `purchases` hold: those after the previous published checkpoint, up to it.
    pub async fn checkpoint_span(
        &self,
        checkpoints: &[NaiveDate],
        through: NaiveDate,
        bucket: u32,
    ) -> Result<CheckpointSpan, WarehouseError> {
        let after = self
            .latest_published_before(Table::Holdings, checkpoints, through, bucket)
            .await?;
        Ok(CheckpointSpan { after, through })
    }

    async fn read_daily_purchases(
        &self,
        bucket: u32,
        dates: &[NaiveDate],
        out: &mut Vec<Purchase>,
    ) -> Result<(), WarehouseError> {
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
        Ok(())
    }
}

/// Run dates `(after, through]`: what a month-end checkpoint covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointSpan {
    /// The previous checkpoint; none for the first.
    pub after: Option<NaiveDate>,
    pub through: NaiveDate,
}

impl CheckpointSpan {
    pub fn contains(&self, date: NaiveDate) -> bool {
        self.after.is_none_or(|a| date > a) && date <= self.through
    }
}

/// What [`Warehouse::purchases_compacted`] read.
#[derive(Debug, Default)]
pub struct PurchaseRead {
    /// Sorted by (user, NAV date, scheme, amount, units).
    pub rows: Vec<Purchase>,
    pub compacted_months: usize,
    pub daily_files: usize,
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
