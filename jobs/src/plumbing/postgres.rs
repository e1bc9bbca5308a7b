//! The PostgreSQL side of the jobs: migrations (embedded from `sql/migrations`) and bulk
//! upserts through `COPY` into a transaction-local staging table, so a job's rows land all at
//! once or not at all, and re-running it rewrites nothing that did not change.

use std::fmt::Write as _;

use chrono::NaiveDate;
use datafusion::arrow::csv::WriterBuilder;
use datafusion::arrow::record_batch::RecordBatch;
use pipeline::nav::{NavRow, SchemeRow};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

/// One embedded copy of `sql/migrations`, shared with the API.
pub use serving::MIGRATOR;

const STAGE_NAVS: &str = "CREATE TEMP TABLE navs_stage (scheme_code bigint, nav_date date, nav numeric(18,8), source text) ON COMMIT DROP";
const COPY_NAVS: &str =
    "COPY navs_stage (scheme_code, nav_date, nav, source) FROM STDIN (FORMAT csv)";
const ENSURE_NAV_PARTITIONS: &str = "SELECT sipline_ensure_month_partitions('navs', $1, $2)";
// AMFI is the authority: a BSE NAV never replaces an AMFI one. Unchanged rows are not rewritten.
const UPSERT_NAVS: &str = "INSERT INTO navs AS n (scheme_code, nav_date, nav, source) \
     SELECT scheme_code, nav_date, nav, source FROM navs_stage \
     ON CONFLICT (scheme_code, nav_date) DO UPDATE SET nav = EXCLUDED.nav, source = EXCLUDED.source, ingested_at = now() \
     WHERE (n.nav, n.source) IS DISTINCT FROM (EXCLUDED.nav, EXCLUDED.source) \
       AND (n.source <> 'amfi' OR EXCLUDED.source = 'amfi')";

const STAGE_SCHEMES: &str =
    "CREATE TEMP TABLE schemes_stage (LIKE schemes INCLUDING DEFAULTS) ON COMMIT DROP";
const COPY_SCHEMES: &str = "COPY schemes_stage (scheme_code, isin_growth, isin_reinvestment, scheme_name, fund_house, category, \
     scheme_type, plan, option, unit_decimals) FROM STDIN (FORMAT csv)";
const UPSERT_SCHEMES: &str = "INSERT INTO schemes AS s (scheme_code, isin_growth, isin_reinvestment, scheme_name, fund_house, \
     category, scheme_type, plan, option, unit_decimals) \
     SELECT scheme_code, isin_growth, isin_reinvestment, scheme_name, fund_house, category, scheme_type, plan, option, unit_decimals \
     FROM schemes_stage \
     ON CONFLICT (scheme_code) DO UPDATE SET isin_growth = EXCLUDED.isin_growth, isin_reinvestment = EXCLUDED.isin_reinvestment, \
       scheme_name = EXCLUDED.scheme_name, fund_house = EXCLUDED.fund_house, category = EXCLUDED.category, \
       scheme_type = EXCLUDED.scheme_type, plan = EXCLUDED.plan, option = EXCLUDED.option, updated_at = now() \
     WHERE (s.isin_growth, s.isin_reinvestment, s.scheme_name, s.fund_house, s.category, s.scheme_type, s.plan, s.option) \
       IS DISTINCT FROM (EXCLUDED.isin_growth, EXCLUDED.isin_reinvestment, EXCLUDED.scheme_name, EXCLUDED.fund_house, \
       EXCLUDED.category, EXCLUDED.scheme_type, EXCLUDED.plan, EXCLUDED.option)";

/// Rows per COPY message: large enough to amortise round trips, small enough to bound memory.
const COPY_CHUNK_ROWS: usize = 10_000;

pub async fn connect(url: &str) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    PgPoolOptions::new()
        // publish: one loading transaction plus three tables staged beside it (lines on two
        // streams, snapshots, month ends).
        .max_connections(6)
        .connect_with(options.application_name("sipline"))
        .await
}

/// Brings the schema up to date; safe to run on every job start.
#[tracing::instrument(name = "db", skip_all, fields(otel.name = "migrate", otel.kind = "client", db.system.name = "postgresql"))]
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// A CSV field for COPY: quoted (so an empty string stays a string), or empty for NULL.
fn csv_text(out: &mut String, value: Option<&str>) {
    if let Some(value) = value {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    }
}

/// Sends Arrow batches to a running `COPY … FROM STDIN (FORMAT csv)`, one CSV message per
/// batch: Arrow's CSV writer prints decimals at their scale, dates as ISO dates, NaN as `NaN`
/// and nulls as empty unquoted fields, which is what PostgreSQL's CSV input reads back exactly.
pub async fn send_batches<C>(
    copy: &mut sqlx::postgres::PgCopyIn<C>,
    batches: &[RecordBatch],
) -> Result<u64, CopyError>
where
    C: std::ops::DerefMut<Target = PgConnection>,
{
    send_encoded(copy, batches, |batch, buffer| {
        let mut writer = WriterBuilder::new().with_header(false).build(buffer);
        Ok(writer.write(batch)?)
    })
    .await
}

/// Sends Arrow batches to a running `COPY … FROM STDIN (FORMAT binary)` whose header
/// (`copy_binary::header`) is sent and whose trailer is not yet: one message per batch.
pub async fn send_batches_binary<C>(
    copy: &mut sqlx::postgres::PgCopyIn<C>,
    batches: &[RecordBatch],
) -> Result<u64, CopyError>
where
    C: std::ops::DerefMut<Target = PgConnection>,
{
    send_encoded(copy, batches, |batch, buffer| {
        Ok(crate::plumbing::copy_binary::encode_batch(batch, buffer)?)
    })
    .await
}

/// Ends a COPY by what sending its rows came to: finished when every row went, aborted with
/// the error otherwise, so the server discards the rows and the connection stays usable.
pub async fn finish_or_abort<C, T>(
    copy: sqlx::postgres::PgCopyIn<C>,
    sent: anyhow::Result<T>,
) -> anyhow::Result<T>
where
    C: std::ops::DerefMut<Target = PgConnection>,
{
    match sent {
        Ok(value) => {
            copy.finish().await?;
            Ok(value)
        }
        Err(e) => {
            let _ = copy.abort(e.to_string()).await;
            Err(e)
        }
    }
}

/// One COPY message per batch, as `encode` writes it.
async fn send_encoded<C>(
    copy: &mut sqlx::postgres::PgCopyIn<C>,
    batches: &[RecordBatch],
    encode: impl Fn(&RecordBatch, &mut Vec<u8>) -> Result<(), CopyError>,
) -> Result<u64, CopyError>
where
    C: std::ops::DerefMut<Target = PgConnection>,
{
    let mut rows = 0;
    for batch in batches {
        let mut buffer = Vec::with_capacity(batch.num_rows() * 64);
        encode(batch, &mut buffer)?;
        copy.send(buffer).await?;
        rows += batch.num_rows() as u64;
    }
    Ok(rows)
}

/// Why rows could not be copied into PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("encoding rows as CSV: {0}")]
    Encode(#[from] datafusion::arrow::error::ArrowError),
    #[error("encoding rows for a binary COPY: {0}")]
    Binary(#[from] crate::plumbing::copy_binary::BinaryCopyError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

async fn copy_rows<T>(
    conn: &mut PgConnection,
    statement: &str,
    rows: &[T],
    write_row: impl Fn(&mut String, &T),
) -> Result<u64, sqlx::Error> {
    let mut copy = conn.copy_in_raw(statement).await?;
    let mut buffer = String::new();
    for chunk in rows.chunks(COPY_CHUNK_ROWS) {
        buffer.clear();
        for row in chunk {
            write_row(&mut buffer, row);
        }
        if let Err(e) = copy.send(buffer.as_bytes()).await {
            // Leave the connection usable for the rollback that follows.
            let _ = copy.abort(e.to_string()).await;
            return Err(e);
        }
    }
    copy.finish().await
}

/// Upserts NAVs of several dates in one transaction; returns the rows inserted or changed.
const NAV_ALERTS: &str = "SELECT sipline_nav_alerts($1, $2)";

#[tracing::instrument(name = "db", skip_all, fields(otel.name = "upsert navs", otel.kind = "client", db.system.name = "postgresql"))]
pub async fn upsert_navs(pool: &PgPool, navs: &[(NaiveDate, NavRow)]) -> Result<u64, sqlx::Error> {
    let (Some(first), Some(last)) = (
        navs.iter().map(|n| n.0).min(),
        navs.iter().map(|n| n.0).max(),
    ) else {
        return Ok(0);
    };
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    sqlx::query(ENSURE_NAV_PARTITIONS)
        .bind(first)
        .bind(last)
        .execute(&mut *tx)
        .await?;
    sqlx::query(STAGE_NAVS).execute(&mut *tx).await?;
    copy_rows(&mut tx, COPY_NAVS, navs, |out, (date, row)| {
        let _ = writeln!(
            out,
            "{},{},{},{}",
            row.scheme_code,
            date,
            row.nav,
            row.source.as_str()
        );
    })
    .await?;
    let changed = sqlx::query(UPSERT_NAVS)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    // Alerts read the NAVs just written: same transaction, so an alert fires exactly when its
    // NAV becomes visible, and a re-run finds its notifications already there.
    let alerts: i64 = sqlx::query_scalar(NAV_ALERTS)
        .bind(first)
        .bind(last)
        .fetch_one(&mut *tx)
        .await?;
    // The API caches latest NAVs until told: on commit, like a publish.
    if changed > 0 {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(serving::PUBLISH_CHANNEL)
            .bind(serde_json::json!({ "navs_from": first, "navs_to": last }).to_string())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    tracing::info!(alerts, %first, %last, "NAV alerts evaluated");
    Ok(changed)
}

/// Upserts the scheme master; returns the rows inserted or changed.
#[tracing::instrument(name = "db", skip_all, fields(otel.name = "upsert schemes", otel.kind = "client", db.system.name = "postgresql"))]
pub async fn upsert_schemes(pool: &PgPool, schemes: &[SchemeRow]) -> Result<u64, sqlx::Error> {
    if schemes.is_empty() {
        return Ok(0);
    }
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    sqlx::query(STAGE_SCHEMES).execute(&mut *tx).await?;
    copy_rows(&mut tx, COPY_SCHEMES, schemes, |out, row| {
        let s = &row.scheme;
        let _ = write!(out, "{},", s.scheme_code);
        for field in [
            s.isin_growth.as_deref(),
            s.isin_reinvestment.as_deref(),
            Some(s.scheme_name.as_str()),
            s.fund_house.as_deref(),
        ] {
            csv_text(out, field);
            out.push(',');
        }
        for field in [
            s.category.as_deref(),
            s.scheme_type.as_deref(),
            s.plan.as_deref(),
            s.option.as_deref(),
        ] {
            csv_text(out, field);
            out.push(',');
        }
        let _ = writeln!(out, "{}", row.unit_decimals);
    })
    .await?;
    let changed = sqlx::query(UPSERT_SCHEMES)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    if changed > 0 {
        // Fresh statistics, so that scheme search plans with its indexes from the first load on
        // rather than after autovacuum gets round to the table. VACUUM too: a GIN index's size
        // figures (which the planner costs it by) and its pending list are only brought up to
        // date by a vacuum, and with the figures of the empty table the migration built it on,
        // the trigram index looked dearer than reading all 14,000 rows (~200 ms a search).
        sqlx::query("VACUUM (ANALYZE) schemes")
            .execute(&mut *conn)
            .await?;
    }
    Ok(changed)
}
