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

/// How long each kind of row is kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub idempotency_hours: i32,
    pub notification_days: i32,
    pub job_run_days: i32,
}

#[derive(Debug, Default)]
pub struct HousekeepingSummary {
    pub idempotency_keys: u64,
    pub notifications_archived: u64,
    pub days_archived: u64,
    /// Days past the retention that still hold an unsettled notification.
    pub days_waiting: u64,
    pub job_runs: u64,
}

impl fmt::Display for HousekeepingSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "housekeeping ok: idempotency_keys={} notifications_archived={} days_archived={} days_waiting={} job_runs={}",
            self.idempotency_keys,
            self.notifications_archived,
            self.days_archived,
            self.days_waiting,
            self.job_runs
        )
    }
}

const EXPIRED_KEYS: &str =
    "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1)";

const OLD_JOB_RUNS: &str =
    "DELETE FROM job_runs WHERE finished_at < now() - make_interval(days => $1)";

/// Days (UTC) wholly before the retention, and whether every notification of each is settled.
const DAYS_PAST_RETENTION: &str = "SELECT (created_at AT TIME ZONE 'UTC')::date AS day, \
       bool_and(status IN ('delivered', 'dead')) AS settled \
     FROM notifications \
     WHERE created_at < (((now() AT TIME ZONE 'UTC')::date - $1)::timestamp AT TIME ZONE 'UTC') \
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
            .execute(pool)
            .await
            .context("deleting expired idempotency keys")?
            .rows_affected(),
        ..HousekeepingSummary::default()
    };
    let days: Vec<(NaiveDate, Option<bool>)> = sqlx::query_as(DAYS_PAST_RETENTION)
        .bind(retention.notification_days)
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
        .execute(pool)
        .await
        .context("deleting old job runs")?
        .rows_affected();
    Ok(summary)
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
