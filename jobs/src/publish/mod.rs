//! `sipline publish --date D`: one valuation date's warehouse outputs into the PostgreSQL
//! serving store, all at once or not at all.
//!
//! * `investments` and the outbox rows are `COPY`'d inside one transaction (the transaction is
//!   their staging area: nobody sees its rows before it commits).
//! * `portfolio_lines` and `portfolio_snapshots` are built beside their tables on other
//!   connections at the same time — a stand-alone table per date, loaded unindexed and indexed
//!   after the load — and attached as the date's partitions by that same transaction just
//!   before it commits (a month of snapshots made before migration 0017 takes rows instead,
//!   copied in the transaction).
//! * `portfolio_month_ends`, the line and bar charts' history, changes once a month: the first
//!   publish after a month ends builds that month end's partition the same way; on other days
//!   it writes nothing there. The API composes every chart from these narrow tables
//!   (`serving::GraphType::statement`), so no per-user chart document is rewritten every day.
//! * Every load is a binary COPY (`copy_binary`).
//! * The date's valuation supersedes every intraday figure up to it: the switch drops those
//!   partitions of `portfolio_intraday` (`hourly` publishes them, incrementally).
//! * The transaction ends by recording the date in `publications`, which the `*_latest` views
//!   follow, and with a `NOTIFY sipline_publish` that PostgreSQL delivers only on commit.
//!
//! So a reader sees the previous date or this one, never a mix; a failure anywhere rolls the
//! transaction back and leaves the previous date served. Re-running replaces the date's rows.

use std::fmt;

use anyhow::Context;
use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Decimal128Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::{
    concat_batches, lexsort_to_indices, take_record_batch, SortColumn,
};
use datafusion::arrow::datatypes::{DataType, Date32Type, Field, Int64Type, Schema};
use futures::{StreamExt, TryStreamExt};
use pipeline::bucket::bucket_of;
use pipeline::nav::{NavRow, SchemeRow};
use pipeline::sip::{Mandate, SipEventKind};
use pipeline::valuation::ChartKind;
use serving::PUBLISH_CHANNEL;
use sqlx::{Connection, PgConnection, PgPool};
use std::sync::Arc;
use warehouse::BUCKETS;
use warehouse::{decode_all, Part, Table, Warehouse};

use crate::plumbing::copy_binary;
use crate::plumbing::exit::JobFailure;
use crate::plumbing::postgres::{self, BinaryCopy};
use crate::plumbing::progress::Progress;

mod copy;
mod daily;
pub mod hourly;
mod mandates;
mod month_ends;
mod partitions;

use copy::*;
use daily::*;
pub use mandates::load_mandates;
use month_ends::*;
use partitions::*;

// The publish channel (`serving::PUBLISH_CHANNEL`) is notified on commit; the payload is
// `{"as_of": "YYYY-MM-DD"}` (and `"hour": H` from `publish --hourly`).

/// Serialises publishes: two at once would race on the same partitions.
/// One publish at a time; housekeeping takes it too, so no snapshot is dropped under a publish.
pub(crate) const PUBLISH_LOCK: &str = "SELECT pg_try_advisory_lock(hashtext('sipline_publish'))";
pub(crate) const PUBLISH_UNLOCK: &str = "SELECT pg_advisory_unlock(hashtext('sipline_publish'))";
const ENSURE_MONTH: &str = "SELECT sipline_ensure_month_partitions($1::regclass, $2, $2)";
/// The date's month of `portfolio_snapshots`, created partitioned by date if missing; its name,
/// or NULL for a hypertable.
const ENSURE_SNAPSHOT_MONTH: &str = "SELECT sipline_ensure_snapshot_month($1)";
/// Whether a month takes per-date partitions (made by migration 0017 on) or rows (older).
const IS_PARTITIONED: &str =
    "SELECT coalesce((SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass($1)), false)";

const DELETE_SNAPSHOTS: &str = "DELETE FROM portfolio_snapshots WHERE as_of = $1";
const COPY_SNAPSHOTS: &str =
    "COPY portfolio_snapshots (user_id, invested, current_value, gain, abs_return_pct, xirr, \
     schemes, nav_date, as_of) FROM STDIN (FORMAT binary)";
const DELETE_INVESTMENTS: &str = "DELETE FROM investments WHERE exec_date = $1";
const COPY_INVESTMENTS: &str =
    "COPY investments (sip_id, user_id, scheme_code, due_date, status, amount, stamp_duty, \
     nav_date, nav, units, exec_date) FROM STDIN (FORMAT binary)";
const STAGE_EVENTS: &str = "CREATE TEMP TABLE sip_events_stage (event_id text COLLATE \"C\", sip_id bigint, user_id bigint, \
     scheme_code bigint, due_date date, kind text, amount numeric(18,2), nav_date date, nav numeric(18,8), \
     units numeric(18,4)) ON COMMIT DROP";
const COPY_EVENTS: &str = "COPY sip_events_stage FROM STDIN (FORMAT binary)";
// One notification per fact: the batch's event id is stable across re-runs. Rows go in by user
// (ids, hence the order a user's notifications list in, still follow the event id within a
// user): the user index then takes them in its own order, at half the cost of random inserts.
const EVENTS_TO_OUTBOX: &str = "INSERT INTO notifications (event_key, user_id, kind, payload) \
     SELECT event_id, user_id, 'sip_' || kind, jsonb_strip_nulls(jsonb_build_object( \
       'sip_id', sip_id, 'scheme_code', scheme_code, 'due_date', due_date, 'run_date', $1::date, \
       'amount', amount::text, 'nav_date', nav_date, 'nav', sipline_nav_text(nav), 'units', units::text)) \
     FROM sip_events_stage ORDER BY user_id, event_id \
     ON CONFLICT (event_key) DO NOTHING";
// The batch cancels a SIP after three failed instalments; the system of record follows.
// The monthly statement: one per user holding funds, on the month's last business day.
/// `{snapshots}`: the table the date's snapshots are in now (their stage, before the switch).
const STATEMENTS_TO_OUTBOX: &str = "INSERT INTO notifications (event_key, user_id, kind, payload) \
     SELECT 'statement:' || user_id || ':' || to_char($1::date, 'YYYY-MM'), user_id, 'statement_ready', \
       jsonb_build_object('month', to_char($1::date, 'YYYY-MM'), 'as_of', as_of, \
         'invested', invested::text, 'current_value', current_value::text, \
         'xirr', CASE WHEN xirr = 'NaN' THEN NULL ELSE xirr END) \
     FROM {snapshots} WHERE as_of = $1 AND schemes > 0 ORDER BY user_id \
     ON CONFLICT (event_key) DO NOTHING";
const CANCEL_SIPS: &str = "UPDATE sips s SET status = 'cancelled', updated_at = now() \
     FROM sip_events_stage e WHERE e.kind = 'cancelled' AND s.sip_id = e.sip_id AND s.status <> 'cancelled'";
/// A re-publish of a date whose month ends are already loaded loads none: it keeps the count of
/// the run that loaded them, so a re-run (after a crash past the commit, say) records what one
/// run records.
const RECORD_PUBLICATION: &str = "INSERT INTO publications (as_of, snapshots, lines, month_ends, investments, events, \
       month_ends_through) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (as_of) DO UPDATE SET published_at = now(), snapshots = EXCLUDED.snapshots, \
       lines = EXCLUDED.lines, \
       month_ends = CASE WHEN EXCLUDED.month_ends = 0 THEN publications.month_ends ELSE EXCLUDED.month_ends END, \
       investments = EXCLUDED.investments, \
       events = EXCLUDED.events, month_ends_through = EXCLUDED.month_ends_through";
/// The last month end whose rows `portfolio_month_ends` holds complete.
const MONTH_ENDS_THROUGH: &str = "SELECT max(month_ends_through) FROM publications";
/// A reversal rewrites the history of the users it touches (their month ends up to `$2`).
const DELETE_USER_MONTH_ENDS: &str =
    "DELETE FROM portfolio_month_ends WHERE user_id = ANY($1) AND month_end <= $2";
const INSERT_USER_MONTH_ENDS: &str =
    "INSERT INTO portfolio_month_ends (month_end, user_id, invested, value) \
     SELECT * FROM unnest($1::date[], $2::bigint[], $3::numeric[], $4::numeric[])";
const NOTIFY: &str = "SELECT pg_notify($1, $2)";
/// A long analytical query on the served tables fails the publish (to be retried) rather than
/// stalling it, and every reader queued behind it, without bound.
const SWITCH_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '60s'";
const LOCK_SERVED_TABLES: &str = "LOCK TABLE portfolio_snapshots, portfolio_lines, \
     portfolio_month_ends, portfolio_intraday IN ACCESS EXCLUSIVE MODE";
/// The daily valuation of D supersedes every intraday figure up to D (`publish --hourly`).
const RETIRE_INTRADAY: &str = "SELECT sipline_retire_intraday($1)";
/// The dates whose lines stay attached: the latest two publications, so a reader
/// that looked up the latest date just before a publish still finds its rows.
const KEPT_DATES: &str = "SELECT as_of FROM publications ORDER BY as_of DESC LIMIT 2";
/// Index builds after a load sort every row: with PostgreSQL's default 64 MB a date's lines
/// (13M rows at 10M users) spill to disk, and with 512 MB they still merge from tape (7.3 s
/// against 5.9 s in memory on one core). Parallel workers share it.
const INDEX_BUILD_MEMORY: &str = "SET maintenance_work_mem = '1536MB'";
const LIST_PARTITIONS: &str =
    "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
     WHERE i.inhparent = $1::regclass";

#[derive(Debug, Clone, Copy)]
pub struct PublishOptions {
    /// Months of `investments` the serving store keeps (the current one included); 0: all.
    pub keep_investment_months: u32,
    /// Whether the date closes its month (its last business day): users holding funds get a
    /// `statement_ready` notification.
    pub monthly_statements: bool,
}

#[derive(Debug, Default)]
pub struct PublishSummary {
    pub date: Option<NaiveDate>,
    pub schemes: u64,
    pub navs: u64,
    pub snapshots: u64,
    pub lines: u64,
    /// Month-end points added (the first publish after a month ends) or rewritten (users a
    /// reversal changed).
    pub month_ends: u64,
    pub investments: u64,
    pub events: u64,
    pub notifications: u64,
    pub cancelled_sips: u64,
    pub dropped_partitions: usize,
    /// Days of intraday points this date's valuation superseded (dropped).
    pub retired_intraday_days: i32,
}

impl PublishSummary {
    /// Rows read from the warehouse.
    pub fn rows_in(&self) -> u64 {
        self.schemes + self.navs + self.snapshots + self.lines + self.investments + self.events
    }

    /// Rows written to PostgreSQL.
    pub fn rows_out(&self) -> u64 {
        self.snapshots + self.lines + self.month_ends + self.investments + self.notifications
    }
}

impl fmt::Display for PublishSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "publish ok: date={} snapshots={} lines={} month_ends={} investments={} events={} new_notifications={} \
             cancelled_sips={} schemes_changed={} navs_changed={} dropped_partitions={} \
             retired_intraday_days={}",
            self.date.map(|d| d.to_string()).unwrap_or_default(),
            self.snapshots,
            self.lines,
            self.month_ends,
            self.investments,
            self.events,
            self.notifications,
            self.cancelled_sips,
            self.schemes,
            self.navs,
            self.dropped_partitions,
            self.retired_intraday_days
        )
    }
}

pub async fn publish(
    warehouse: &Warehouse,
    pool: &PgPool,
    date: NaiveDate,
    options: PublishOptions,
) -> anyhow::Result<PublishSummary> {
    check_inputs(warehouse, date).await?;
    let mut summary = PublishSummary {
        date: Some(date),
        ..PublishSummary::default()
    };
    let mut main = pool.acquire().await?;
    take_publish_lock(&mut main).await?;
    let result = publish_locked(warehouse, pool, &mut main, date, options, &mut summary).await;
    release_publish_lock(&mut main).await;
    result?;
    Ok(summary)
}

/// One publish (daily or hourly) at a time: two at once would race on the same partitions.
async fn take_publish_lock(conn: &mut PgConnection) -> anyhow::Result<()> {
    let locked: bool = sqlx::query_scalar(PUBLISH_LOCK)
        .fetch_one(&mut *conn)
        .await?;
    if !locked {
        anyhow::bail!("another `sipline publish` holds the publish lock; retry when it is done");
    }
    Ok(())
}

/// The lock is the session's: release it whatever happened (a dead process releases it too).
async fn release_publish_lock(conn: &mut PgConnection) {
    let _ = sqlx::query(PUBLISH_UNLOCK).execute(&mut *conn).await;
}

async fn publish_locked(
    warehouse: &Warehouse,
    pool: &PgPool,
    main: &mut PgConnection,
    date: NaiveDate,
    options: PublishOptions,
    summary: &mut PublishSummary,
) -> anyhow::Result<()> {
    // Reference data first, each its own upsert: they are facts of their own, valid whether
    // or not this date's portfolios get published.
    let schemes = warehouse.read_rows_of::<SchemeRow>(&[Part::WHOLE]).await?;
    summary.schemes = postgres::upsert_schemes(pool, &schemes).await?;
    let navs: Vec<_> = warehouse
        .read_rows_of::<NavRow>(&[Part::date(date)])
        .await?
        .into_iter()
        .map(|row| (date, row))
        .collect();
    summary.navs = postgres::upsert_navs(pool, &navs).await?;

    // Creating a partition locks its parent against readers: do it before the long
    // transaction, in its own short ones.
    sqlx::query(ENSURE_MONTH)
        .bind("investments")
        .bind(date)
        .execute(&mut *main)
        .await?;
    let snapshot_month: Option<String> = sqlx::query_scalar(ENSURE_SNAPSHOT_MONTH)
        .bind(date)
        .fetch_one(&mut *main)
        .await?;
    // The month takes the date as a partition built beside it, or (a month made before
    // migration 0017, or a hypertable) the rows, copied in the transaction.
    let staged_month = match snapshot_month {
        Some(month) => sqlx::query_scalar::<_, bool>(IS_PARTITIONED)
            .bind(&month)
            .fetch_one(&mut *main)
            .await?
            .then_some(month),
        None => None,
    };

    let mut tx = main.begin().await?;
    let started = std::time::Instant::now();
    // Every load reads the date's buckets: investments, SIP events, snapshots, lines and
    // month ends.
    let progress = Arc::new(Progress::new("partitions", 5 * u64::from(BUCKETS)));
    let (loaded, snapshots, lines, month_ends) = tokio::try_join!(
        timed(
            "investments and outbox (and snapshots into an older month)",
            started,
            load_in_transaction(warehouse, &mut tx, date, staged_month.is_none(), &progress)
        ),
        timed("portfolio_snapshots", started, async {
            match staged_month {
                Some(_) => stage_dated(warehouse, pool, SNAPSHOTS, date, &progress)
                    .await
                    .map(Some),
                None => Ok(None),
            }
        }),
        timed(
            "portfolio_lines",
            started,
            stage_dated(warehouse, pool, LINES, date, &progress)
        ),
        timed(
            "portfolio_month_ends",
            started,
            stage_month_ends(warehouse, pool, date, &progress)
        ),
    )?;
    progress.finish();
    (summary.snapshots, summary.investments, summary.events) = loaded.rows;
    summary.snapshots += snapshots.unwrap_or(0);
    summary.notifications = loaded.notifications;
    summary.cancelled_sips = loaded.cancelled;
    summary.lines = lines;
    summary.month_ends = month_ends.rows + rewrite_history(&mut tx, &month_ends).await?;
    if options.monthly_statements {
        let source = match staged_month {
            Some(_) => SNAPSHOTS.stage(date),
            None => SNAPSHOTS.parent.to_string(),
        };
        summary.notifications += sqlx::query(execute_sql(
            STATEMENTS_TO_OUTBOX.replace("{snapshots}", &source),
        ))
        .bind(date)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    // ATTACH PARTITION takes only SHARE UPDATE EXCLUSIVE on the parent, and PostgreSQL reads
    // the catalog outside a statement's MVCC snapshot: a reader could plan its query without
    // the new partition, then take a snapshot that already sees the new publication, and serve
    // a date with no lines. Holding ACCESS EXCLUSIVE on the served parents from here to the
    // commit makes the switch a barrier: readers wait for milliseconds, never see a mix.
    let waited = std::time::Instant::now();
    sqlx::query(SWITCH_LOCK_TIMEOUT).execute(&mut *tx).await?;
    sqlx::query(LOCK_SERVED_TABLES)
        .execute(&mut *tx)
        .await
        .context("waiting for readers of the served tables to let the new date in")?;
    tracing::info!(
        elapsed_ms = u64::try_from(waited.elapsed().as_millis()).unwrap_or(u64::MAX),
        "served tables locked for the switch"
    );
    swap_in(&mut tx, LINES, LINES.parent, date).await?;
    if let Some(month) = &staged_month {
        swap_in(&mut tx, SNAPSHOTS, month, date).await?;
    }
    if let Some(ends) = &month_ends.staged {
        attach_month_ends(&mut tx, ends).await?;
    }
    summary.retired_intraday_days = sqlx::query_scalar::<_, i32>(RETIRE_INTRADAY)
        .bind(date)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query(RECORD_PUBLICATION)
        .bind(date)
        .bind(as_i64(summary.snapshots))
        .bind(as_i64(summary.lines))
        .bind(as_i64(summary.month_ends))
        .bind(as_i64(summary.investments))
        .bind(as_i64(summary.events))
        .bind(month_ends.through)
        .execute(&mut *tx)
        .await?;
    sqlx::query(NOTIFY)
        .bind(PUBLISH_CHANNEL)
        .bind(serde_json::json!({ "as_of": date.to_string() }).to_string())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(%date, snapshots = summary.snapshots, "date published");

    summary.dropped_partitions = drop_expired(main, date, options).await?;
    Ok(())
}

/// Logs when one of the concurrent loads is done: which one dominates is the tuning question.
async fn timed<T>(
    part: &'static str,
    started: std::time::Instant,
    work: impl std::future::Future<Output = T>,
) -> T {
    let out = work.await;
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    tracing::info!(part, elapsed_ms, "loaded");
    out
}

fn as_i64(rows: u64) -> i64 {
    i64::try_from(rows).unwrap_or(i64::MAX)
}

/// Every bucket of the date's valuation must be there: publishing part of a date would
/// serve some users yesterday's portfolio as today's.
async fn check_inputs(warehouse: &Warehouse, date: NaiveDate) -> anyhow::Result<()> {
    let tables = [
        Table::PortfolioSnapshots,
        Table::PortfolioLines,
        Table::PortfolioCharts,
    ];
    complete_or_missing_upstream(warehouse, &tables, date, "sipline portfolio value").await
}

/// Every bucket of `tables` for `date` is published, or a missing upstream naming the first
/// table missing one and the `command` (run with `--date` for every shard) that writes it.
async fn complete_or_missing_upstream(
    warehouse: &Warehouse,
    tables: &[Table],
    date: NaiveDate,
    command: &str,
) -> anyhow::Result<()> {
    let parts: Vec<(Table, u32)> = tables
        .iter()
        .flat_map(|t| (0..BUCKETS).map(move |b| (*t, b)))
        .collect();
    let mut missing: Vec<(Table, u32)> = futures::stream::iter(parts)
        .map(|(table, bucket)| async move {
            let published = warehouse
                .is_published(table, Part::dated_bucket(date, bucket))
                .await?;
            anyhow::Ok((!published).then_some((table, bucket)))
        })
        .buffer_unordered(16)
        .try_filter_map(|m| async move { Ok(m) })
        .try_collect()
        .await?;
    missing.sort_unstable_by_key(|(table, bucket)| (table.name(), *bucket));
    if let Some((table, bucket)) = missing.first() {
        anyhow::bail!(JobFailure::MissingUpstream(format!(
            "`{}` for {date} is not complete ({} partitions missing, e.g. bucket {bucket}): \
             run `{command} --date {date}` for every shard first",
            table.name(),
            missing.len()
        )));
    }
    Ok(())
}
