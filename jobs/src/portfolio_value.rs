//! `sipline portfolio value`: every user's portfolio as of a date, per bucket of users.
//!
//! Daily mode reads every executed purchase up to the date (XIRR needs each cash flow, and
//! the line and bar charts are built from the same rows), values holdings at the latest NAV on
//! or before the date, and writes `portfolio_charts`, `portfolio_lines` and last
//! `portfolio_snapshots` — whose `_SUCCESS` marks the bucket's valuation as done.
//!
//! Hourly mode skips XIRR and the history charts, so it reads only the latest month-end
//! `holdings` checkpoint plus the purchases since, and replaces the date's `portfolio_hourly`.
//!
//! Like the execution batch, each bucket's output depends only on that bucket's inputs, so N
//! shards write exactly the files one run would.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use anyhow::Context;
use chrono::NaiveDate;
use futures::{StreamExt, TryStreamExt};
use pipeline::calendar::BusinessCalendar;
use pipeline::holdings::add_holdings;
use pipeline::money::Paise;
use pipeline::nav::SchemeRow;
use pipeline::sip::NavLookup;
use pipeline::valuation::{
    holdings_from_purchases, value_portfolios, SchemeInfo, Valuation, ValuationInputs,
    ValuationMode,
};
use warehouse::{Commit, Part, Table, Warehouse};

use crate::plumbing::exit::JobFailure;
use crate::shard::Shard;
use crate::totals::{add_i64, add_u64, TotalOverflow};

#[derive(Debug, Clone, Copy)]
pub struct ValueOptions {
    pub shard: Shard,
    pub mode: ValuationMode,
    /// The hour of an hourly run (0–23), stored with its rows.
    pub hour: u32,
    pub parallelism: usize,
}

/// Totals of a run: the summary line an operator reads.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ValueSummary {
    pub date: Option<NaiveDate>,
    pub buckets: usize,
    pub users: u64,
    pub holders: u64,
    pub lines: u64,
    pub purchases: u64,
    /// Months of purchases read from their compacted `purchases` file, and daily
    /// `investments` dates read file by file (daily mode).
    pub compacted_months: u64,
    pub daily_files: u64,
    pub invested: i64,
    pub current_value: i64,
    /// Finite XIRRs of users with holdings (daily mode), for the median.
    pub xirrs: Vec<f64>,
    pub no_xirr: u64,
}

impl ValueSummary {
    fn add(&mut self, other: ValueSummary) -> Result<(), TotalOverflow> {
        self.buckets += other.buckets;
        add_u64(&mut self.users, other.users, "users")?;
        add_u64(&mut self.holders, other.holders, "holders")?;
        add_u64(&mut self.lines, other.lines, "lines")?;
        add_u64(&mut self.purchases, other.purchases, "purchases")?;
        add_u64(
            &mut self.compacted_months,
            other.compacted_months,
            "compacted months",
        )?;
        add_u64(&mut self.daily_files, other.daily_files, "daily files")?;
        add_i64(&mut self.invested, other.invested, "invested")?;
        add_i64(&mut self.current_value, other.current_value, "value")?;
        self.xirrs.extend(other.xirrs);
        add_u64(&mut self.no_xirr, other.no_xirr, "no-XIRR")?;
        Ok(())
    }

    /// The median of the finite XIRRs, `None` without any.
    pub fn median_xirr(&self) -> Option<f64> {
        let mut rates = self.xirrs.clone();
        if rates.is_empty() {
            return None;
        }
        rates.sort_by(f64::total_cmp);
        let mid = rates.len() / 2;
        Some(if rates.len() % 2 == 0 {
            (rates[mid - 1] + rates[mid]) / 2.0
        } else {
            rates[mid]
        })
    }
}

impl fmt::Display for ValueSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let date = self.date.map(|d| d.to_string()).unwrap_or_default();
        write!(
            f,
            "portfolio value ok: date={date} buckets={} users={} holders={} lines={} purchases_read={} compacted_months_read={} daily_files_read={} invested={} aum={}",
            self.buckets,
            self.users,
            self.holders,
            self.lines,
            self.purchases,
            self.compacted_months,
            self.daily_files,
            Paise(self.invested),
            Paise(self.current_value),
        )?;
        match self.median_xirr() {
            Some(rate) => write!(f, " median_xirr={:.2}%", rate * 100.0)?,
            None => write!(f, " median_xirr=none")?,
        }
        write!(f, " no_xirr={}", self.no_xirr)
    }
}

/// What a date's valuation shares across buckets.
struct RunContext {
    date: NaiveDate,
    options: ValueOptions,
    /// Dates of `investments` up to the valuation date, ascending.
    investment_dates: Vec<NaiveDate>,
    holding_dates: Vec<NaiveDate>,
    /// Dates of compacted `purchases` months (daily mode reads them instead of their days).
    purchase_dates: Vec<NaiveDate>,
    /// The execution run the valuation must come after: the date's, or on a weekend or
    /// holiday the last business day's.
    execution_date: NaiveDate,
    navs: NavLookup,
    schemes: HashMap<i64, SchemeInfo>,
}

async fn run_context(
    warehouse: &Warehouse,
    calendar: &BusinessCalendar,
    date: NaiveDate,
    options: ValueOptions,
) -> anyhow::Result<RunContext> {
    let schemes = warehouse
        .read_rows::<SchemeRow>(Part::WHOLE)
        .await?
        .ok_or_else(|| JobFailure::MissingUpstream("no `schemes` table: ingest NAVs first".into()))?
        .into_iter()
        .map(|row| {
            (
                row.scheme.scheme_code,
                SchemeInfo {
                    name: row.scheme.scheme_name.into(),
                    category: row.scheme.category.map(Into::into),
                    fund_house: row.scheme.fund_house.map(Into::into),
                },
            )
        })
        .collect();
    let investment_dates: Vec<NaiveDate> = warehouse
        .dates(Table::Investments)
        .await?
        .into_iter()
        .filter(|d| *d <= date)
        .collect();
    Ok(RunContext {
        date,
        options,
        investment_dates,
        holding_dates: warehouse.dates(Table::Holdings).await?,
        purchase_dates: warehouse.dates(Table::Purchases).await?,
        execution_date: last_business_day(calendar, date),
        // Every NAV up to the date: the latest per scheme values holdings, the month-end
        // ones value the line chart's history. A year of 8,500 schemes is ~2M small rows.
        navs: warehouse.nav_lookup(NaiveDate::MIN, date).await?,
        schemes,
    })
}

/// `date` if it is a business day, else the business day before it.
fn last_business_day(calendar: &BusinessCalendar, date: NaiveDate) -> NaiveDate {
    let mut day = date;
    // A holiday list never closes the market for a month; the bound keeps a bad list from
    // looping.
    for _ in 0..31 {
        if calendar.is_business_day(day) {
            return day;
        }
        match day.pred_opt() {
            Some(previous) => day = previous,
            None => break,
        }
    }
    date
}

async fn value_bucket(
    warehouse: &Warehouse,
    ctx: &Arc<RunContext>,
    bucket: u32,
) -> anyhow::Result<ValueSummary> {
    let date = ctx.date;
    let part = Part::dated_bucket(date, bucket);
    let execution = Part::dated_bucket(ctx.execution_date, bucket);
    if !warehouse
        .is_published(Table::Investments, execution)
        .await?
    {
        return Err(JobFailure::MissingUpstream(format!(
            "`sip execute --date {}` has not published bucket {bucket}: value after it",
            ctx.execution_date
        ))
        .into());
    }
    let users = warehouse.user_ids(bucket).await?.ok_or_else(|| {
        JobFailure::MissingUpstream(format!("no `users` bucket {bucket}: generate first"))
    })?;

    // Purchases read, for the summary: all of them (daily) or those since the checkpoint.
    let mut recent_count = 0;
    let (mut compacted_months, mut daily_files) = (0, 0);
    // XIRR's extra flows for the orders' sales (daily mode only: hourly has no XIRR).
    let mut adjustments = Vec::new();
    let (holdings, purchases) = match ctx.options.mode {
        ValuationMode::Daily => {
            let read = warehouse
                .purchases_compacted(
                    bucket,
                    &ctx.investment_dates,
                    &ctx.holding_dates,
                    &ctx.purchase_dates,
                )
                .await?;
            compacted_months = read.compacted_months as u64;
            daily_files = read.daily_files as u64;
            let mut purchases = read.rows;
            let orders = warehouse.order_flows(bucket, date).await?;
            if !orders.flows.is_empty() {
                purchases.extend(orders.flows);
                purchases.sort_unstable();
            }
            adjustments = orders.adjustments;
            (holdings_from_purchases(&purchases), purchases)
        }
        ValuationMode::Hourly => {
            // The latest checkpoint on or before the date.
            let (checkpoint, base) = warehouse
                .holdings_checkpoint_before(
                    &ctx.holding_dates,
                    date.succ_opt().unwrap_or(date),
                    bucket,
                )
                .await?;
            let since: Vec<NaiveDate> = ctx
                .investment_dates
                .iter()
                .copied()
                .filter(|d| checkpoint.is_none_or(|c| *d > c))
                .collect();
            let recent = warehouse.purchases(bucket, &since).await?;
            recent_count = recent.len();
            let mut holdings = add_holdings(&base, holdings_from_purchases(&recent));
            // Order legs are not in the checkpoints: all of them, every hour.
            let orders = warehouse.order_flows(bucket, date).await?;
            if !orders.flows.is_empty() {
                holdings = add_holdings(&holdings, holdings_from_purchases(&orders.flows));
            }
            (holdings, Vec::new())
        }
    };

    let ctx_for_compute = Arc::clone(ctx);
    let (valuation, purchases_read) = tokio::task::spawn_blocking(move || {
        let ctx = ctx_for_compute;
        let valuation = value_portfolios(&ValuationInputs {
            as_of: ctx.date,
            mode: ctx.options.mode,
            users: &users,
            holdings: &holdings,
            purchases: &purchases,
            cash_adjustments: &adjustments,
            navs: &ctx.navs,
            schemes: &ctx.schemes,
        });
        (valuation, purchases.len() + recent_count)
    })
    .await
    .context("valuation task panicked")?;
    let valuation = valuation.with_context(|| format!("valuing bucket {bucket} as of {date}"))?;

    let mut summary = summarise(&valuation, purchases_read as u64)?;
    summary.compacted_months = compacted_months;
    summary.daily_files = daily_files;
    match ctx.options.mode {
        ValuationMode::Daily => {
            let mut commit = Commit::default();
            commit
                .stage_rows(part, &valuation.charts)?
                .stage_rows(part, &valuation.lines)?
                // Last: its marker says the bucket's valuation for the date is complete.
                .stage_rows(part, &valuation.snapshots)?;
            warehouse.commit(commit).await?;
        }
        ValuationMode::Hourly => {
            warehouse
                .write_hourly_snapshots(part, ctx.options.hour, &valuation.snapshots)
                .await?;
        }
    }
    Ok(summary)
}

fn summarise(valuation: &Valuation, purchases: u64) -> Result<ValueSummary, TotalOverflow> {
    let mut summary = ValueSummary {
        buckets: 1,
        users: valuation.snapshots.len() as u64,
        lines: valuation.lines.len() as u64,
        purchases,
        ..ValueSummary::default()
    };
    for s in &valuation.snapshots {
        add_i64(&mut summary.invested, s.invested.0, "invested")?;
        add_i64(&mut summary.current_value, s.current_value.0, "value")?;
        if s.schemes > 0 {
            summary.holders += 1;
            match s.xirr {
                Some(rate) if rate.is_finite() => summary.xirrs.push(rate),
                Some(_) => summary.no_xirr += 1,
                None => {}
            }
        }
    }
    Ok(summary)
}

/// One date's valuation over the shard's buckets.
pub async fn value(
    warehouse: &Warehouse,
    calendar: &BusinessCalendar,
    date: NaiveDate,
    options: ValueOptions,
) -> anyhow::Result<ValueSummary> {
    let ctx = Arc::new(run_context(warehouse, calendar, date, options).await?);
    let buckets: Vec<u32> = options.shard.buckets().collect();
    let progress = crate::plumbing::progress::Progress::new("buckets", buckets.len() as u64);
    let summaries: Vec<ValueSummary> = futures::stream::iter(buckets)
        .map(|bucket| {
            let (warehouse, ctx) = (warehouse.clone(), Arc::clone(&ctx));
            tokio::spawn(async move { value_bucket(&warehouse, &ctx, bucket).await })
        })
        .buffer_unordered(options.parallelism.max(1))
        .map(|joined| {
            progress.add(1);
            joined.context("valuation task panicked")?
        })
        .try_collect()
        .await?;
    progress.finish();
    let mut total = ValueSummary {
        date: Some(date),
        ..ValueSummary::default()
    };
    for s in summaries {
        total.add(s)?;
    }
    Ok(total)
}
