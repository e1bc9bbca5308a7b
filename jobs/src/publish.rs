//! `sipline publish --date D`: one valuation date's warehouse outputs into the PostgreSQL
//! serving store, all at once or not at all.
//!
//! * `portfolio_snapshots`, `investments` and the outbox rows are `COPY`'d inside one
//!   transaction (the transaction is their staging area: nobody sees its rows before it
//!   commits, and 10 million rows are written once, not staged and then copied again).
//! * `portfolio_lines` and `visibility_graphs` are built beside their tables on two other
//!   connections at the same time — a stand-alone table per date, indexed after the load — and
//!   attached as the date's partition by that same transaction just before it commits.
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
use datafusion::arrow::datatypes::{DataType, Date32Type, Field, Int64Type, Schema};
use futures::{StreamExt, TryStreamExt};
use pipeline::schema::{navs_from_batch, schemes_from_batch, sips_from_batch};
use pipeline::valuation::ChartKind;
use serving::{GraphType, PUBLISH_CHANNEL};
use sqlx::{Connection, PgConnection, PgPool};
use std::sync::Arc;
use warehouse::BUCKETS;
use warehouse::{Part, Table, Warehouse};

use crate::exit::JobFailure;
use crate::postgres::{self, send_batches};

// The publish channel (`serving::PUBLISH_CHANNEL`) is notified on commit; the payload is
// `{"as_of": "YYYY-MM-DD"}`.

/// Serialises publishes: two at once would race on the same partitions.
const PUBLISH_LOCK: &str = "SELECT pg_try_advisory_lock(hashtext('sipline_publish'))";
const PUBLISH_UNLOCK: &str = "SELECT pg_advisory_unlock(hashtext('sipline_publish'))";
const ENSURE_MONTH: &str = "SELECT sipline_ensure_month_partitions($1::regclass, $2, $2)";

const DELETE_SNAPSHOTS: &str = "DELETE FROM portfolio_snapshots WHERE as_of = $1";
const COPY_SNAPSHOTS: &str =
    "COPY portfolio_snapshots (user_id, invested, current_value, gain, abs_return_pct, xirr, \
     schemes, nav_date, as_of) FROM STDIN (FORMAT csv)";
const DELETE_INVESTMENTS: &str = "DELETE FROM investments WHERE exec_date = $1";
const COPY_INVESTMENTS: &str =
    "COPY investments (sip_id, user_id, scheme_code, due_date, status, amount, stamp_duty, \
     nav_date, nav, units, exec_date) FROM STDIN (FORMAT csv)";
const STAGE_EVENTS: &str = "CREATE TEMP TABLE sip_events_stage (event_id text, sip_id bigint, user_id bigint, \
     scheme_code bigint, due_date date, kind text, amount numeric(18,2), nav_date date, nav numeric(18,8), \
     units numeric(18,4)) ON COMMIT DROP";
const COPY_EVENTS: &str = "COPY sip_events_stage FROM STDIN (FORMAT csv)";
// One notification per fact: the batch's event id is stable across re-runs.
const EVENTS_TO_OUTBOX: &str = "INSERT INTO notifications (event_key, user_id, kind, payload) \
     SELECT event_id, user_id, 'sip_' || kind, jsonb_strip_nulls(jsonb_build_object( \
       'sip_id', sip_id, 'scheme_code', scheme_code, 'due_date', due_date, 'run_date', $1::date, \
       'amount', amount::text, 'nav_date', nav_date, 'nav', sipline_nav_text(nav), 'units', units::text)) \
     FROM sip_events_stage ORDER BY event_id \
     ON CONFLICT (event_key) DO NOTHING";
// The batch cancels a SIP after three failed instalments; the system of record follows.
// The monthly statement: one per user holding funds, on the month's last business day.
const STATEMENTS_TO_OUTBOX: &str = "INSERT INTO notifications (event_key, user_id, kind, payload) \
     SELECT 'statement:' || user_id || ':' || to_char($1::date, 'YYYY-MM'), user_id, 'statement_ready', \
       jsonb_build_object('month', to_char($1::date, 'YYYY-MM'), 'as_of', as_of, \
         'invested', invested::text, 'current_value', current_value::text, \
         'xirr', CASE WHEN xirr = 'NaN' THEN NULL ELSE xirr END) \
     FROM portfolio_snapshots WHERE as_of = $1 AND schemes > 0 ORDER BY user_id \
     ON CONFLICT (event_key) DO NOTHING";
const CANCEL_SIPS: &str = "UPDATE sips s SET status = 'cancelled', updated_at = now() \
     FROM sip_events_stage e WHERE e.kind = 'cancelled' AND s.sip_id = e.sip_id AND s.status <> 'cancelled'";
const RECORD_PUBLICATION: &str = "INSERT INTO publications (as_of, snapshots, lines, graphs, investments, events) \
     VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (as_of) DO UPDATE SET published_at = now(), snapshots = EXCLUDED.snapshots, \
       lines = EXCLUDED.lines, graphs = EXCLUDED.graphs, investments = EXCLUDED.investments, events = EXCLUDED.events";
const NOTIFY: &str = "SELECT pg_notify($1, $2)";
/// A long analytical query on the served tables fails the publish (to be retried) rather than
/// stalling it, and every reader queued behind it, without bound.
const SWITCH_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '60s'";
const LOCK_SERVED_TABLES: &str =
    "LOCK TABLE portfolio_snapshots, portfolio_lines, visibility_graphs IN ACCESS EXCLUSIVE MODE";
/// The dates whose lines and charts stay attached: the latest two publications, so a reader
/// that looked up the latest date just before a publish still finds its rows.
const KEPT_DATES: &str = "SELECT as_of FROM publications ORDER BY as_of DESC LIMIT 2";
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
    pub graphs: u64,
    pub investments: u64,
    pub events: u64,
    pub notifications: u64,
    pub cancelled_sips: u64,
    pub dropped_partitions: usize,
}

impl PublishSummary {
    /// Rows read from the warehouse.
    pub fn rows_in(&self) -> u64 {
        self.schemes + self.navs + self.snapshots + self.lines + self.investments + self.events
    }

    /// Rows written to PostgreSQL.
    pub fn rows_out(&self) -> u64 {
        self.snapshots + self.lines + self.graphs + self.investments + self.notifications
    }
}

impl fmt::Display for PublishSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "publish ok: date={} snapshots={} lines={} graphs={} investments={} events={} new_notifications={} \
             cancelled_sips={} schemes_changed={} navs_changed={} dropped_partitions={}",
            self.date.map(|d| d.to_string()).unwrap_or_default(),
            self.snapshots,
            self.lines,
            self.graphs,
            self.investments,
            self.events,
            self.notifications,
            self.cancelled_sips,
            self.schemes,
            self.navs,
            self.dropped_partitions
        )
    }
}

/// A per-date table that is built beside its parent and attached whole.
#[derive(Debug, Clone, Copy)]
enum Swapped {
    Lines,
    Graphs,
}

impl Swapped {
    const fn parent(self) -> &'static str {
        match self {
            Swapped::Lines => "portfolio_lines",
            Swapped::Graphs => "visibility_graphs",
        }
    }

    const fn key(self) -> &'static str {
        match self {
            Swapped::Lines => "as_of, user_id, scheme_code",
            Swapped::Graphs => "as_of, user_id, graph_type",
        }
    }

    fn partition(self, date: NaiveDate) -> String {
        format!("{}_d{}", self.parent(), date.format("%Y%m%d"))
    }

    fn stage(self, date: NaiveDate) -> String {
        format!("{}_stage", self.partition(date))
    }
}

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
    let locked: bool = sqlx::query_scalar(PUBLISH_LOCK)
        .fetch_one(&mut *main)
        .await?;
    if !locked {
        anyhow::bail!("another `sipline publish` holds the publish lock; retry when it is done");
    }
    let result = publish_locked(warehouse, pool, &mut main, date, options, &mut summary).await;
    // The lock is the session's: release it whatever happened (a dead process releases it too).
    let _ = sqlx::query(PUBLISH_UNLOCK).execute(&mut *main).await;
    result?;
    Ok(summary)
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
    for parent in ["portfolio_snapshots", "investments"] {
        sqlx::query(ENSURE_MONTH)
            .bind(parent)
            .bind(date)
            .execute(&mut *main)
            .await?;
    }

    let mut tx = main.begin().await?;
    let started = std::time::Instant::now();
    let (loaded, lines, graphs) = tokio::try_join!(
        timed(
            "snapshots, investments and outbox",
            started,
            load_in_transaction(warehouse, &mut tx, date)
        ),
        timed(
            "portfolio_lines",
            started,
            stage(warehouse, pool, Swapped::Lines, date)
        ),
        timed(
            "visibility_graphs",
            started,
            stage(warehouse, pool, Swapped::Graphs, date)
        ),
    )?;
    (summary.snapshots, summary.investments, summary.events) = loaded.rows;
    summary.notifications = loaded.notifications;
    summary.cancelled_sips = loaded.cancelled;
    summary.lines = lines;
    summary.graphs = graphs;
    if options.monthly_statements {
        summary.notifications += sqlx::query(STATEMENTS_TO_OUTBOX)
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
    for swapped in [Swapped::Lines, Swapped::Graphs] {
        swap_in(&mut tx, swapped, date).await?;
    }
    sqlx::query(RECORD_PUBLICATION)
        .bind(date)
        .bind(as_i64(summary.snapshots))
        .bind(as_i64(summary.lines))
        .bind(as_i64(summary.graphs))
        .bind(as_i64(summary.investments))
        .bind(as_i64(summary.events))
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
    let parts: Vec<(Table, u32)> = tables
        .iter()
        .flat_map(|t| (0..BUCKETS).map(move |b| (*t, b)))
        .collect();
    let missing: Vec<(Table, u32)> = futures::stream::iter(parts)
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
    if let Some((table, bucket)) = missing.first() {
        anyhow::bail!(JobFailure::MissingUpstream(format!(
            "`{}` for {date} is not complete ({} partitions missing, e.g. bucket {bucket}): \
             run `sipline portfolio value --date {date}` for every shard first",
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

/// Copies one bucket at a time, so memory holds one bucket's rows whatever the universe size.
async fn copy_table(
    conn: &mut PgConnection,
    statement: &str,
    warehouse: &Warehouse,
    table: Table,
    date: NaiveDate,
    date_column: Option<&str>,
) -> anyhow::Result<u64> {
    let mut copy = conn.copy_in_raw(statement).await?;
    let mut rows = 0;
    for part in date_buckets(date) {
        let read = match warehouse.read(table, part).await {
            Ok(read) => read.unwrap_or_default(),
            Err(e) => {
                let _ = copy.abort(e.to_string()).await;
                return Err(e.into());
            }
        };
        let batches = match date_column {
            Some(name) => read
                .iter()
                .map(|b| with_date(b, name, date))
                .collect::<anyhow::Result<Vec<_>>>()?,
            None => read,
        };
        match send_batches(&mut copy, &batches).await {
            Ok(sent) => rows += sent,
            Err(e) => {
                let _ = copy.abort(e.to_string()).await;
                return Err(e.into());
            }
        }
    }
    copy.finish().await?;
    Ok(rows)
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
) -> anyhow::Result<Loaded> {
    // The date's rows replace whatever an earlier publish of it left.
    let mut replaced = [0; 2];
    for (rows, (delete, copy, table, date_column)) in replaced.iter_mut().zip([
        (
            DELETE_SNAPSHOTS,
            COPY_SNAPSHOTS,
            Table::PortfolioSnapshots,
            "as_of",
        ),
        (
            DELETE_INVESTMENTS,
            COPY_INVESTMENTS,
            Table::Investments,
            "exec_date",
        ),
    ]) {
        sqlx::query(delete).bind(date).execute(&mut *tx).await?;
        *rows = copy_table(tx, copy, warehouse, table, date, Some(date_column))
            .await
            .with_context(|| format!("loading {}", table.name()))?;
    }
    let [snapshots, investments] = replaced;
    sqlx::query(STAGE_EVENTS).execute(&mut *tx).await?;
    let events = copy_table(tx, COPY_EVENTS, warehouse, Table::SipEvents, date, None)
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

/// Builds the date's partition as a stand-alone table: load, then the key index (cheaper
/// after the load than during it), with a CHECK that lets the attach skip its scan.
async fn stage(
    warehouse: &Warehouse,
    pool: &PgPool,
    swapped: Swapped,
    date: NaiveDate,
) -> anyhow::Result<u64> {
    let mut conn = pool.acquire().await?;
    let stage = swapped.stage(date);
    let parent = swapped.parent();
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
    let rows = match swapped {
        Swapped::Lines => copy_table(
            &mut conn,
            &format!(
                "COPY {stage} (user_id, scheme_code, units, invested, nav_date, nav, current_value, \
                 weight_pct, xirr, day_change, as_of) FROM STDIN (FORMAT csv)"
            ),
            warehouse,
            Table::PortfolioLines,
            date,
            Some("as_of"),
        )
        .await
        .context("loading portfolio_lines")?,
        Swapped::Graphs => copy_graphs(&mut conn, &stage, warehouse, date)
            .await
            .context("loading visibility_graphs")?,
    };
    sqlx::query(execute_sql(format!(
        "ALTER TABLE {stage} ADD PRIMARY KEY ({})",
        swapped.key()
    )))
    .execute(&mut *conn)
    .await?;
    Ok(rows)
}

/// Replaces the date's partition with the staged table (inside the publish transaction).
async fn swap_in(tx: &mut PgConnection, swapped: Swapped, date: NaiveDate) -> anyhow::Result<()> {
    let parent = swapped.parent();
    let partition = swapped.partition(date);
    let stage = swapped.stage(date);
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
        format!("ALTER TABLE {parent} ATTACH PARTITION {partition} FOR VALUES IN ('{date}')"),
    ] {
        sqlx::query(execute_sql(statement))
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Drops what the serving store no longer keeps: lines and charts of dates older than the two
/// latest publications, and investments older than the kept months.
async fn drop_expired(
    conn: &mut PgConnection,
    date: NaiveDate,
    options: PublishOptions,
) -> anyhow::Result<usize> {
    let kept: Vec<NaiveDate> = sqlx::query_scalar(KEPT_DATES).fetch_all(&mut *conn).await?;
    let mut dropped = 0;
    for swapped in [Swapped::Lines, Swapped::Graphs] {
        let partitions: Vec<String> = sqlx::query_scalar(LIST_PARTITIONS)
            .bind(swapped.parent())
            .fetch_all(&mut *conn)
            .await?;
        let keep: Vec<String> = kept.iter().map(|d| swapped.partition(*d)).collect();
        for partition in partitions.iter().filter(|p| !keep.contains(p)) {
            sqlx::query(execute_sql(format!("DROP TABLE {partition}")))
                .execute(&mut *conn)
                .await?;
            dropped += 1;
        }
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

/// The API's chart documents from `portfolio_charts`: per user, `pie` (by scheme, category and
/// fund house), `line` and `bar`, money as exact decimal strings.
async fn copy_graphs(
    conn: &mut PgConnection,
    stage: &str,
    warehouse: &Warehouse,
    date: NaiveDate,
) -> anyhow::Result<u64> {
    let statement =
        format!("COPY {stage} (user_id, graph_type, config, as_of) FROM STDIN (FORMAT csv)");
    let mut copy = conn.copy_in_raw(&statement).await?;
    let mut rows = 0;
    for part in date_buckets(date) {
        let encoded = match warehouse.read(Table::PortfolioCharts, part).await {
            Ok(read) => graphs_csv(&read.unwrap_or_default(), date),
            Err(e) => Err(e.into()),
        };
        let (buffer, count) = match encoded {
            Ok(encoded) => encoded,
            Err(e) => {
                let _ = copy.abort(e.to_string()).await;
                return Err(e);
            }
        };
        if let Err(e) = copy.send(buffer.into_bytes()).await {
            let _ = copy.abort(e.to_string()).await;
            return Err(e.into());
        }
        rows += count;
    }
    copy.finish().await?;
    Ok(rows)
}

/// One chart's series, column-oriented as chart libraries take them: the keys (slice labels
/// or point dates, already JSON) and the money columns (exact decimal strings).
#[derive(Default)]
struct Series {
    keys: String,
    invested: String,
    value: String,
}

impl Series {
    /// `key` is JSON already (a string or `null`); money goes in as a decimal string.
    fn push(&mut self, key: &str, invested: &str, value: &str) {
        let separator = if self.keys.is_empty() { "" } else { "," };
        let _ = write!(self.keys, "{separator}{key}");
        let _ = write!(self.invested, "{separator}\"{invested}\"");
        let _ = write!(self.value, "{separator}\"{value}\"");
    }

    /// `"<key>":[…],"invested":[…]` and, with `value`, `,"value":[…]`.
    fn json(&self, key: &str, value: bool) -> String {
        let mut out = format!(r#""{key}":[{}],"invested":[{}]"#, self.keys, self.invested);
        if value {
            let _ = write!(out, r#","value":[{}]"#, self.value);
        }
        out
    }
}

/// One user's charts as they accumulate.
#[derive(Default)]
struct UserGraphs {
    pie_scheme: Series,
    pie_category: Series,
    pie_fund_house: Series,
    line: Series,
    bar: Series,
}

impl UserGraphs {
    /// Appends the user's CSV rows; returns how many.
    fn write_csv(&mut self, out: &mut String, user_id: i64, date: NaiveDate) -> u64 {
        let documents = [
            (
                GraphType::Pie,
                format!(
                    r#"{{"as_of":"{date}","by_scheme":{{{}}},"by_category":{{{}}},"by_fund_house":{{{}}}}}"#,
                    self.pie_scheme.json("label", true),
                    self.pie_category.json("label", true),
                    self.pie_fund_house.json("label", true)
                ),
            ),
            (
                GraphType::Line,
                format!(r#"{{"as_of":"{date}",{}}}"#, self.line.json("period", true)),
            ),
            (
                GraphType::Bar,
                format!(r#"{{"as_of":"{date}",{}}}"#, self.bar.json("period", false)),
            ),
        ];
        for (graph_type, config) in &documents {
            let _ = writeln!(
                out,
                "{user_id},{},\"{}\",{date}",
                graph_type.as_str(),
                config.replace('"', "\"\"")
            );
        }
        *self = UserGraphs::default();
        documents.len() as u64
    }
}

/// Rows are in `(user_id, chart, seq)` order, so each user's charts are contiguous.
fn graphs_csv(batches: &[RecordBatch], date: NaiveDate) -> anyhow::Result<(String, u64)> {
    let mut out = String::new();
    let mut rows = 0;
    let mut current: Option<i64> = None;
    let mut graphs = UserGraphs::default();
    for batch in batches {
        let user_ids: &Int64Array = batch.column(0).as_primitive::<Int64Type>();
        let charts: &StringArray = batch.column(1).as_string::<i32>();
        let labels: &StringArray = batch.column(3).as_string::<i32>();
        let periods: &Date32Array = batch.column(4).as_primitive::<Date32Type>();
        let invested: &Decimal128Array = batch.column(5).as_primitive();
        let values: &Decimal128Array = batch.column(6).as_primitive();
        for i in 0..batch.num_rows() {
            let user_id = user_ids.value(i);
            if current != Some(user_id) {
                if let Some(previous) = current {
                    rows += graphs.write_csv(&mut out, previous, date);
                }
                current = Some(user_id);
            }
            let label = if labels.is_null(i) {
                String::from("null")
            } else {
                serde_json::to_string(labels.value(i))?
            };
            let period = match periods.is_null(i) {
                true => None,
                false => periods.value_as_date(i),
            }
            .map_or_else(|| String::from("null"), |d| format!("\"{d}\""));
            let invested = invested.value_as_string(i);
            let value = values.value_as_string(i);
            let kind = charts.value(i);
            match ChartKind::parse(kind) {
                Some(ChartKind::PieScheme) => graphs.pie_scheme.push(&label, &invested, &value),
                Some(ChartKind::PieCategory) => graphs.pie_category.push(&label, &invested, &value),
                Some(ChartKind::PieFundHouse) => {
                    graphs.pie_fund_house.push(&label, &invested, &value)
                }
                Some(ChartKind::Line) => graphs.line.push(&period, &invested, &value),
                // A bar is the amount invested in the month, which the row holds as `value`.
                Some(ChartKind::Bar) => graphs.bar.push(&period, &value, ""),
                None => anyhow::bail!("portfolio_charts: unknown chart kind {kind:?}"),
            }
        }
    }
    if let Some(user_id) = current {
        rows += graphs.write_csv(&mut out, user_id, date);
    }
    Ok((out, rows))
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
    use pipeline::money::Paise;
    use pipeline::schema::portfolio_charts_to_batch;
    use pipeline::valuation::{ChartKind, ChartPoint};

    fn point(
        user_id: i64,
        chart: ChartKind,
        seq: i32,
        key: &str,
        invested: i64,
        value: i64,
    ) -> ChartPoint {
        let period = NaiveDate::parse_from_str(key, "%Y-%m-%d").ok();
        ChartPoint {
            user_id,
            chart,
            seq,
            label: period.is_none().then(|| Arc::from(key)),
            period,
            invested: Paise(invested),
            value: Paise(value),
        }
    }

    #[test]
    fn chart_rows_become_one_json_document_per_user_and_graph_type() {
        let date = NaiveDate::from_ymd_opt(2025, 6, 27).unwrap();
        let rows = [
            point(
                7,
                ChartKind::PieScheme,
                0,
                "Fund \"A\" - Growth",
                150_000,
                160_050,
            ),
            point(7, ChartKind::PieScheme, 1, "Fund B", 50_000, 49_999),
            point(7, ChartKind::PieCategory, 0, "Equity", 200_000, 210_049),
            point(7, ChartKind::PieFundHouse, 0, "House", 200_000, 210_049),
            point(7, ChartKind::Line, 0, "2025-05-31", 100_000, 101_000),
            point(7, ChartKind::Line, 1, "2025-06-27", 200_000, 210_049),
            point(7, ChartKind::Bar, 0, "2025-05-01", 0, 100_000),
            point(7, ChartKind::Bar, 1, "2025-06-01", 0, 100_000),
            point(8, ChartKind::Line, 0, "2025-06-27", 10_000, 9_000),
        ];
        let batch = portfolio_charts_to_batch(&rows).unwrap();
        let (csv, count) = graphs_csv(&[batch], date).unwrap();
        assert_eq!(count, 6);
        let mut reader = csv.lines().map(|line| {
            let (user, rest) = line.split_once(',').unwrap();
            let (graph_type, rest) = rest.split_once(',').unwrap();
            let (quoted, as_of) = rest.rsplit_once(',').unwrap();
            assert_eq!(as_of, "2025-06-27");
            let json = quoted[1..quoted.len() - 1].replace("\"\"", "\"");
            let value: serde_json::Value = serde_json::from_str(&json).unwrap();
            (user.to_string(), graph_type.to_string(), value)
        });
        let (user, graph_type, pie) = reader.next().unwrap();
        assert_eq!((user.as_str(), graph_type.as_str()), ("7", "pie"));
        assert_eq!(
            pie,
            serde_json::json!({
                "as_of": "2025-06-27",
                "by_scheme": {"label": ["Fund \"A\" - Growth", "Fund B"], "invested": ["1500.00", "500.00"], "value": ["1600.50", "499.99"]},
                "by_category": {"label": ["Equity"], "invested": ["2000.00"], "value": ["2100.49"]},
                "by_fund_house": {"label": ["House"], "invested": ["2000.00"], "value": ["2100.49"]}
            })
        );
        let (_, _, line) = reader.next().unwrap();
        assert_eq!(
            line,
            serde_json::json!({"as_of": "2025-06-27", "period": ["2025-05-31", "2025-06-27"],
                "invested": ["1000.00", "2000.00"], "value": ["1010.00", "2100.49"]})
        );
        let (_, _, bar) = reader.next().unwrap();
        assert_eq!(
            bar,
            serde_json::json!({"as_of": "2025-06-27", "period": ["2025-05-01", "2025-06-01"],
                "invested": ["1000.00", "1000.00"]})
        );
        let (user, graph_type, line) = reader.nth(1).unwrap();
        assert_eq!((user.as_str(), graph_type.as_str()), ("8", "line"));
        assert_eq!(line["value"], serde_json::json!(["90.00"]));
    }
}
