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

use std::fmt::{self, Write as _};

use anyhow::Context;
use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{
    Array, AsArray, Date32Array, Decimal128Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::{
    concat_batches, lexsort_to_indices, take_record_batch, SortColumn,
};
use datafusion::arrow::datatypes::{DataType, Date32Type, Field, Int64Type, Schema};
use futures::{StreamExt, TryStreamExt};
use pipeline::bucket::bucket_of;
use pipeline::schema::{navs_from_batch, schemes_from_batch, sips_from_batch};
use pipeline::sip::SipEventKind;
use pipeline::valuation::ChartKind;
use serving::PUBLISH_CHANNEL;
use sqlx::{Connection, PgConnection, PgPool};
use std::sync::Arc;
use warehouse::BUCKETS;
use warehouse::{Part, Table, Warehouse};

use crate::copy_binary;
use crate::exit::JobFailure;
use crate::postgres::{self, send_batches};

pub mod hourly;

// The publish channel (`serving::PUBLISH_CHANNEL`) is notified on commit; the payload is
// `{"as_of": "YYYY-MM-DD"}` (and `"hour": H` from `publish --hourly`).

/// Serialises publishes: two at once would race on the same partitions.
const PUBLISH_LOCK: &str = "SELECT pg_try_advisory_lock(hashtext('sipline_publish'))";
const PUBLISH_UNLOCK: &str = "SELECT pg_advisory_unlock(hashtext('sipline_publish'))";
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
const RECORD_PUBLICATION: &str = "INSERT INTO publications (as_of, snapshots, lines, month_ends, investments, events, \
       month_ends_through) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (as_of) DO UPDATE SET published_at = now(), snapshots = EXCLUDED.snapshots, \
       lines = EXCLUDED.lines, month_ends = EXCLUDED.month_ends, investments = EXCLUDED.investments, \
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
    /// Months of `investments` the serving store keeps (the current one included).
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

/// A table that takes one partition per published date, built beside it and attached whole:
/// `portfolio_lines` (two latest dates kept), and each month of `portfolio_snapshots` made
/// by migration 0017 on (history).
#[derive(Debug, Clone, Copy)]
struct Dated {
    parent: &'static str,
    key: &'static str,
    /// The COPY's column list: the warehouse file's columns, then `as_of`.
    columns: &'static str,
    table: Table,
    /// Connections the load is split over.
    streams: usize,
}

const LINES: Dated = Dated {
    parent: "portfolio_lines",
    // The partition fixes `as_of`: a key starting with it makes every sort comparison of the
    // index build tie on it first (migration 0019).
    key: "user_id, scheme_code",
    columns: "user_id, scheme_code, units, invested, nav_date, nav, current_value, weight_pct, \
              xirr, day_change, as_of",
    table: Table::PortfolioLines,
    // The largest load, and the last to finish on one stream.
    streams: 2,
};

const SNAPSHOTS: Dated = Dated {
    parent: "portfolio_snapshots",
    key: "user_id",
    columns:
        "user_id, invested, current_value, gain, abs_return_pct, xirr, schemes, nav_date, as_of",
    table: Table::PortfolioSnapshots,
    streams: 1,
};

impl Dated {
    fn partition(self, date: NaiveDate) -> String {
        format!("{}_d{}", self.parent, date.format("%Y%m%d"))
    }

    fn stage(self, date: NaiveDate) -> String {
        format!("{}_stage", self.partition(date))
    }
}

/// Where month-end rows are staged before they become a partition of `portfolio_month_ends`.
const MONTH_ENDS_STAGE: &str = "portfolio_month_ends_stage";

fn execute_sql(statement: String) -> sqlx::AssertSqlSafe<String> {
    // Every dynamic statement here is built from table names this module makes and ISO dates.
    sqlx::AssertSqlSafe(statement)
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
    let schemes = read_all(warehouse, Table::Schemes, &[Part::WHOLE])
        .await?
        .iter()
        .map(schemes_from_batch)
        .collect::<Result<Vec<_>, _>>()
        .context("decoding `schemes`")?
        .concat();
    summary.schemes = postgres::upsert_schemes(pool, &schemes).await?;
    let navs: Vec<_> = read_all(warehouse, Table::Navs, &[Part::date(date)])
        .await?
        .iter()
        .map(navs_from_batch)
        .collect::<Result<Vec<_>, _>>()
        .context("decoding `navs`")?
        .concat()
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
    let (loaded, snapshots, lines, month_ends) = tokio::try_join!(
        timed(
            "investments and outbox (and snapshots into an older month)",
            started,
            load_in_transaction(warehouse, &mut tx, date, staged_month.is_none())
        ),
        timed("portfolio_snapshots", started, async {
            match staged_month {
                Some(_) => stage_dated(warehouse, pool, SNAPSHOTS, date)
                    .await
                    .map(Some),
                None => Ok(None),
            }
        }),
        timed(
            "portfolio_lines",
            started,
            stage_dated(warehouse, pool, LINES, date)
        ),
        timed(
            "portfolio_month_ends",
            started,
            stage_month_ends(warehouse, pool, date)
        ),
    )?;
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

/// The published partitions among `parts`, decoded (a missing one reads as no rows).
async fn read_all(
    warehouse: &Warehouse,
    table: Table,
    parts: &[Part],
) -> anyhow::Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    for part in parts {
        if let Some(read) = warehouse.read(table, *part).await? {
            batches.extend(read);
        }
    }
    Ok(batches)
}

fn date_buckets(date: NaiveDate) -> impl Iterator<Item = Part> {
    (0..BUCKETS).map(move |b| Part::dated_bucket(date, b))
}

/// `batch` with a constant date column appended (the Hive partition value, which the files
/// do not hold).
fn with_date(batch: &RecordBatch, name: &str, date: NaiveDate) -> anyhow::Result<RecordBatch> {
    let days = Date32Type::from_naive_date(date);
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(name, DataType::Date32, false));
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(Date32Array::from(vec![days; batch.num_rows()])));
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// A load's batches in COPY's binary format, each with its row count, in order.
type EncodedBatches = tokio::sync::mpsc::Receiver<anyhow::Result<(Vec<u8>, u64)>>;

/// Encoded batches a load keeps ready ahead of its connection: enough that the server never
/// waits for the next one, few enough that memory holds a handful of batches per stream.
const ENCODED_AHEAD: usize = 4;

/// The rows of `parts` of `table` (with `date_column` appended, the Hive partition value the
/// files do not hold), decoded and encoded for a binary COPY on a blocking thread, one batch at
/// a time. So the server parses one batch while the next is encoded, and loads running side by
/// side encode on every core instead of taking turns on the task that drives them all.
fn encode_parts(
    warehouse: &Warehouse,
    table: Table,
    parts: Vec<Part>,
    load: LoadOrder,
) -> (EncodedBatches, tokio::task::JoinHandle<()>) {
    let (sender, receiver) = tokio::sync::mpsc::channel(ENCODED_AHEAD);
    let warehouse = warehouse.clone();
    let runtime = tokio::runtime::Handle::current();
    let producer = tokio::task::spawn_blocking(move || {
        let encode = |batch: &RecordBatch| -> anyhow::Result<(Vec<u8>, u64)> {
            let batch = match load.date_column {
                Some((name, date)) => with_date(batch, name, date)?,
                None => batch.clone(),
            };
            // `encode_batch` reserves the batch's bound itself.
            let mut buffer = Vec::new();
            copy_binary::encode_batch(&batch, &mut buffer)?;
            Ok((buffer, batch.num_rows() as u64))
        };
        // Sends one batch; false once the load is over (an error sent, or the COPY gone).
        let send = |batch: anyhow::Result<&RecordBatch>| -> bool {
            let encoded = batch.and_then(encode);
            let failed = encoded.is_err();
            // The receiver is gone when its COPY failed: nothing left to do.
            sender.blocking_send(encoded).is_ok() && !failed
        };
        let read = |part: Part| -> anyhow::Result<Vec<RecordBatch>> {
            Ok(runtime
                .block_on(warehouse.read(table, part))?
                .unwrap_or_default())
        };
        if load.sorted_by.is_empty() {
            for part in parts {
                match read(part) {
                    Ok(batches) => {
                        if !batches.iter().all(|batch| send(Ok(batch))) {
                            return;
                        }
                    }
                    Err(e) => {
                        send(Err(e));
                        return;
                    }
                }
            }
            return;
        }
        let sorted = parts
            .into_iter()
            .map(read)
            .collect::<anyhow::Result<Vec<_>>>()
            .and_then(|parts| sorted_rows(&parts.concat(), load.sorted_by));
        match sorted {
            Ok(Some(rows)) => {
                for offset in (0..rows.num_rows()).step_by(SORTED_BATCH_ROWS) {
                    let length = SORTED_BATCH_ROWS.min(rows.num_rows() - offset);
                    if !send(Ok(&rows.slice(offset, length))) {
                        return;
                    }
                }
            }
            Ok(None) => {}
            Err(e) => {
                send(Err(e));
            }
        }
    });
    (receiver, producer)
}

/// How a load's rows reach the COPY.
#[derive(Debug, Clone, Copy, Default)]
struct LoadOrder {
    /// The Hive partition value the files do not hold, appended as this column.
    date_column: Option<(&'static str, NaiveDate)>,
    /// Columns to sort all the load's rows by first (empty: file order, a batch at a time).
    /// Rows inserted into a large indexed table in its indexes' order touch each leaf page
    /// once, in sequence, rather than at random.
    sorted_by: &'static [&'static str],
}

/// Rows per COPY batch of a sorted load.
const SORTED_BATCH_ROWS: usize = 8192;

/// All `batches` as one, ordered by `columns` (ascending).
fn sorted_rows(batches: &[RecordBatch], columns: &[&str]) -> anyhow::Result<Option<RecordBatch>> {
    let Some(first) = batches.first() else {
        return Ok(None);
    };
    let all = concat_batches(&first.schema(), batches)?;
    let keys = columns
        .iter()
        .map(|name| {
            let values = all
                .column_by_name(name)
                .with_context(|| format!("sorting a load by `{name}`, which it lacks"))?;
            anyhow::Ok(SortColumn {
                values: values.clone(),
                options: None,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let order = lexsort_to_indices(&keys, None)?;
    Ok(Some(take_record_batch(&all, &order)?))
}

/// Copies `parts` of `table` in the binary COPY format (`statement` says `FORMAT binary`),
/// a batch at a time, so memory holds a few batches whatever the universe size (a sorted
/// load, `load.sorted_by`, holds all its rows once to sort them).
async fn copy_table(
    conn: &mut PgConnection,
    statement: &str,
    warehouse: &Warehouse,
    table: Table,
    parts: Vec<Part>,
    load: LoadOrder,
) -> anyhow::Result<u64> {
    let (mut encoded, producer) = encode_parts(warehouse, table, parts, load);
    let mut copy = conn.copy_in_raw(statement).await?;
    let sent = async {
        copy.send(copy_binary::header()).await?;
        let mut rows = 0;
        while let Some(next) = encoded.recv().await {
            let (buffer, count) = next?;
            copy.send(buffer).await?;
            rows += count;
        }
        // The channel also closes when the encoder panicked: only a finished one means all.
        producer
            .await
            .with_context(|| format!("encoding `{}` for the COPY", table.name()))?;
        copy.send(copy_binary::trailer().as_slice()).await?;
        anyhow::Ok(rows)
    }
    .await;
    postgres::finish_or_abort(copy, sent).await
}

struct Loaded {
    rows: (u64, u64, u64),
    notifications: u64,
    cancelled: u64,
}

async fn load_in_transaction(
    warehouse: &Warehouse,
    tx: &mut PgConnection,
    date: NaiveDate,
    snapshots_too: bool,
) -> anyhow::Result<Loaded> {
    // The date's rows replace whatever an earlier publish of it left.
    let mut replaced = [0; 2];
    for (rows, (delete, copy, table, load)) in replaced.iter_mut().zip([
        (
            DELETE_SNAPSHOTS,
            COPY_SNAPSHOTS,
            Table::PortfolioSnapshots,
            // Ten million rows: more than a load should hold to sort.
            LoadOrder {
                date_column: Some(("as_of", date)),
                sorted_by: &[],
            },
        ),
        (
            DELETE_INVESTMENTS,
            COPY_INVESTMENTS,
            Table::Investments,
            // The day's instalments go into the month's partition, whose indexes hold the
            // month so far: by user, as `investments_user_idx` is ordered (and, in the
            // generated universe, a user's SIPs are numbered together, as the key is).
            LoadOrder {
                date_column: Some(("exec_date", date)),
                // The key's columns after the user's: an order that is total, so the same day
                // loads the same way every time.
                sorted_by: &["user_id", "sip_id", "due_date"],
            },
        ),
    ]) {
        if table == Table::PortfolioSnapshots && !snapshots_too {
            continue;
        }
        sqlx::query(delete).bind(date).execute(&mut *tx).await?;
        *rows = copy_table(
            tx,
            copy,
            warehouse,
            table,
            date_buckets(date).collect(),
            load,
        )
        .await
        .with_context(|| format!("loading {}", table.name()))?;
    }
    let [snapshots, investments] = replaced;
    sqlx::query(STAGE_EVENTS).execute(&mut *tx).await?;
    let events = copy_table(
        tx,
        COPY_EVENTS,
        warehouse,
        Table::SipEvents,
        date_buckets(date).collect(),
        LoadOrder::default(),
    )
    .await
    .context("loading sip_events")?;
    let notifications = sqlx::query(EVENTS_TO_OUTBOX)
        .bind(date)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let cancelled = sqlx::query(CANCEL_SIPS)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    Ok(Loaded {
        rows: (snapshots, investments, events),
        notifications,
        cancelled,
    })
}

/// Builds the date's partition of `dated` as a stand-alone table: load, then the key index
/// (cheaper after the load than during it), with a CHECK that lets the attach skip its scan.
async fn stage_dated(
    warehouse: &Warehouse,
    pool: &PgPool,
    dated: Dated,
    date: NaiveDate,
) -> anyhow::Result<u64> {
    let mut conn = pool.acquire().await?;
    let stage = dated.stage(date);
    let parent = dated.parent;
    // A stage left by a failed run is never attached: start again.
    sqlx::query(execute_sql(format!("DROP TABLE IF EXISTS {stage}")))
        .execute(&mut *conn)
        .await?;
    sqlx::query(execute_sql(format!(
        "CREATE TABLE {stage} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS, \
         CONSTRAINT {stage}_as_of CHECK (as_of = DATE '{date}'))"
    )))
    .execute(&mut *conn)
    .await?;
    // Each stream takes every `streams`-th bucket on a connection of its own: one backend
    // parses one stream, so a table that loads longest uses a core per stream.
    let copy = format!(
        "COPY {stage} ({}) FROM STDIN (FORMAT binary)",
        dated.columns
    );
    let mut streams = vec![conn];
    for _ in 1..dated.streams {
        streams.push(pool.acquire().await?);
    }
    let rows: u64 =
        futures::future::try_join_all(streams.iter_mut().enumerate().map(|(stream, conn)| {
            let parts = date_buckets(date)
                .enumerate()
                .filter(|(i, _)| i % dated.streams == stream)
                .map(|(_, part)| part)
                .collect();
            copy_table(
                conn,
                &copy,
                warehouse,
                dated.table,
                parts,
                LoadOrder {
                    date_column: Some(("as_of", date)),
                    sorted_by: &[],
                },
            )
        }))
        .await
        .with_context(|| format!("loading {parent}"))?
        .into_iter()
        .sum();
    // The other streams' connections go back to the pool; the first builds the index.
    streams.truncate(1);
    let mut conn = streams.pop().context("a load has at least one stream")?;
    sqlx::query(INDEX_BUILD_MEMORY).execute(&mut *conn).await?;
    sqlx::query(execute_sql(format!(
        // Full pages: a published date's rows are never updated (and 10% fewer pages to write).
        "ALTER TABLE {stage} ADD PRIMARY KEY ({}) WITH (fillfactor = 100)",
        dated.key
    )))
    .execute(&mut *conn)
    .await?;
    Ok(rows)
}

/// Replaces the date's partition of `attach_to` with the staged table (inside the publish
/// transaction).
async fn swap_in(
    tx: &mut PgConnection,
    dated: Dated,
    attach_to: &str,
    date: NaiveDate,
) -> anyhow::Result<()> {
    let partition = dated.partition(date);
    let stage = dated.stage(date);
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&partition)
        .fetch_one(&mut *tx)
        .await?;
    if exists {
        sqlx::query(execute_sql(format!("DROP TABLE {partition}")))
            .execute(&mut *tx)
            .await?;
    }
    for statement in [
        format!("ALTER TABLE {stage} RENAME TO {partition}"),
        format!("ALTER TABLE {partition} RENAME CONSTRAINT {stage}_as_of TO {partition}_as_of"),
        format!("ALTER INDEX {stage}_pkey RENAME TO {partition}_pkey"),
        format!("ALTER TABLE {attach_to} ATTACH PARTITION {partition} FOR VALUES IN ('{date}')"),
    ] {
        sqlx::query(execute_sql(statement))
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// What a publish does to the charts' history.
#[derive(Debug, Default)]
struct MonthEnds {
    /// The month ends staged in `MONTH_ENDS_STAGE`, to attach as one partition.
    staged: Option<Vec<NaiveDate>>,
    rows: u64,
    /// The last month end complete after this publish (`publications.month_ends_through`).
    through: Option<NaiveDate>,
    /// Users whose history a reversal on this date changed, and their rows up to the month
    /// end complete before this publish (`rewrite_through`), re-read from today's valuation.
    rewritten_users: Vec<i64>,
    rewrite_through: Option<NaiveDate>,
    rewritten: Vec<MonthEndRow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct MonthEndRow {
    month_end: NaiveDate,
    user_id: i64,
    invested: String,
    value: String,
}

/// The last month end before `date`: the line chart's history ends there.
fn last_month_end_before(date: NaiveDate) -> Option<NaiveDate> {
    date.with_day(1)?.pred_opt()
}

/// Loads the month ends that ended since the last one loaded (normally none; one on the first
/// publish of a month; the whole history on a store's first publish) from the date's
/// `portfolio_charts` line points, into a stand-alone table indexed after the load. Also
/// collects the corrected history of users a reversal touched.
async fn stage_month_ends(
    warehouse: &Warehouse,
    pool: &PgPool,
    date: NaiveDate,
) -> anyhow::Result<MonthEnds> {
    let mut conn = pool.acquire().await?;
    let loaded: Option<NaiveDate> = sqlx::query_scalar(MONTH_ENDS_THROUGH)
        .fetch_one(&mut *conn)
        .await?;
    let target = last_month_end_before(date);
    let mut out = MonthEnds {
        through: loaded.max(target),
        // The date's valuation holds the month ends before it only: re-publishing an older
        // date rewrites no later month end.
        rewrite_through: loaded.min(target),
        ..MonthEnds::default()
    };
    if let Some(through) = out.rewrite_through {
        out.rewritten_users = reversed_users(warehouse, date).await?;
        if !out.rewritten_users.is_empty() {
            let users = &out.rewritten_users;
            let mut buckets: Vec<u32> = users.iter().map(|u| bucket_of(*u)).collect();
            buckets.sort_unstable();
            buckets.dedup();
            for bucket in buckets {
                let part = Part::dated_bucket(date, bucket);
                out.rewritten.extend(
                    month_end_rows_of(warehouse, date, part, |user_id, end| {
                        end <= through && users.binary_search(&user_id).is_ok()
                    })
                    .await?,
                );
            }
        }
    }
    let Some(target) = target.filter(|t| loaded.is_none_or(|l| l < *t)) else {
        return Ok(out);
    };
    let after = loaded;
    sqlx::query(execute_sql(format!(
        "DROP TABLE IF EXISTS {MONTH_ENDS_STAGE}"
    )))
    .execute(&mut *conn)
    .await?;
    sqlx::query(execute_sql(format!(
        "CREATE TABLE {MONTH_ENDS_STAGE} (LIKE portfolio_month_ends INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    )))
    .execute(&mut *conn)
    .await?;
    let is_new = |end: NaiveDate| end <= target && after.is_none_or(|a| end > a);
    let mut ends = std::collections::BTreeSet::new();
    let mut copy = conn
        .copy_in_raw(&format!(
            "COPY {MONTH_ENDS_STAGE} (month_end, user_id, invested, value) FROM STDIN (FORMAT csv)"
        ))
        .await?;
    for part in date_buckets(date) {
        let rows = match month_end_rows_of(warehouse, date, part, |_, end| is_new(end)).await {
            Ok(rows) => rows,
            Err(e) => {
                let _ = copy.abort(e.to_string()).await;
                return Err(e);
            }
        };
        let mut csv = String::with_capacity(rows.len() * 40);
        for row in &rows {
            ends.insert(row.month_end);
            let _ = writeln!(
                csv,
                "{},{},{},{}",
                row.month_end, row.user_id, row.invested, row.value
            );
        }
        if let Err(e) = copy.send(csv.into_bytes()).await {
            let _ = copy.abort(e.to_string()).await;
            return Err(e.into());
        }
        out.rows += rows.len() as u64;
    }
    copy.finish().await?;
    if ends.is_empty() {
        // Nobody had invested by then: nothing to attach, but the month ends are done.
        sqlx::query(execute_sql(format!("DROP TABLE {MONTH_ENDS_STAGE}")))
            .execute(&mut *conn)
            .await?;
        return Ok(out);
    }
    let listed = in_list(&ends);
    sqlx::query(INDEX_BUILD_MEMORY).execute(&mut *conn).await?;
    for statement in [
        format!("ALTER TABLE {MONTH_ENDS_STAGE} ADD PRIMARY KEY (user_id, month_end)"),
        // Lets the attach skip its scan, under the switch's lock.
        format!(
            "ALTER TABLE {MONTH_ENDS_STAGE} ADD CONSTRAINT {MONTH_ENDS_STAGE}_ends \
             CHECK (month_end IN ({listed}))"
        ),
    ] {
        sqlx::query(execute_sql(statement))
            .execute(&mut *conn)
            .await?;
    }
    out.staged = Some(ends.into_iter().collect());
    Ok(out)
}

/// `'2025-01-31', '2025-02-28'`: dates as SQL literals.
fn in_list<'a>(ends: impl IntoIterator<Item = &'a NaiveDate>) -> String {
    ends.into_iter()
        .map(|d| format!("DATE '{d}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Attaches the staged month ends as one partition (inside the publish transaction).
async fn attach_month_ends(tx: &mut PgConnection, ends: &[NaiveDate]) -> anyhow::Result<()> {
    let (Some(first), Some(last)) = (ends.first(), ends.last()) else {
        return Ok(());
    };
    let partition = if first == last {
        format!("portfolio_month_ends_m{}", first.format("%Y%m%d"))
    } else {
        format!(
            "portfolio_month_ends_m{}_{}",
            first.format("%Y%m%d"),
            last.format("%Y%m%d")
        )
    };
    for statement in [
        format!("ALTER TABLE {MONTH_ENDS_STAGE} RENAME TO {partition}"),
        format!(
            "ALTER TABLE {partition} RENAME CONSTRAINT {MONTH_ENDS_STAGE}_ends TO {partition}_ends"
        ),
        format!("ALTER INDEX {MONTH_ENDS_STAGE}_pkey RENAME TO {partition}_pkey"),
        format!(
            "ALTER TABLE portfolio_month_ends ATTACH PARTITION {partition} FOR VALUES IN ({})",
            in_list(ends)
        ),
    ] {
        sqlx::query(execute_sql(statement))
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Replaces the month-end history of the users a reversal touched (inside the publish
/// transaction): a reversed allotment leaves every month end since its NAV date lower.
async fn rewrite_history(tx: &mut PgConnection, month_ends: &MonthEnds) -> anyhow::Result<u64> {
    let Some(through) = month_ends.rewrite_through else {
        return Ok(0);
    };
    if month_ends.rewritten_users.is_empty() {
        return Ok(0);
    }
    sqlx::query(DELETE_USER_MONTH_ENDS)
        .bind(&month_ends.rewritten_users)
        .bind(through)
        .execute(&mut *tx)
        .await?;
    let rows = &month_ends.rewritten;
    let inserted = sqlx::query(INSERT_USER_MONTH_ENDS)
        .bind(rows.iter().map(|r| r.month_end).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.user_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.invested.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.value.clone()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await
        .context("rewriting the month ends of users with a reversed instalment")?
        .rows_affected();
    Ok(inserted)
}

/// Users with an instalment reversed on `date`, sorted.
async fn reversed_users(warehouse: &Warehouse, date: NaiveDate) -> anyhow::Result<Vec<i64>> {
    let mut users = Vec::new();
    for part in date_buckets(date) {
        let Some(batches) = warehouse
            .read_columns(Table::SipEvents, part, &["user_id", "kind"])
            .await?
        else {
            continue;
        };
        for batch in &batches {
            let user_ids: &Int64Array = batch.column(0).as_primitive::<Int64Type>();
            let kinds: &StringArray = batch.column(1).as_string::<i32>();
            for i in 0..batch.num_rows() {
                if kinds.value(i) == SipEventKind::Reversed.as_str() {
                    users.push(user_ids.value(i));
                }
            }
        }
    }
    users.sort_unstable();
    users.dedup();
    Ok(users)
}

/// The month-end line points (not today's) of one bucket of the date's valuation that `keep`
/// selects.
async fn month_end_rows_of(
    warehouse: &Warehouse,
    date: NaiveDate,
    part: Part,
    keep: impl Fn(i64, NaiveDate) -> bool,
) -> anyhow::Result<Vec<MonthEndRow>> {
    let Some(batches) = warehouse
        .read_columns(
            Table::PortfolioCharts,
            part,
            &["user_id", "chart", "period", "invested", "value"],
        )
        .await?
    else {
        return Ok(Vec::new());
    };
    let line = ChartKind::Line.as_str();
    let mut rows = Vec::new();
    for batch in &batches {
        let user_ids: &Int64Array = batch.column(0).as_primitive::<Int64Type>();
        let charts: &StringArray = batch.column(1).as_string::<i32>();
        let periods: &Date32Array = batch.column(2).as_primitive::<Date32Type>();
        let invested: &Decimal128Array = batch.column(3).as_primitive();
        let values: &Decimal128Array = batch.column(4).as_primitive();
        for i in 0..batch.num_rows() {
            if charts.value(i) != line || periods.is_null(i) {
                continue;
            }
            let (user_id, Some(period)) = (user_ids.value(i), periods.value_as_date(i)) else {
                continue;
            };
            // Today's point is the snapshot's; the month ends are before the date.
            if period >= date || !keep(user_id, period) {
                continue;
            }
            rows.push(MonthEndRow {
                month_end: period,
                user_id,
                invested: invested.value_as_string(i),
                value: values.value_as_string(i),
            });
        }
    }
    Ok(rows)
}

/// Drops what the serving store no longer keeps: lines of dates older than the two latest
/// publications, and investments older than the kept months.
async fn drop_expired(
    conn: &mut PgConnection,
    date: NaiveDate,
    options: PublishOptions,
) -> anyhow::Result<usize> {
    let kept: Vec<NaiveDate> = sqlx::query_scalar(KEPT_DATES).fetch_all(&mut *conn).await?;
    let mut dropped = 0;
    let partitions: Vec<String> = sqlx::query_scalar(LIST_PARTITIONS)
        .bind(LINES.parent)
        .fetch_all(&mut *conn)
        .await?;
    let keep: Vec<String> = kept.iter().map(|d| LINES.partition(*d)).collect();
    for partition in partitions.iter().filter(|p| !keep.contains(p)) {
        sqlx::query(execute_sql(format!("DROP TABLE {partition}")))
            .execute(&mut *conn)
            .await?;
        dropped += 1;
    }
    let latest = kept.first().copied().unwrap_or(date);
    let months_back = options.keep_investment_months.saturating_sub(1);
    let first_kept = latest
        .with_day(1)
        .and_then(|d| d.checked_sub_months(chrono::Months::new(months_back)))
        .context("investment retention date")?;
    let partitions: Vec<String> = sqlx::query_scalar(LIST_PARTITIONS)
        .bind("investments")
        .fetch_all(&mut *conn)
        .await?;
    for partition in partitions {
        // Names made by sipline_ensure_month_partitions: investments_yYYYYmMM.
        let month = partition
            .strip_prefix("investments_y")
            .and_then(|rest| NaiveDate::parse_from_str(&format!("{rest}01"), "%Ym%m%d").ok());
        if month.is_some_and(|m| m < first_kept) {
            sqlx::query(execute_sql(format!("DROP TABLE {partition}")))
                .execute(&mut *conn)
                .await?;
            dropped += 1;
        }
    }
    Ok(dropped)
}

/// `--mandates`: users and SIP mandates from the warehouse that PostgreSQL does not have yet,
/// for a universe made by `sipline generate` (in production they are created through the API).
pub async fn load_mandates(
    warehouse: &Warehouse,
    pool: &PgPool,
    date: NaiveDate,
) -> anyhow::Result<(u64, u64)> {
    let sips_as_of = warehouse
        .sips_snapshot_on_or_before(date)
        .await?
        .ok_or_else(|| JobFailure::no_sips_snapshot(date))?;
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    sqlx::query(
        "CREATE TEMP TABLE users_stage (user_id bigint, auth_subject text, created_at timestamptz) ON COMMIT DROP",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "CREATE TEMP TABLE sips_stage (sip_id bigint, user_id bigint, scheme_code bigint, amount numeric(18,2), \
         sip_day smallint, start_date date, end_date date, step_up_pct numeric(5,2), status text, paused_until date) \
         ON COMMIT DROP",
    )
    .execute(&mut *tx)
    .await?;
    let buckets: Vec<u32> = (0..BUCKETS).collect();
    {
        let mut copy = tx
            .copy_in_raw("COPY users_stage FROM STDIN (FORMAT csv)")
            .await?;
        for bucket in &buckets {
            let batches = read_all(warehouse, Table::Users, &[Part::bucket(*bucket)]).await?;
            send_batches(&mut copy, &batches).await?;
        }
        copy.finish().await?;
    }
    {
        let mut copy = tx
            .copy_in_raw("COPY sips_stage FROM STDIN (FORMAT csv)")
            .await?;
        for bucket in &buckets {
            let batches = read_all(
                warehouse,
                Table::Sips,
                &[Part::dated_bucket(sips_as_of, *bucket)],
            )
            .await?;
            // Decoded first so a malformed snapshot fails here with the table's own checks.
            for batch in &batches {
                sips_from_batch(batch).context("decoding `sips`")?;
            }
            send_batches(&mut copy, &batches).await?;
        }
        copy.finish().await?;
    }
    let users = sqlx::query(
        "INSERT INTO users (user_id, auth_subject, created_at) SELECT user_id, auth_subject, created_at \
         FROM users_stage ORDER BY user_id ON CONFLICT DO NOTHING",
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    // Loaded mandates held all along (their snapshot is the warehouse's): their history row
    // is effective from the beginning, so a re-export of any date keeps them.
    sqlx::query(
        "SELECT set_config('sipline.effective_from', '-infinity', true), set_config('sipline.change', 'load', true)",
    )
        .execute(&mut *tx)
        .await?;
    let sips = sqlx::query(
        "INSERT INTO sips (sip_id, user_id, scheme_code, amount, sip_day, start_date, end_date, step_up_pct, status, paused_until) \
         SELECT sip_id, user_id, scheme_code, amount, sip_day, start_date, end_date, step_up_pct, status, paused_until \
         FROM sips_stage ORDER BY sip_id ON CONFLICT DO NOTHING",
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    // New rows from the API must not collide with the loaded ids.
    for (table, column) in [("users", "user_id"), ("sips", "sip_id")] {
        sqlx::query(execute_sql(format!(
            "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), \
             GREATEST((SELECT max({column}) FROM {table}), 1))"
        )))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok((users, sips))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn investments(rows: &[(i64, i64)]) -> RecordBatch {
        RecordBatch::try_from_iter([
            (
                "sip_id",
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))) as _,
            ),
            (
                "user_id",
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))) as _,
            ),
        ])
        .expect("a batch")
    }

    #[test]
    fn a_sorted_load_orders_every_part_together_by_its_columns() {
        // Two buckets' files, each in its own order.
        let parts = [
            investments(&[(64, 9), (2, 7), (64, 3)]),
            investments(&[(3, 1), (2, 5)]),
        ];
        let sorted = sorted_rows(&parts, &["user_id", "sip_id"])
            .expect("sorted")
            .expect("rows");
        let column = |name: &str| -> Vec<i64> {
            sorted
                .column_by_name(name)
                .expect("column")
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        };
        assert_eq!(column("user_id"), [2, 2, 3, 64, 64]);
        assert_eq!(column("sip_id"), [5, 7, 1, 3, 9]);
        assert!(sorted_rows(&[], &["user_id"]).expect("nothing").is_none());
        let missing = sorted_rows(&parts, &["due_date"]).expect_err("no such column");
        assert!(missing.to_string().contains("`due_date`"), "{missing}");
    }
}
