//! `sipline sip execute` and `sip backfill`: every SIP instalment due, for each bucket of
//! users the shard owns. A run for date D, per bucket:
//!
//! 1. finds the bucket's previous run (the latest `investments` partition before D); new
//!    instalments are those due after it, up to D, so weekends and holidays are covered;
//! 2. carries that run's pending instalments and `sip_state` (failure streaks,
//!    cancellations) forward;
//! 3. executes against the NAVs published up to D and the bank's failed-debit report;
//! 4. writes `sip_events`, `sip_state`, on the last business day of a month a `holdings`
//!    checkpoint, and last `investments` — whose `_SUCCESS` marks the bucket's run as done.
//!
//! Each bucket's output depends only on that bucket's inputs, so N shards write exactly the
//! files one run would.
//!
//! Dates run in order. Re-running the latest date reproduces it; re-running D after later
//! dates ran would execute D's late instalments a second time (they were settled by the later
//! run), so it is refused (exit 6) unless `--rewind` is given, which first retires every later
//! date's execution and valuation output, newest first, so the scheduler re-runs them in
//! order. Each run also checks that it settles no instalment an earlier run settled
//! ([`pipeline::sip::ExecutionOutput::check_at_most_once`]).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use anyhow::Context;
use chrono::{Datelike, Days, NaiveDate};
use futures::{StreamExt, TryStreamExt};
use pipeline::calendar::BusinessCalendar;
use pipeline::generate::simulated_failures;
use pipeline::holdings::{roll_forward, Holding};
use pipeline::nav::{NavRow, SchemeRow};
use pipeline::sip::{
    execute_instalments, DebitFailure, ExecutionInputs, InstalmentStatus, Investment, Mandate,
    NavLookup, SipEventKind, SipState,
};
use pipeline::valuation::Purchase;
use warehouse::{Commit, Part, Table, Unpublished, Warehouse};

use crate::plumbing::exit::JobFailure;
use crate::shard::Shard;
use crate::totals::{add_i64, add_u64, TotalOverflow};

/// Options of one execution run.
#[derive(Debug, Clone, Copy)]
pub struct ExecuteOptions {
    pub shard: Shard,
    /// Write a simulated bank failure report at this bounce rate before executing (the
    /// generator's stand-in for the real report); 0 reads the report if there is one.
    pub simulate_failures: f64,
    pub seed: u64,
    pub parallelism: usize,
    /// Business days an instalment waits for its applicable NAV before it fails `no_nav`.
    pub no_nav_after: u32,
    /// Retire later dates' outputs instead of refusing to run (see the module docs).
    pub rewind: bool,
}

/// Tables a rewind retires for the dates after the re-run date: execution's outputs (the
/// `investments` marker first, since it is what the next run looks for) and valuation's.
/// `debit_failures` is the bank's input and stays.
const REWOUND_TABLES: [Table; 9] = [
    Table::Investments,
    Table::SipState,
    Table::SipEvents,
    Table::Holdings,
    Table::Purchases,
    Table::PortfolioSnapshots,
    Table::PortfolioLines,
    Table::PortfolioCharts,
    Table::PortfolioHourly,
];

/// Totals of a run, for the summary line and the reconciliation.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExecuteSummary {
    pub date: Option<NaiveDate>,
    pub buckets: usize,
    pub mandates: u64,
    pub executed: u64,
    pub pending: u64,
    pub failed: u64,
    /// Earlier allotments the bank's report returned, reversed in this run.
    pub reversed: u64,
    pub cancelled: u64,
    /// Paise.
    pub executed_amount: i64,
    pub stamp_duty: i64,
    pub holdings_checkpoint: bool,
    /// Partitions a `--rewind` retired.
    pub retired: u64,
}

impl ExecuteSummary {
    fn add(&mut self, other: &ExecuteSummary) -> Result<(), TotalOverflow> {
        self.buckets += other.buckets;
        add_u64(&mut self.mandates, other.mandates, "SIPs read")?;
        add_u64(&mut self.executed, other.executed, "executed")?;
        add_u64(&mut self.pending, other.pending, "pending")?;
        add_u64(&mut self.failed, other.failed, "failed")?;
        add_u64(&mut self.reversed, other.reversed, "reversed")?;
        add_u64(&mut self.cancelled, other.cancelled, "cancelled")?;
        add_i64(
            &mut self.executed_amount,
            other.executed_amount,
            "executed amount",
        )?;
        add_i64(&mut self.stamp_duty, other.stamp_duty, "stamp duty")?;
        self.holdings_checkpoint |= other.holdings_checkpoint;
        add_u64(&mut self.retired, other.retired, "retired partitions")?;
        Ok(())
    }
}

impl fmt::Display for ExecuteSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let date = self.date.map(|d| d.to_string()).unwrap_or_default();
        write!(
            f,
            "sip execute ok: date={date} buckets={} sips_read={} executed={} pending={} failed={} reversed={} cancelled={} amount={} stamp_duty={} holdings_checkpoint={} retired_partitions={}",
            self.buckets,
            self.mandates,
            self.executed,
            self.pending,
            self.failed,
            self.reversed,
            self.cancelled,
            pipeline::money::Paise(self.executed_amount),
            pipeline::money::Paise(self.stamp_duty),
            self.holdings_checkpoint,
            self.retired
        )
    }
}

/// What one date's run shares across buckets.
struct RunContext {
    date: NaiveDate,
    sips_as_of: NaiveDate,
    unit_decimals: Arc<HashMap<i64, i32>>,
    /// Dates with an `investments` / `holdings` directory, ascending. Whether a bucket's
    /// partition is published is checked per bucket, so a listing never walks every file.
    investment_dates: Vec<NaiveDate>,
    holding_dates: Vec<NaiveDate>,
    /// Dates after the run date with any partition of a [`REWOUND_TABLES`] table, by table.
    later_dates: Vec<(Table, Vec<NaiveDate>)>,
    month_end: bool,
    calendar: BusinessCalendar,
}

/// What one date's run read that the next date's run in the same process can take instead of
/// reading it again — a backfill's fixed cost per day was these reads, not the instalments.
/// Under a backfill nothing in the warehouse changes but the run's own outputs, which it
/// holds; a fresh `Reuse` reads everything, as a lone `sip execute` does. The next run gets
/// exactly what it would have read, so a backfill writes the bytes day-by-day runs write.
#[derive(Default)]
pub struct Reuse {
    /// `navs` partitions by date, and their markers' row counts (the observed calendar's
    /// input). Dates a run can no longer need are dropped as the run date advances.
    nav_rows: HashMap<NaiveDate, Arc<Vec<NavRow>>>,
    nav_counts: HashMap<NaiveDate, Option<u64>>,
    /// The last NAV lookup built and the window `[from, to]` it covers.
    lookup: Option<((NaiveDate, NaiveDate), Arc<NavLookup>)>,
    unit_decimals: Option<Arc<HashMap<i64, i32>>>,
    /// Each bucket's pending instalments and `sip_state` after the last run, which is what
    /// the next run would read back from that run's partitions.
    carried: HashMap<u32, Carried>,
}

impl Reuse {
    /// The published rows of the `navs` partition of `day`, from the marker once.
    async fn nav_count(
        &mut self,
        warehouse: &Warehouse,
        day: NaiveDate,
    ) -> anyhow::Result<Option<u64>> {
        if let Some(count) = self.nav_counts.get(&day) {
            return Ok(*count);
        }
        let count = warehouse
            .published_rows(Table::Navs, Part::date(day))
            .await?;
        self.nav_counts.insert(day, count);
        Ok(count)
    }

    /// Every NAV dated in `[from, to]`, as [`Warehouse::nav_lookup`] reads them, each
    /// partition read once per process. When the window only moved forward since the last
    /// call, the last lookup is moved along (older days dropped, new days added) instead of
    /// built again: building it was the one serial step of a backfill's day that grew with
    /// the window (~250,000 NAVs a day for `demo`).
    async fn nav_lookup(
        &mut self,
        warehouse: &Warehouse,
        from: NaiveDate,
        to: NaiveDate,
    ) -> anyhow::Result<Arc<NavLookup>> {
        self.nav_rows.retain(|day, _| *day >= from);
        let moved_along = match self.lookup.as_mut() {
            Some((span, lookup)) if from >= span.0 && to >= span.1 => {
                let after = span.1;
                *span = (from, to);
                let lookup = Arc::make_mut(lookup);
                lookup.retain_from(from);
                Some((after, lookup))
            }
            _ => None,
        };
        let days: Vec<NaiveDate> = warehouse
            .dates(Table::Navs)
            .await?
            .into_iter()
            .filter(|day| *day >= from && *day <= to)
            .collect();
        if let Some((after, lookup)) = moved_along {
            for day in days.into_iter().filter(|day| *day > after) {
                let rows = Self::nav_rows(&mut self.nav_rows, warehouse, day).await?;
                for row in rows.iter() {
                    lookup.push_latest(row.scheme_code, day, row.nav);
                }
            }
        } else {
            let mut lookup = NavLookup::default();
            for day in days {
                let rows = Self::nav_rows(&mut self.nav_rows, warehouse, day).await?;
                for row in rows.iter() {
                    lookup.insert(row.scheme_code, day, row.nav);
                }
            }
            lookup.finish();
            self.lookup = Some(((from, to), Arc::new(lookup)));
        }
        Ok(self
            .lookup
            .as_ref()
            .map(|(_, lookup)| Arc::clone(lookup))
            .unwrap_or_default())
    }

    /// The rows of the `navs` partition of `day`, read once.
    async fn nav_rows(
        cache: &mut HashMap<NaiveDate, Arc<Vec<NavRow>>>,
        warehouse: &Warehouse,
        day: NaiveDate,
    ) -> anyhow::Result<Arc<Vec<NavRow>>> {
        if let Some(rows) = cache.get(&day) {
            return Ok(Arc::clone(rows));
        }
        let rows = Arc::new(
            warehouse
                .read_rows::<NavRow>(Part::date(day))
                .await?
                .unwrap_or_default(),
        );
        cache.insert(day, Arc::clone(&rows));
        Ok(rows)
    }

    async fn unit_decimals(
        &mut self,
        warehouse: &Warehouse,
    ) -> anyhow::Result<Arc<HashMap<i64, i32>>> {
        if let Some(decimals) = &self.unit_decimals {
            return Ok(Arc::clone(decimals));
        }
        let schemes = warehouse
            .read_rows::<SchemeRow>(Part::WHOLE)
            .await?
            .ok_or_else(|| {
                JobFailure::MissingUpstream("no `schemes` table: ingest NAVs first".into())
            })?;
        let decimals: Arc<HashMap<i64, i32>> = Arc::new(
            schemes
                .iter()
                .map(|s| (s.scheme.scheme_code, s.unit_decimals))
                .collect(),
        );
        self.unit_decimals = Some(Arc::clone(&decimals));
        Ok(decimals)
    }
}

async fn run_context(
    warehouse: &Warehouse,
    calendar: &BusinessCalendar,
    date: NaiveDate,
    reuse: &mut Reuse,
) -> anyhow::Result<RunContext> {
    let sips_as_of = warehouse
        .sips_snapshot_on_or_before(date)
        .await?
        .ok_or_else(|| JobFailure::no_sips_snapshot(date))?;
    Ok(RunContext {
        date,
        sips_as_of,
        unit_decimals: reuse.unit_decimals(warehouse).await?,
        investment_dates: warehouse.dates(Table::Investments).await?,
        holding_dates: warehouse.dates(Table::Holdings).await?,
        later_dates: later_dates(warehouse, date).await?,
        month_end: calendar.is_last_business_day_of_month(date),
        calendar: calendar.clone(),
    })
}

async fn later_dates(
    warehouse: &Warehouse,
    date: NaiveDate,
) -> anyhow::Result<Vec<(Table, Vec<NaiveDate>)>> {
    let mut later = Vec::new();
    for table in REWOUND_TABLES {
        let dates: Vec<NaiveDate> = warehouse
            .dates(table)
            .await?
            .into_iter()
            .filter(|d| *d > date)
            .collect();
        later.push((table, dates));
    }
    Ok(later)
}

/// Refuses to run a bucket whose execution already ran for a later date, or with `--rewind`
/// retires every later date's output of the bucket, newest date first: a rewind cut short
/// leaves the bucket's runs a gap-free prefix, and running it again finishes the job.
async fn rewind_or_refuse(
    warehouse: &Warehouse,
    ctx: &RunContext,
    bucket: u32,
    rewind: bool,
) -> anyhow::Result<u64> {
    let later_runs: Vec<NaiveDate> = {
        let mut runs = Vec::new();
        for (table, dates) in &ctx.later_dates {
            if *table != Table::Investments {
                continue;
            }
            for date in dates {
                if warehouse
                    .is_published(*table, Part::dated_bucket(*date, bucket))
                    .await?
                {
                    runs.push(*date);
                }
            }
        }
        runs
    };
    if !rewind {
        if let Some(last) = later_runs.last() {
            return Err(JobFailure::LaterDatesRan(format!(
                "bucket {bucket} already ran for {} later date(s), the last {last}: re-running {} now would settle again what they settled; \
                 pass --rewind to retire their execution and valuation output and re-run them in order",
                later_runs.len(),
                ctx.date
            ))
            .into());
        }
        return Ok(0);
    }
    let mut dates: Vec<NaiveDate> = ctx
        .later_dates
        .iter()
        .flat_map(|(_, dates)| dates.iter().copied())
        .collect();
    dates.sort_unstable();
    dates.dedup();
    let mut retired = 0;
    for date in dates.iter().rev() {
        for (table, table_dates) in &ctx.later_dates {
            if table_dates.binary_search(date).is_ok()
                && warehouse
                    .retire(*table, Part::dated_bucket(*date, bucket))
                    .await?
            {
                retired += 1;
            }
        }
    }
    if retired > 0 {
        tracing::warn!(bucket, from = %ctx.date, retired, "rewound: later dates' outputs retired; re-run them in order");
    }
    Ok(retired)
}

/// Which days of the month (index 1–31) occur in `[from, to]`.
fn sip_days_in(from: NaiveDate, to: NaiveDate) -> [bool; 32] {
    let mut days = [false; 32];
    for day in from.iter_days().take_while(|d| *d <= to).take(31) {
        days[day.day() as usize] = true;
    }
    days
}

/// A bucket's carried state, read before the NAVs so the NAV range is known.
struct Carried {
    bucket: u32,
    retired: u64,
    window_start: NaiveDate,
    pending: Vec<Investment>,
    state: Vec<SipState>,
}

async fn carried(
    warehouse: &Warehouse,
    ctx: &RunContext,
    bucket: u32,
    rewind: bool,
) -> anyhow::Result<Carried> {
    let retired = rewind_or_refuse(warehouse, ctx, bucket, rewind).await?;
    let previous = warehouse
        .latest_published_before(Table::Investments, &ctx.investment_dates, ctx.date, bucket)
        .await?;
    let Some(previous) = previous else {
        return Ok(Carried {
            bucket,
            retired,
            window_start: ctx.date,
            pending: Vec::new(),
            state: Vec::new(),
        });
    };
    let part = Part::dated_bucket(previous, bucket);
    let mut pending = warehouse
        .read_rows::<Investment>(part)
        .await?
        .unwrap_or_default();
    pending.retain(|i| i.status == InstalmentStatus::Pending);
    // Written before `investments`, so a published run always has it.
    let state = warehouse
        .read_rows::<SipState>(part)
        .await?
        .with_context(|| format!("sip_state for {previous} bucket {bucket} is missing though its investments are published"))?;
    Ok(Carried {
        bucket,
        retired,
        window_start: previous + Days::new(1),
        pending,
        state,
    })
}

async fn execute_bucket(
    warehouse: &Warehouse,
    ctx: &RunContext,
    navs: &NavLookup,
    carried: Carried,
    options: ExecuteOptions,
) -> anyhow::Result<(ExecuteSummary, Carried, Unpublished)> {
    let bucket = carried.bucket;
    let date = ctx.date;
    let part = Part::dated_bucket(date, bucket);
    // Only SIPs whose day of the month falls in the window can be due: skip the rest of the
    // (sip_day-sorted) snapshot by row-group statistics.
    let days = sip_days_in(carried.window_start, date);
    let sips_part = Part::dated_bucket(ctx.sips_as_of, bucket);
    let mandates: Vec<Mandate> = warehouse
        .read_rows_pruned(sips_part, "sip_day", |min, max| {
            (min..=max).any(|d| days.get(d as usize).copied().unwrap_or(false))
        })
        .await?
        .ok_or_else(|| {
            JobFailure::MissingUpstream(format!(
                "the `sips` snapshot as of {} has no published bucket {bucket}",
                ctx.sips_as_of
            ))
        })?;

    let mut commit = Commit::default();
    let failures = if options.simulate_failures > 0.0 {
        let due = mandates
            .iter()
            .flat_map(|m| {
                m.due_dates(carried.window_start, date)
                    .into_iter()
                    .map(move |d| (m.sip_id, d))
            })
            .collect::<Vec<_>>();
        let mut report = simulated_failures(options.seed, options.simulate_failures, due);
        report.sort_by_key(|f| (f.sip_id, f.due_date));
        // Published with the run's outputs: a simulated report is made again by a re-run.
        commit.stage_rows(part, &report)?;
        report
    } else {
        warehouse
            .read_rows::<DebitFailure>(part)
            .await?
            .unwrap_or_default()
    };
    let failures: HashSet<(i64, NaiveDate)> =
        failures.iter().map(|f| (f.sip_id, f.due_date)).collect();
    let returned = allotted_and_returned(warehouse, ctx, &carried, &mandates, &failures).await?;

    let inputs = ExecutionInputs {
        run_date: date,
        window_start: carried.window_start,
        mandates: &mandates,
        pending: &carried.pending,
        state: &carried.state,
        failures: &failures,
        returned: &returned,
        navs,
        unit_decimals: &ctx.unit_decimals,
        calendar: &ctx.calendar,
        no_nav_after: options.no_nav_after,
    };
    let out = execute_instalments(&inputs);
    out.check_at_most_once(&inputs)
        .with_context(|| format!("bucket {bucket} on {date}"))?;

    let mut summary = ExecuteSummary {
        buckets: 1,
        retired: carried.retired,
        mandates: mandates.len() as u64,
        ..ExecuteSummary::default()
    };
    for inv in &out.investments {
        match inv.status {
            InstalmentStatus::Executed => {
                summary.executed += 1;
                add_i64(
                    &mut summary.executed_amount,
                    inv.amount.0,
                    "executed amount",
                )?;
                add_i64(&mut summary.stamp_duty, inv.stamp_duty.0, "stamp duty")?;
            }
            InstalmentStatus::Pending => summary.pending += 1,
            InstalmentStatus::Failed => summary.failed += 1,
            InstalmentStatus::Reversed => summary.reversed += 1,
        }
    }
    summary.cancelled = out
        .events
        .iter()
        .filter(|e| e.kind == SipEventKind::Cancelled)
        .count() as u64;

    if ctx.month_end {
        let (holdings, purchases) = month_end_checkpoint(warehouse, ctx, bucket, &out.investments)
            .await
            .with_context(|| format!("bucket {bucket} month-end checkpoint on {date}"))?;
        // Both before `investments`, whose marker says the run is complete: a run that dies
        // here is re-run whole, and valuation reads a compacted month only once published.
        commit.stage_rows(part, &purchases)?;
        commit.stage_rows(part, &holdings)?;
        summary.holdings_checkpoint = true;
    }
    commit.stage_rows(part, &out.events)?;
    commit.stage_rows(part, &out.state)?;
    // Last: its marker is what the next run looks for.
    commit.stage_rows(part, &out.investments)?;
    // Published with every other bucket's at the end of the run: one flush for them all.
    let unpublished = warehouse.write_unpublished(commit).await?;
    let next = Carried {
        bucket,
        retired: 0,
        window_start: date + Days::new(1),
        pending: out
            .investments
            .iter()
            .filter(|i| i.status == InstalmentStatus::Pending)
            .cloned()
            .collect(),
        state: out.state,
    };
    Ok((summary, next, unpublished))
}

/// The earlier runs' allotments that the bank's report for this run returns: every reported
/// debit that is neither due in this run nor carried as pending refers to an instalment an
/// earlier run settled. Those runs' partitions (from the earliest such due date on) are read
/// only when the report has one, which is rare; an allotment already reversed, or an
/// instalment that had failed, is left alone, so a return reported twice reverses once.
async fn allotted_and_returned(
    warehouse: &Warehouse,
    ctx: &RunContext,
    carried: &Carried,
    mandates: &[pipeline::sip::Mandate],
    failures: &HashSet<(i64, NaiveDate)>,
) -> anyhow::Result<Vec<Investment>> {
    let mut settled_before: HashSet<(i64, NaiveDate)> = failures.clone();
    for p in &carried.pending {
        settled_before.remove(&(p.sip_id, p.due_date));
    }
    for m in mandates {
        for due in m.due_dates(carried.window_start, ctx.date) {
            settled_before.remove(&(m.sip_id, due));
        }
    }
    let Some(earliest) = settled_before.iter().map(|(_, due)| *due).min() else {
        return Ok(Vec::new());
    };
    let mut allotted: HashMap<(i64, NaiveDate), Investment> = HashMap::new();
    for run in ctx
        .investment_dates
        .iter()
        .filter(|d| **d >= earliest && **d < ctx.date)
    {
        let part = Part::dated_bucket(*run, carried.bucket);
        for row in warehouse
            .read_rows::<Investment>(part)
            .await?
            .unwrap_or_default()
        {
            let key = (row.sip_id, row.due_date);
            if !settled_before.contains(&key) {
                continue;
            }
            match row.status {
                InstalmentStatus::Executed => {
                    allotted.insert(key, row);
                }
                InstalmentStatus::Reversed | InstalmentStatus::Failed => {
                    allotted.remove(&key);
                }
                InstalmentStatus::Pending => {}
            }
        }
    }
    if allotted.len() < settled_before.len() {
        tracing::warn!(
            bucket = carried.bucket,
            returns = settled_before.len(),
            reversible = allotted.len(),
            "some returned debits match no allotment still held (reversed or failed already)"
        );
    }
    let mut returned: Vec<Investment> = allotted.into_values().collect();
    returned.sort_by_key(|r| (r.sip_id, r.due_date));
    Ok(returned)
}

/// The month-end checkpoint of a bucket: holdings at the run date (the latest checkpoint
/// before it plus every executed instalment since, today's included) and the same
/// instalments compacted as `purchases`, sorted as valuation reads them, so the daily
/// valuation reads one file for the month instead of one per run date.
async fn month_end_checkpoint(
    warehouse: &Warehouse,
    ctx: &RunContext,
    bucket: u32,
    today: &[Investment],
) -> anyhow::Result<(Vec<Holding>, Vec<Purchase>)> {
    let (checkpoint, base) = warehouse
        .holdings_checkpoint_before(&ctx.holding_dates, ctx.date, bucket)
        .await?;
    let mut since = Vec::new();
    for run in ctx
        .investment_dates
        .iter()
        .filter(|d| checkpoint.is_none_or(|c| **d > c) && **d < ctx.date)
    {
        let part = Part::dated_bucket(*run, bucket);
        let mut rows = warehouse
            .read_rows::<Investment>(part)
            .await?
            .unwrap_or_default();
        rows.retain(|i| {
            matches!(
                i.status,
                InstalmentStatus::Executed | InstalmentStatus::Reversed
            )
        });
        since.append(&mut rows);
    }
    let mut purchases = Vec::with_capacity(since.len() + today.len());
    for instalment in since.iter().chain(today) {
        purchases.extend(Purchase::of(instalment)?);
    }
    purchases.sort_unstable();
    Ok((roll_forward(&base, since.iter().chain(today)), purchases))
}

/// One date's run over the shard's buckets.
pub async fn execute(
    warehouse: &Warehouse,
    calendar: &BusinessCalendar,
    date: NaiveDate,
    options: ExecuteOptions,
) -> anyhow::Result<ExecuteSummary> {
    execute_reusing(warehouse, calendar, date, options, &mut Reuse::default()).await
}

/// [`execute`], taking from `reuse` what an earlier date's run in this process read or wrote,
/// and leaving there what the next date's run can take.
async fn execute_reusing(
    warehouse: &Warehouse,
    calendar: &BusinessCalendar,
    date: NaiveDate,
    options: ExecuteOptions,
    reuse: &mut Reuse,
) -> anyhow::Result<ExecuteSummary> {
    let calendar = &observed_calendar(warehouse, calendar, date, reuse).await?;
    if !calendar.is_business_day(date) {
        // Nothing executes on a day without NAVs; what falls due today is picked up by the
        // next business day's run. A scheduler can run the job every day.
        tracing::info!(%date, "not a business day: nothing to execute");
        return Ok(ExecuteSummary {
            date: Some(date),
            ..ExecuteSummary::default()
        });
    }
    let ctx = Arc::new(run_context(warehouse, calendar, date, reuse).await?);
    let buckets: Vec<u32> = options.shard.buckets().collect();
    // A bucket the previous date's run in this process left state for needs no reads: that
    // run was the bucket's latest, and it ran no later date that a rewind would retire.
    let mut known: Vec<Carried> = buckets
        .iter()
        .filter_map(|bucket| reuse.carried.remove(bucket))
        .collect();
    let unknown: Vec<u32> = buckets
        .into_iter()
        .filter(|bucket| !known.iter().any(|c| c.bucket == *bucket))
        .collect();
    let mut carried: Vec<Carried> = futures::stream::iter(unknown)
        .map(|bucket| {
            let (warehouse, ctx) = (warehouse.clone(), Arc::clone(&ctx));
            async move { carried(&warehouse, &ctx, bucket, options.rewind).await }
        })
        .buffered(options.parallelism.max(1) * 2)
        .try_collect()
        .await?;
    carried.append(&mut known);
    carried.sort_unstable_by_key(|c| c.bucket);
    let earliest = carried
        .iter()
        .flat_map(|c| std::iter::once(c.window_start).chain(c.pending.iter().map(|p| p.due_date)))
        .min()
        .unwrap_or(date);
    let navs = reuse.nav_lookup(warehouse, earliest, date).await?;

    let runs: Vec<(ExecuteSummary, Carried, Unpublished)> = futures::stream::iter(carried)
        .map(|carried| {
            let (warehouse, ctx, navs) = (warehouse.clone(), Arc::clone(&ctx), Arc::clone(&navs));
            tokio::spawn(
                async move { execute_bucket(&warehouse, &ctx, &navs, carried, options).await },
            )
        })
        .buffer_unordered(options.parallelism.max(1))
        .map(|joined| joined.context("execution task panicked")?)
        .try_collect()
        .await?;
    let mut total = ExecuteSummary {
        date: Some(date),
        ..ExecuteSummary::default()
    };
    let mut written = Vec::with_capacity(runs.len());
    for (summary, next, unpublished) in runs {
        total.add(&summary)?;
        reuse.carried.insert(next.bucket, next);
        written.push(unpublished);
    }
    // Each bucket's `investments` marker last within its commit: it says the run is done.
    warehouse.publish(written).await?;
    Ok(total)
}

/// Calendar days back from the run date over which holidays are read from the NAV data.
const OBSERVED_DAYS: u64 = 45;

/// The calendar as the NAV data up to `date` settles it ([`BusinessCalendar::observe`]): a
/// weekday with no NAVs between two that have them is a market holiday whether or not the
/// list has it, so what fell due on it is bought at the next business day's NAV instead of
/// waiting for a NAV that cannot exist. Says, for the last month, where list and data differ.
async fn observed_calendar(
    warehouse: &Warehouse,
    listed: &BusinessCalendar,
    date: NaiveDate,
    reuse: &mut Reuse,
) -> anyhow::Result<BusinessCalendar> {
    // Only the weeks a run can still settle: pending instalments fail `no_nav` after 20
    // business days, so older holidays no longer move money.
    let since = date
        .checked_sub_days(Days::new(OBSERVED_DAYS))
        .unwrap_or(date);
    reuse.nav_counts.retain(|day, _| *day >= since);
    let mut nav_dates = std::collections::BTreeMap::new();
    for day in warehouse.dates(Table::Navs).await? {
        if day >= since && day <= date {
            let schemes = reuse.nav_count(warehouse, day).await?.unwrap_or(0);
            nav_dates.insert(day, schemes);
        }
    }
    let observed = listed.observe(&nav_dates);
    let recent = date.checked_sub_days(Days::new(31)).unwrap_or(date);
    for day in observed.unlisted_holidays.iter().filter(|d| **d >= recent) {
        tracing::warn!(%day, "a market holiday by the NAV data (no NAV dated it, NAVs dated after it) that the holiday list does not have: what fell due then is bought at the next business day's NAV");
    }
    for day in observed.priced_holidays.iter().filter(|d| **d >= recent) {
        tracing::warn!(%day, "the holiday list has this day but NAVs are dated it: the list wins (check the list)");
    }
    Ok(observed.calendar)
}

/// Runs the execution for each business day in `[from, to]`, in order, in one process that
/// carries what a day read or wrote to the next ([`Reuse`]). It assumes, as any run does,
/// that no other job writes the warehouse meanwhile: a NAV day re-ingested during a backfill
/// is seen by the days after the backfill, not by the rest of it.
pub async fn backfill(
    warehouse: &Warehouse,
    calendar: &BusinessCalendar,
    from: NaiveDate,
    to: NaiveDate,
    options: ExecuteOptions,
) -> anyhow::Result<(usize, ExecuteSummary)> {
    let days: Vec<NaiveDate> = calendar.business_days(from, to).collect();
    let progress = crate::plumbing::progress::Progress::new("days", days.len() as u64);
    let mut total = ExecuteSummary::default();
    let mut reuse = Reuse::default();
    for (i, day) in days.iter().enumerate() {
        // A rewind applies to the first day; after it no later date is left.
        let options = ExecuteOptions {
            rewind: options.rewind && i == 0,
            ..options
        };
        let summary = execute_reusing(warehouse, calendar, *day, options, &mut reuse)
            .await
            .with_context(|| format!("sip execute for {day}"))?;
        tracing::info!(%summary, "day done");
        total.add(&summary)?;
        progress.add(1);
    }
    progress.finish();
    Ok((days.len(), total))
}

/// What `sip compact` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactSummary {
    pub buckets: usize,
    /// Bucket-months written (a bucket's month already compacted is left alone).
    pub compacted: u64,
    pub purchases: u64,
}

impl fmt::Display for CompactSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sip compact ok: buckets={} compacted_bucket_months={} purchases={}",
            self.buckets, self.compacted, self.purchases
        )
    }
}

/// Compacts the months whose month-end checkpoint (on or before `through`) has no published
/// `purchases` partition: those executed before the table existed, or whose run died writing
/// it. The rows are the month's daily `investments`, exactly what the month-end run writes,
/// so re-running is a no-op and a compacted month is the same bytes either way.
pub async fn compact(
    warehouse: &Warehouse,
    through: NaiveDate,
    shard: Shard,
    parallelism: usize,
) -> anyhow::Result<CompactSummary> {
    let checkpoints: Arc<Vec<NaiveDate>> = Arc::new(
        warehouse
            .dates(Table::Holdings)
            .await?
            .into_iter()
            .filter(|d| *d <= through)
            .collect(),
    );
    let investment_dates = Arc::new(warehouse.dates(Table::Investments).await?);
    let summaries: Vec<CompactSummary> = futures::stream::iter(shard.buckets())
        .map(|bucket| {
            let (warehouse, checkpoints, investment_dates) = (
                warehouse.clone(),
                Arc::clone(&checkpoints),
                Arc::clone(&investment_dates),
            );
            tokio::spawn(async move {
                compact_bucket(&warehouse, &checkpoints, &investment_dates, bucket).await
            })
        })
        .buffer_unordered(parallelism.max(1))
        .map(|joined| joined.context("compaction task panicked")?)
        .try_collect()
        .await?;
    let mut total = CompactSummary::default();
    for s in summaries {
        total.buckets += s.buckets;
        add_u64(&mut total.compacted, s.compacted, "compacted months")?;
        add_u64(&mut total.purchases, s.purchases, "purchases")?;
    }
    Ok(total)
}

async fn compact_bucket(
    warehouse: &Warehouse,
    checkpoints: &[NaiveDate],
    investment_dates: &[NaiveDate],
    bucket: u32,
) -> anyhow::Result<CompactSummary> {
    let mut summary = CompactSummary {
        buckets: 1,
        ..CompactSummary::default()
    };
    for &through in checkpoints {
        let part = Part::dated_bucket(through, bucket);
        if !warehouse.is_published(Table::Holdings, part).await?
            || warehouse.is_published(Table::Purchases, part).await?
        {
            continue;
        }
        let span = warehouse
            .checkpoint_span(checkpoints, through, bucket)
            .await?;
        let runs: Vec<NaiveDate> = investment_dates
            .iter()
            .copied()
            .filter(|d| span.contains(*d))
            .collect();
        let purchases = warehouse.purchases(bucket, &runs).await?;
        warehouse.write_rows(part, &purchases).await?;
        summary.compacted += 1;
        summary.purchases += purchases.len() as u64;
    }
    Ok(summary)
}
