//! `sipline housekeeping`: what the serving store no longer needs goes, so that at 10M users it
//! levels off instead of growing for ever (issue 35 §3).
//!
//! - Idempotency keys older than their window (a retry after it is a new request anyway).
//! - Notifications settled (delivered or dead) more than `--notification-days` ago, with their
//!   deliveries: archived first to the warehouse's `notifications_archive` (one partition per
//!   day they were created), then deleted — exactly the rows archived. A day is archived only
//!   when every notification of it is settled, so a day's partition is written once with all
//!   its rows and never rewritten with fewer; a day still holding a stuck delivery waits, and
//!   the summary says so.
//! - `job_runs` older than `--job-run-days`.
//! - Daily `portfolio_snapshots` older than `--snapshot-days`, thinned to each month's last
//!   published date (what a long history chart plots), and those beyond `--snapshot-history-days`
//!   entirely; with each dropped date its `publications` row (a retired publication: the
//!   history route reads only published dates). A date is one partition, dropped whole in one
//!   transaction with its row, under the publish lock (a running publish: left for the next
//!   run). The warehouse keeps every date for the data team.
//!
//! Re-running is safe at any point: a crash between a day's archive and its delete leaves the
//! rows in PostgreSQL, and the re-run writes the same bytes again before deleting them.

use std::fmt;
use std::sync::Arc;

use anyhow::Context;
use chrono::NaiveDate;
use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use sqlx::PgPool;
use warehouse::{Part, Table, Warehouse};

// Snapshots are not dropped under a publish that is attaching a date.
use crate::publish::{PUBLISH_LOCK, PUBLISH_UNLOCK};

/// How long each kind of row is kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub idempotency_hours: i32,
    pub notification_days: i32,
    pub job_run_days: i32,
    /// Daily portfolio snapshots kept in full, counted back from the latest publication.
    pub snapshot_days: i32,
    /// Month-end snapshots kept this far back (the history route's longest range).
    pub snapshot_history_days: i32,
    /// What the retentions count back from: the program's clock (`--now` in a test or a
    /// replay), not the server's `now()`.
    pub now: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Default)]
pub struct HousekeepingSummary {
    pub idempotency_keys: u64,
    pub notifications_archived: u64,
    pub days_archived: u64,
    /// Days past the retention that still hold an unsettled notification.
    pub days_waiting: u64,
    pub job_runs: u64,
    /// Records of NAV alerts fired (migration 0033) past the notifications' retention.
    pub alert_firings: u64,
    /// Published dates whose snapshots (and publication row) were dropped.
    pub snapshot_dates: u64,
    /// Whether a running publish held its lock, so snapshots were left for the next run.
    pub snapshots_deferred: bool,
}

impl fmt::Display for HousekeepingSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "housekeeping ok: idempotency_keys={} notifications_archived={} days_archived={} days_waiting={} job_runs={} alert_firings={} snapshot_dates={}{}",
            self.idempotency_keys,
            self.notifications_archived,
            self.days_archived,
            self.days_waiting,
            self.job_runs,
            self.alert_firings,
            self.snapshot_dates,
            if self.snapshots_deferred {
                " snapshots=deferred (a publish is running)"
            } else {
                ""
            }
        )
    }
}

const EXPIRED_KEYS: &str =
    "DELETE FROM idempotency_keys WHERE created_at < $2::timestamptz - make_interval(hours => $1::integer)";

/// Which NAV alerts fired for a NAV date, kept as long as the notifications they made.
const OLD_ALERT_FIRINGS: &str = "DELETE FROM nav_alert_firings \
     WHERE nav_date < ($2::timestamptz AT TIME ZONE 'Asia/Kolkata')::date - $1::integer";

const OLD_JOB_RUNS: &str =
    "DELETE FROM job_runs WHERE finished_at < $2::timestamptz - make_interval(days => $1::integer)";

/// Days (UTC) wholly before the retention, and whether every notification of each is settled.
const DAYS_PAST_RETENTION: &str = "SELECT (created_at AT TIME ZONE 'UTC')::date AS day, \
       bool_and(status IN ('delivered', 'dead')) AS settled \
     FROM notifications \
     WHERE created_at < ((($2::timestamptz AT TIME ZONE 'UTC')::date - $1::integer)::timestamp AT TIME ZONE 'UTC') \
     GROUP BY 1 ORDER BY 1";

/// One day's notifications as archived: times as microseconds, deliveries as JSON in a fixed
/// key and channel order, so the same rows always give the same bytes.
const DAY_NOTIFICATIONS: &str = "SELECT n.notification_id, n.event_key, n.user_id, n.kind, \
       n.payload::text AS payload, n.status, \
       (extract(epoch FROM n.created_at) * 1000000)::bigint AS created_at, \
       (extract(epoch FROM n.delivered_at) * 1000000)::bigint AS delivered_at, \
       coalesce((SELECT json_agg(json_build_object( \
             'channel', d.channel, 'status', d.status, 'attempts', d.attempts, \
             'last_error', d.last_error, \
             'delivered_at', to_char(d.delivered_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')) \
           ORDER BY d.channel)::text \
         FROM notification_deliveries d WHERE d.notification_id = n.notification_id), '[]') AS deliveries \
     FROM notifications n \
     WHERE n.created_at >= ($1::date::timestamp AT TIME ZONE 'UTC') \
       AND n.created_at < (($1::date + 1)::timestamp AT TIME ZONE 'UTC') \
     ORDER BY n.notification_id";

/// Published dates past the retention: older than `$1` days before the latest publication and
/// not the last published date of their month, or older than `$2` days. The two latest are
/// never retired (the served date and the lines' previous day).
const RETIRED_DATES: &str = "WITH p AS ( \
       SELECT as_of, max(as_of) OVER () AS latest, \
              as_of = max(as_of) OVER (PARTITION BY date_trunc('month', as_of)) AS month_end, \
              row_number() OVER (ORDER BY as_of DESC) AS recency \
       FROM publications) \
     SELECT as_of FROM p \
     WHERE recency > 2 AND (as_of < latest - $2::integer OR (as_of < latest - $1::integer AND NOT month_end)) \
     ORDER BY as_of";

/// A dropped date's partition is gone; months before 0017 (plain) or a hypertable hold rows.
const DELETE_SNAPSHOT_ROWS: &str = "DELETE FROM portfolio_snapshots WHERE as_of = $1";
const RETIRE_PUBLICATION: &str = "DELETE FROM publications WHERE as_of = $1";
/// Months of `portfolio_snapshots` partitioned by date whose every date has gone.
const EMPTY_SNAPSHOT_MONTHS: &str = "SELECT c.relname::text FROM pg_inherits i \
       JOIN pg_class c ON c.oid = i.inhrelid \
     WHERE i.inhparent = 'portfolio_snapshots'::regclass AND c.relkind = 'p' \
       AND NOT EXISTS (SELECT 1 FROM pg_inherits d WHERE d.inhparent = c.oid) \
       AND c.relname::text < (SELECT 'portfolio_snapshots_y' || to_char(max(as_of), 'YYYY\"m\"MM') \
                              FROM publications)";
/// A partition drop locks the parent: a long reader must not queue every other reader behind
/// it; the date is left for the next run instead.
const DROP_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '10s'";

const DELETE_ARCHIVED: &str = "DELETE FROM notifications WHERE notification_id = ANY($1) \
       AND status IN ('delivered', 'dead')";

#[derive(sqlx::FromRow)]
struct ArchivedNotification {
    notification_id: i64,
    event_key: String,
    user_id: i64,
    kind: String,
    payload: String,
    status: String,
    created_at: i64,
    delivered_at: Option<i64>,
    deliveries: String,
}

pub async fn housekeep(
    warehouse: &Warehouse,
    pool: &PgPool,
    retention: Retention,
) -> anyhow::Result<HousekeepingSummary> {
    let mut summary = HousekeepingSummary {
        idempotency_keys: sqlx::query(EXPIRED_KEYS)
            .bind(retention.idempotency_hours)
            .bind(retention.now)
            .execute(pool)
            .await
            .context("deleting expired idempotency keys")?
            .rows_affected(),
        ..HousekeepingSummary::default()
    };
    let days: Vec<(NaiveDate, Option<bool>)> = sqlx::query_as(DAYS_PAST_RETENTION)
        .bind(retention.notification_days)
        .bind(retention.now)
        .fetch_all(pool)
        .await
        .context("finding notification days past their retention")?;
    for (day, settled) in days {
        if settled != Some(true) {
            tracing::warn!(%day, "notifications past their retention still being delivered: the day waits");
            summary.days_waiting += 1;
            continue;
        }
        let rows: Vec<ArchivedNotification> = sqlx::query_as(DAY_NOTIFICATIONS)
            .bind(day)
            .fetch_all(pool)
            .await
            .with_context(|| format!("reading the notifications of {day}"))?;
        let batch = archive_batch(&rows)?;
        warehouse
            .write(Table::NotificationsArchive, Part::date(day), &[batch])
            .await
            .with_context(|| format!("archiving the notifications of {day}"))?;
        let ids: Vec<i64> = rows.iter().map(|r| r.notification_id).collect();
        let deleted = sqlx::query(DELETE_ARCHIVED)
            .bind(&ids)
            .execute(pool)
            .await
            .with_context(|| format!("deleting the archived notifications of {day}"))?
            .rows_affected();
        summary.notifications_archived += deleted;
        summary.days_archived += 1;
    }
    summary.job_runs = sqlx::query(OLD_JOB_RUNS)
        .bind(retention.job_run_days)
        .bind(retention.now)
        .execute(pool)
        .await
        .context("deleting old job runs")?
        .rows_affected();
    summary.alert_firings = sqlx::query(OLD_ALERT_FIRINGS)
        .bind(retention.notification_days)
        .bind(retention.now)
        .execute(pool)
        .await
        .context("deleting old NAV alert firings")?
        .rows_affected();
    retire_snapshots(pool, retention, &mut summary).await?;
    Ok(summary)
}

/// Drops the snapshot dates past the retention, each with its publication row, under the
/// publish lock.
async fn retire_snapshots(
    pool: &PgPool,
    retention: Retention,
    summary: &mut HousekeepingSummary,
) -> anyhow::Result<()> {
    // A session lock: held on this connection until unlocked (or the connection closes).
    let mut conn = pool.acquire().await?;
    let locked: bool = sqlx::query_scalar(PUBLISH_LOCK)
        .fetch_one(&mut *conn)
        .await
        .context("taking the publish lock")?;
    if !locked {
        tracing::warn!("a publish is running: old snapshots are left for the next housekeeping");
        summary.snapshots_deferred = true;
        return Ok(());
    }
    let retired = retire_locked(&mut conn, retention, summary).await;
    // Unlocked whatever happened; a failed unlock ends with the connection anyway.
    let _ = sqlx::query(PUBLISH_UNLOCK).execute(&mut *conn).await;
    retired
}

async fn retire_locked(
    conn: &mut sqlx::PgConnection,
    retention: Retention,
    summary: &mut HousekeepingSummary,
) -> anyhow::Result<()> {
    let dates: Vec<NaiveDate> = sqlx::query_scalar(RETIRED_DATES)
        .bind(retention.snapshot_days)
        .bind(retention.snapshot_history_days)
        .fetch_all(&mut *conn)
        .await
        .context("finding snapshot dates past their retention")?;
    for date in dates {
        let partition = format!("portfolio_snapshots_d{}", date.format("%Y%m%d"));
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        sqlx::query(DROP_LOCK_TIMEOUT).execute(&mut *tx).await?;
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(&partition)
            .fetch_one(&mut *tx)
            .await?;
        let dropped = if exists {
            // Built from a date: no quoting needed.
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {partition}")))
                .execute(&mut *tx)
                .await
                .map(|_| ())
        } else {
            sqlx::query(DELETE_SNAPSHOT_ROWS)
                .bind(date)
                .execute(&mut *tx)
                .await
                .map(|_| ())
        };
        match dropped {
            Ok(()) => {}
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => {
                tracing::warn!(%date, "a long read held the snapshots: the date is left for the next run");
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("dropping the snapshots of {date}")),
        }
        sqlx::query(RETIRE_PUBLICATION)
            .bind(date)
            .execute(&mut *tx)
            .await?;
        tx.commit()
            .await
            .with_context(|| format!("retiring the publication of {date}"))?;
        summary.snapshot_dates += 1;
    }
    // Month partitions left without a date go too (names sort as their months do; a month
    // published into again is made again by `sipline_ensure_snapshot_month`).
    if summary.snapshot_dates > 0 {
        let months: Vec<String> = sqlx::query_scalar(EMPTY_SNAPSHOT_MONTHS)
            .fetch_all(&mut *conn)
            .await?;
        for month in months {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            sqlx::query(DROP_LOCK_TIMEOUT).execute(&mut *tx).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {month}")))
                .execute(&mut *tx)
                .await
                .with_context(|| format!("dropping the empty month {month}"))?;
            tx.commit().await?;
        }
    }
    Ok(())
}

fn archive_batch(rows: &[ArchivedNotification]) -> anyhow::Result<RecordBatch> {
    let utc = |values: Vec<Option<i64>>| -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.notification_id),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.event_key.as_str()),
        )),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.user_id))),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.kind.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.payload.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.status.as_str()),
        )),
        utc(rows.iter().map(|r| Some(r.created_at)).collect()),
        utc(rows.iter().map(|r| r.delivered_at).collect()),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.deliveries.as_str()),
        )),
    ];
    Ok(RecordBatch::try_new(
        warehouse::notifications_archive_file_schema(),
        columns,
    )?)
}
