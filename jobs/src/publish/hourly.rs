//! `sipline publish --hourly --date D`: the latest `portfolio value --hourly` run of D into the
//! serving store, incrementally.
//!
//! What the API shows a user now is their latest daily snapshot, overlaid by their newest
//! intraday point of D if an earlier hour of D changed them. The hour's valuation is compared
//! with exactly that, user by user, in Rust: the daily snapshot is read from the warehouse file
//! of the published date, the intraday points from PostgreSQL (a few percent of the users), so
//! only the users whose numbers differ are copied into PostgreSQL. An hour in which a late or
//! corrected NAV moved 5% of the users writes 5% of the rows.
//!
//! The rows and the hour's `intraday_publications` entry are written in one transaction that
//! ends with the publish channel's NOTIFY (the API drops its cached bodies on it), so a reader
//! sees the previous hour or this one. Re-publishing an hour writes nothing. An hour older than
//! what is published, or a date older than the latest daily publication (which supersedes
//! every intraday figure up to its date), is skipped, not an error: the next hour supersedes
//! a missed one anyway.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use anyhow::Context;
use chrono::NaiveDate;
use datafusion::arrow::array::{
    Array, AsArray, BooleanArray, Date32Array, Decimal128Array, Int32Array, Int64Array,
    PrimitiveArray, RecordBatch,
};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, Date32Type, Decimal128Type, Int32Type, Int64Type,
};
use futures::{StreamExt, TryStreamExt};
use serving::PUBLISH_CHANNEL;
use sqlx::{Connection, PgConnection, PgPool};
use warehouse::{Part, Table, Warehouse, BUCKETS};

use super::{complete_or_missing_upstream, release_publish_lock, take_publish_lock};
use crate::plumbing::exit::JobFailure;
use crate::plumbing::postgres::BinaryCopy;

/// The columns compared and published (`xirr` is not computed hourly). The daily snapshot's
/// are the same without `hour`, which comes first.
const HOURLY_COLUMNS: [&str; 8] = [
    "hour",
    "user_id",
    "invested",
    "current_value",
    "gain",
    "abs_return_pct",
    "schemes",
    "nav_date",
];

const SERVED_STATE: &str = "SELECT (SELECT max(as_of) FROM publications), \
       i.as_of, i.hour \
     FROM (SELECT 1) one LEFT JOIN LATERAL \
       (SELECT as_of, hour FROM intraday_publications ORDER BY as_of DESC, hour DESC LIMIT 1) i ON true";
/// Each user's newest intraday point of the date, as scaled integers (exact: `numeric(18,2)`
/// times 100 fits a bigint), compared with the hour's Parquet decimals.
const SERVED_POINTS: &str = "SELECT DISTINCT ON (user_id) user_id, (invested * 100)::bigint, \
       (current_value * 100)::bigint, (gain * 100)::bigint, (abs_return_pct * 10000)::bigint, \
       schemes, nav_date \
     FROM portfolio_intraday WHERE as_of = $1 ORDER BY user_id, hour DESC";
const ENSURE_DAY: &str = "SELECT sipline_ensure_intraday_day($1)";
const STAGE: &str = "CREATE TEMP TABLE portfolio_intraday_stage (hour integer, user_id bigint, \
     invested numeric(18,2), current_value numeric(18,2), gain numeric(18,2), \
     abs_return_pct numeric(18,4), schemes integer, nav_date date) ON COMMIT DROP";
const COPY_STAGE: &str = "COPY portfolio_intraday_stage FROM STDIN (FORMAT binary)";
const UPSERT_POINTS: &str = "INSERT INTO portfolio_intraday \
       (as_of, hour, user_id, invested, current_value, gain, abs_return_pct, schemes, nav_date) \
     SELECT $1::date, hour, user_id, invested, current_value, gain, abs_return_pct, schemes, nav_date \
     FROM portfolio_intraday_stage ORDER BY user_id \
     ON CONFLICT (user_id, as_of, hour) DO UPDATE SET invested = EXCLUDED.invested, \
       current_value = EXCLUDED.current_value, gain = EXCLUDED.gain, \
       abs_return_pct = EXCLUDED.abs_return_pct, schemes = EXCLUDED.schemes, \
       nav_date = EXCLUDED.nav_date";
const RECORD_HOUR: &str = "INSERT INTO intraday_publications (as_of, hour, users, changed) \
     VALUES ($1, $2, $3, $4) \
     ON CONFLICT (as_of, hour) DO UPDATE SET published_at = now(), users = EXCLUDED.users, \
       changed = intraday_publications.changed + EXCLUDED.changed";
const NOTIFY: &str = "SELECT pg_notify($1, $2)";
/// Buckets read and compared at once: two cores decode, a few reads wait on storage.
const BUCKETS_AT_ONCE: usize = 4;

/// What an hourly publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HourlyOutcome {
    /// The hour's changed users were written and the hour recorded.
    Published,
    /// The hour was already published and nothing differs from it: nothing written.
    Unchanged,
    /// Something newer is served; the reason says what.
    Superseded(String),
}

#[derive(Debug)]
pub struct HourlySummary {
    pub date: NaiveDate,
    /// The hour the valuation carries (`None` when skipped before reading it).
    pub hour: Option<u32>,
    /// Users valued in the hour.
    pub users: u64,
    /// Users whose numbers differ from what the API showed them (rows written).
    pub changed: u64,
    /// The daily publication the comparison started from.
    pub daily: Option<NaiveDate>,
    pub outcome: HourlyOutcome,
}

impl fmt::Display for HourlySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcome = match &self.outcome {
            HourlyOutcome::Published => "ok".to_string(),
            HourlyOutcome::Unchanged => "unchanged".to_string(),
            HourlyOutcome::Superseded(why) => format!("skipped ({why})"),
        };
        write!(
            f,
            "publish hourly {outcome}: date={} hour={} users={} changed={} daily={}",
            self.date,
            self.hour.map(|h| h.to_string()).unwrap_or_default(),
            self.users,
            self.changed,
            self.daily.map(|d| d.to_string()).unwrap_or_default()
        )
    }
}

/// A user's published numbers, as the scaled integers the Parquet decimals hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Figures {
    invested: i128,
    current_value: i128,
    gain: i128,
    abs_return_pct: Option<i128>,
    schemes: i32,
    /// Days since the Unix epoch.
    nav_date: Option<i32>,
}

/// The snapshot columns of a decoded batch (hourly or daily: the same names and types).
struct FigureColumns<'a> {
    user_id: &'a Int64Array,
    invested: &'a Decimal128Array,
    current_value: &'a Decimal128Array,
    gain: &'a Decimal128Array,
    abs_return_pct: &'a Decimal128Array,
    schemes: &'a Int32Array,
    nav_date: &'a Date32Array,
}

impl<'a> FigureColumns<'a> {
    fn of(batch: &'a RecordBatch, table: Table) -> anyhow::Result<Self> {
        Ok(Self {
            user_id: typed::<Int64Type>(batch, table, "user_id")?,
            invested: typed::<Decimal128Type>(batch, table, "invested")?,
            current_value: typed::<Decimal128Type>(batch, table, "current_value")?,
            gain: typed::<Decimal128Type>(batch, table, "gain")?,
            abs_return_pct: typed::<Decimal128Type>(batch, table, "abs_return_pct")?,
            schemes: typed::<Int32Type>(batch, table, "schemes")?,
            nav_date: typed::<Date32Type>(batch, table, "nav_date")?,
        })
    }

    fn figures(&self, row: usize) -> Figures {
        Figures {
            invested: self.invested.value(row),
            current_value: self.current_value.value(row),
            gain: self.gain.value(row),
            abs_return_pct: (!self.abs_return_pct.is_null(row))
                .then(|| self.abs_return_pct.value(row)),
            schemes: self.schemes.value(row),
            nav_date: (!self.nav_date.is_null(row)).then(|| self.nav_date.value(row)),
        }
    }
}

/// A column of `batch` as the primitive array its table's schema says it is.
fn typed<'a, T: ArrowPrimitiveType>(
    batch: &'a RecordBatch,
    table: Table,
    name: &str,
) -> anyhow::Result<&'a PrimitiveArray<T>> {
    batch
        .column_by_name(name)
        .with_context(|| format!("`{}` has no column `{name}`", table.name()))?
        .as_primitive_opt::<T>()
        .with_context(|| format!("`{}`.{name} has an unexpected type", table.name()))
}

/// One bucket compared: the hours its rows carry, its users, and its changed rows.
struct BucketDiff {
    hours: BTreeSet<i32>,
    users: u64,
    changed: Vec<RecordBatch>,
}

pub async fn publish_hourly(
    warehouse: &Warehouse,
    pool: &PgPool,
    date: NaiveDate,
) -> anyhow::Result<HourlySummary> {
    check_inputs(warehouse, date).await?;
    let mut main = pool.acquire().await?;
    take_publish_lock(&mut main).await?;
    let result = publish_locked(warehouse, &mut main, date).await;
    release_publish_lock(&mut main).await;
    result
}

async fn publish_locked(
    warehouse: &Warehouse,
    main: &mut PgConnection,
    date: NaiveDate,
) -> anyhow::Result<HourlySummary> {
    let (daily, last_day, last_hour): (Option<NaiveDate>, Option<NaiveDate>, Option<i16>) =
        sqlx::query_as(SERVED_STATE).fetch_one(&mut *main).await?;
    let mut summary = HourlySummary {
        date,
        hour: None,
        users: 0,
        changed: 0,
        daily,
        outcome: HourlyOutcome::Published,
    };
    if let Some(daily) = daily.filter(|d| *d > date) {
        summary.outcome =
            HourlyOutcome::Superseded(format!("the daily valuation of {daily} is published"));
        return Ok(summary);
    }
    if let Some(day) = last_day.filter(|d| *d > date) {
        summary.outcome = HourlyOutcome::Superseded(format!("an hour of {day} is published"));
        return Ok(summary);
    }
    // What the API shows now: the daily snapshot, and D's intraday points over it.
    let served: HashMap<i64, Figures> = if last_day == Some(date) {
        served_points(main, date).await?
    } else {
        HashMap::new()
    };

    // Creating the partition locks the parent against readers: its own short transaction.
    sqlx::query(ENSURE_DAY)
        .bind(date)
        .execute(&mut *main)
        .await?;
    let mut tx = main.begin().await?;
    sqlx::query(STAGE).execute(&mut *tx).await?;
    // The changed rows are copied into the transaction's stage as each bucket is compared,
    // so memory holds a few buckets whatever share of the users changed; a skip below
    // rolls the stage back.
    let started = std::time::Instant::now();
    let compared = copy_changed(warehouse, &mut tx, date, daily, Arc::new(served)).await?;
    tracing::info!(
        users = compared.users,
        changed = compared.changed,
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "hour compared with what is served"
    );
    let hour = single_hour(date, &compared.hours)?;
    summary.hour = Some(hour);
    summary.users = compared.users;
    let this = (date, i16::try_from(hour).unwrap_or(i16::MAX));
    let last = last_day.zip(last_hour);
    if let Some((day, hour)) = last.filter(|l| *l > this) {
        summary.outcome = HourlyOutcome::Superseded(format!("hour {hour} of {day} is published"));
        return Ok(summary);
    }
    if last == Some(this) && compared.changed == 0 {
        summary.outcome = HourlyOutcome::Unchanged;
        return Ok(summary);
    }
    summary.changed = compared.changed;
    sqlx::query(UPSERT_POINTS)
        .bind(date)
        .execute(&mut *tx)
        .await?;
    sqlx::query(RECORD_HOUR)
        .bind(date)
        .bind(this.1)
        .bind(i64::try_from(compared.users).unwrap_or(i64::MAX))
        .bind(i64::try_from(compared.changed).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
    sqlx::query(NOTIFY)
        .bind(PUBLISH_CHANNEL)
        .bind(serde_json::json!({ "as_of": date.to_string(), "hour": hour }).to_string())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(%date, hour, changed = compared.changed, "hour published");
    Ok(summary)
}

/// The one hour every shard's rows carry.
fn single_hour(date: NaiveDate, hours: &BTreeSet<i32>) -> anyhow::Result<u32> {
    match hours.iter().collect::<Vec<_>>().as_slice() {
        [hour] => Ok(u32::try_from(**hour).ok().filter(|h| *h < 24).ok_or_else(|| {
            JobFailure::BadInput(format!(
                "`portfolio_hourly` of {date} holds hour {hour}, not 0–23"
            ))
        })?),
        [] => Err(JobFailure::MissingUpstream(format!(
            "`portfolio_hourly` of {date} holds no rows: run `sipline portfolio value --hourly --date {date}` first"
        ))
        .into()),
        several => Err(JobFailure::MissingUpstream(format!(
            "the shards of `portfolio_hourly` for {date} were valued at different hours \
             ({several:?}): re-run `sipline portfolio value --hourly --date {date} --hour H` \
             for every shard"
        ))
        .into()),
    }
}

/// What comparing every bucket found.
#[derive(Debug, Default)]
struct Compared {
    hours: BTreeSet<i32>,
    users: u64,
    /// Rows copied into the stage.
    changed: u64,
}

/// Compares the buckets, a few at a time on the runtime's workers, and copies each one's
/// changed rows into the stage in bucket order.
async fn copy_changed(
    warehouse: &Warehouse,
    conn: &mut PgConnection,
    date: NaiveDate,
    daily: Option<NaiveDate>,
    served: Arc<HashMap<i64, Figures>>,
) -> anyhow::Result<Compared> {
    let mut copy = BinaryCopy::start(conn, COPY_STAGE).await?;
    let sent = async {
        let mut diffs = futures::stream::iter(0..BUCKETS)
            .map(|bucket| {
                let (warehouse, served) = (warehouse.clone(), Arc::clone(&served));
                // Decoding is CPU work: a task per bucket spreads it over the cores.
                tokio::spawn(
                    async move { diff_bucket(&warehouse, date, daily, bucket, &served).await },
                )
            })
            .buffered(BUCKETS_AT_ONCE);
        let mut compared = Compared::default();
        while let Some(joined) = diffs.next().await {
            let diff = joined.context("comparing a bucket")??;
            compared.hours.extend(diff.hours);
            compared.users += diff.users;
            compared.changed += copy.send(&diff.changed).await?;
        }
        anyhow::Ok(compared)
    }
    .await;
    copy.finish(sent).await
}

/// Every bucket of the date's hourly valuation must be there: publishing part of an hour
/// would show some users an older hour as the newest.
async fn check_inputs(warehouse: &Warehouse, date: NaiveDate) -> anyhow::Result<()> {
    complete_or_missing_upstream(
        warehouse,
        &[Table::PortfolioHourly],
        date,
        "sipline portfolio value --hourly",
    )
    .await
}

/// Each user's newest intraday point of `date`, as the API shows it.
async fn served_points(
    conn: &mut PgConnection,
    date: NaiveDate,
) -> anyhow::Result<HashMap<i64, Figures>> {
    type Row = (i64, i64, i64, i64, Option<i64>, i32, Option<NaiveDate>);
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).context("the epoch")?;
    sqlx::query_as::<_, Row>(SERVED_POINTS)
        .bind(date)
        .fetch(&mut *conn)
        .map_ok(|(user, invested, value, gain, pct, schemes, nav_date)| {
            let figures = Figures {
                invested: invested.into(),
                current_value: value.into(),
                gain: gain.into(),
                abs_return_pct: pct.map(i128::from),
                schemes,
                nav_date: nav_date.and_then(|d| i32::try_from((d - epoch).num_days()).ok()),
            };
            (user, figures)
        })
        .try_collect()
        .await
        .context("reading the served intraday points")
}

/// The rows of one bucket's hourly valuation whose numbers differ from what is served.
async fn diff_bucket(
    warehouse: &Warehouse,
    date: NaiveDate,
    daily: Option<NaiveDate>,
    bucket: u32,
    served: &HashMap<i64, Figures>,
) -> anyhow::Result<BucketDiff> {
    let hourly = warehouse
        .read_columns(
            Table::PortfolioHourly,
            Part::dated_bucket(date, bucket),
            &HOURLY_COLUMNS,
        )
        .await?
        .unwrap_or_default();
    let snapshots = match daily {
        Some(daily) => warehouse
            .read_columns(
                Table::PortfolioSnapshots,
                Part::dated_bucket(daily, bucket),
                &HOURLY_COLUMNS[1..],
            )
            .await?
            .with_context(|| {
                format!(
                    "the published date {daily} has no `portfolio_snapshots` in the warehouse \
                     (bucket {bucket}): the hour cannot be compared with what is served"
                )
            })?,
        None => Vec::new(),
    };
    let mut shown: HashMap<i64, Figures> =
        HashMap::with_capacity(snapshots.iter().map(|b| b.num_rows()).sum());
    for batch in &snapshots {
        let columns = FigureColumns::of(batch, Table::PortfolioSnapshots)?;
        for row in 0..batch.num_rows() {
            shown.insert(columns.user_id.value(row), columns.figures(row));
        }
    }
    let mut diff = BucketDiff {
        hours: BTreeSet::new(),
        users: 0,
        changed: Vec::new(),
    };
    for batch in &hourly {
        let columns = FigureColumns::of(batch, Table::PortfolioHourly)?;
        let hours = typed::<Int32Type>(batch, Table::PortfolioHourly, "hour")?;
        diff.hours.extend(hours.iter().flatten());
        let changed: BooleanArray = (0..batch.num_rows())
            .map(|row| {
                let user = columns.user_id.value(row);
                let now = served.get(&user).or_else(|| shown.get(&user));
                Some(now != Some(&columns.figures(row)))
            })
            .collect();
        diff.users += batch.num_rows() as u64;
        let kept = filter_record_batch(batch, &changed)?;
        if kept.num_rows() > 0 {
            diff.changed.push(kept);
        }
    }
    Ok(diff)
}
