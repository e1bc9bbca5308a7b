//! The PostgreSQL side of the jobs: migrations (embedded from `sql/migrations`) and bulk
//! upserts through `COPY` into a transaction-local staging table, so a job's rows land all at
//! once or not at all, and re-running it rewrites nothing that did not change.

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{ArrayRef, Date32Array, RecordBatch};
use pipeline::nav::{NavRow, SchemeRow};
use sqlx::postgres::PgCopyIn;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use crate::plumbing::copy_binary;

/// One embedded copy of `sql/migrations`, shared with the API.
pub use serving::MIGRATOR;

const STAGE_NAVS: &str = "CREATE TEMP TABLE navs_stage (scheme_code bigint, nav_date date, nav numeric(18,8), source text) ON COMMIT DROP";
const COPY_NAVS: &str =
    "COPY navs_stage (scheme_code, nav_date, nav, source) FROM STDIN (FORMAT binary)";
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
     scheme_type, plan, option, unit_decimals) FROM STDIN (FORMAT binary)";
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

/// A running `COPY … FROM STDIN (FORMAT binary)`: the one way rows reach PostgreSQL in bulk
/// (NAVs, schemes, mandates, portfolios, month ends, hourly figures). Arrow batches go in
/// PostgreSQL's binary format (`copy_binary`), each batch one COPY message; the header is sent
/// at the start, the trailer by [`BinaryCopy::finish`], which aborts the COPY instead when
/// sending failed, so the server discards the rows and the connection stays usable for the
/// rollback that follows.
pub struct BinaryCopy<'c> {
    copy: PgCopyIn<&'c mut PgConnection>,
    rows: u64,
}

impl<'c> BinaryCopy<'c> {
    /// Starts `statement`, which must read `FORMAT binary` with the batches' columns in order.
    pub async fn start(conn: &'c mut PgConnection, statement: &str) -> Result<Self, CopyError> {
        let mut copy = conn.copy_in_raw(statement).await?;
        if let Err(e) = copy.send(copy_binary::header()).await {
            let _ = copy.abort(e.to_string()).await;
            return Err(e.into());
        }
        Ok(Self { copy, rows: 0 })
    }

    /// Encodes and sends `batches`, one message each; returns their rows.
    pub async fn send(&mut self, batches: &[RecordBatch]) -> Result<u64, CopyError> {
        let mut rows = 0;
        for batch in batches {
            // `encode_batch` reserves the batch's bound itself.
            let mut buffer = Vec::new();
            copy_binary::encode_batch(batch, &mut buffer)?;
            self.send_encoded(buffer, batch.num_rows() as u64).await?;
            rows += batch.num_rows() as u64;
        }
        Ok(rows)
    }

    /// Sends rows already encoded by `copy_binary::encode_batch` (on another thread).
    pub async fn send_encoded(&mut self, buffer: Vec<u8>, rows: u64) -> Result<(), CopyError> {
        self.copy.send(buffer).await?;
        self.rows += rows;
        Ok(())
    }

    /// Ends the COPY by what sending its rows came to: the trailer and the server's count
    /// when every row went, an abort with the error otherwise.
    pub async fn finish<T>(mut self, sent: anyhow::Result<T>) -> anyhow::Result<T> {
        match sent {
            Ok(value) => {
                let ended = async {
                    self.copy.send(copy_binary::trailer().as_slice()).await?;
                    Ok::<_, sqlx::Error>(())
                }
                .await;
                if let Err(e) = ended {
                    let _ = self.copy.abort(e.to_string()).await;
                    return Err(e.into());
                }
                let copied = self.copy.finish().await?;
                // The server counts what it stored; a difference is a bug in the encoder.
                anyhow::ensure!(
                    copied == self.rows,
                    "COPY stored {copied} rows of the {} sent",
                    self.rows
                );
                Ok(value)
            }
            Err(e) => {
                let _ = self.copy.abort(e.to_string()).await;
                Err(e)
            }
        }
    }
}

/// Copies `batches` with `statement` (a `FORMAT binary` COPY) in one go; returns the rows.
pub async fn copy_batches(
    conn: &mut PgConnection,
    statement: &str,
    batches: &[RecordBatch],
) -> anyhow::Result<u64> {
    let mut copy = BinaryCopy::start(conn, statement).await?;
    let sent = copy.send(batches).await.map_err(anyhow::Error::from);
    copy.finish(sent).await
}

/// Why rows could not be copied into PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("encoding rows for a binary COPY: {0}")]
    Encode(#[from] copy_binary::BinaryCopyError),
    #[error("building the rows to copy: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// NAVs of several dates as the rows of `COPY_NAVS`: the warehouse file's columns with the
/// date (its partition value) second.
fn navs_batch(navs: &[(NaiveDate, NavRow)]) -> Result<RecordBatch, CopyError> {
    let rows: Vec<NavRow> = navs.iter().map(|(_, row)| *row).collect();
    let file = warehouse::schema::navs_to_batch(&rows)?;
    let dates = Date32Array::from_iter_values(
        navs.iter()
            .map(|(date, _)| warehouse::schema::date_to_days(*date)),
    );
    let columns = vec![
        Arc::clone(file.column(0)),
        Arc::new(dates) as ArrayRef,
        Arc::clone(file.column(1)),
        Arc::clone(file.column(2)),
    ];
    Ok(RecordBatch::try_from_iter(
        ["scheme_code", "nav_date", "nav", "source"]
            .into_iter()
            .zip(columns),
    )?)
}

/// Upserts NAVs of several dates in one transaction; returns the rows inserted or changed.
const NAV_ALERTS: &str = "SELECT sipline_nav_alerts($1, $2)";

#[tracing::instrument(name = "db", skip_all, fields(otel.name = "upsert navs", otel.kind = "client", db.system.name = "postgresql"))]
pub async fn upsert_navs(pool: &PgPool, navs: &[(NaiveDate, NavRow)]) -> anyhow::Result<u64> {
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
    copy_batches(&mut tx, COPY_NAVS, &[navs_batch(navs)?]).await?;
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
pub async fn upsert_schemes(pool: &PgPool, schemes: &[SchemeRow]) -> anyhow::Result<u64> {
    if schemes.is_empty() {
        return Ok(0);
    }
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    sqlx::query(STAGE_SCHEMES).execute(&mut *tx).await?;
    let batch = warehouse::schema::schemes_to_batch(schemes).map_err(CopyError::from)?;
    copy_batches(&mut tx, COPY_SCHEMES, &[batch]).await?;
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
