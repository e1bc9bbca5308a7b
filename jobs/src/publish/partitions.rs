//! The portfolio tables' date partitions: each date's lines and snapshots are built as a
//! stand-alone table beside their parent (unindexed, indexed after the load), attached by the
//! switch, and dropped once the date is no longer kept.

use super::*;

/// A table that takes one partition per published date, built beside it and attached whole:
/// `portfolio_lines` (two latest dates kept), and each month of `portfolio_snapshots` made
/// by migration 0017 on (history).
#[derive(Debug, Clone, Copy)]
pub(super) struct Dated {
    pub(super) parent: &'static str,
    pub(super) key: &'static str,
    /// The COPY's column list: the warehouse file's columns, then `as_of`.
    pub(super) columns: &'static str,
    pub(super) table: Table,
    /// Connections the load is split over.
    pub(super) streams: usize,
}

pub(super) const LINES: Dated = Dated {
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

pub(super) const SNAPSHOTS: Dated = Dated {
    parent: "portfolio_snapshots",
    key: "user_id",
    columns:
        "user_id, invested, current_value, gain, abs_return_pct, xirr, schemes, nav_date, as_of",
    table: Table::PortfolioSnapshots,
    streams: 1,
};

impl Dated {
    pub(super) fn partition(self, date: NaiveDate) -> String {
        format!("{}_d{}", self.parent, date.format("%Y%m%d"))
    }

    pub(super) fn stage(self, date: NaiveDate) -> String {
        format!("{}_stage", self.partition(date))
    }
}

/// Where month-end rows are staged before they become a partition of `portfolio_month_ends`.
pub(super) const MONTH_ENDS_STAGE: &str = "portfolio_month_ends_stage";

pub(super) fn execute_sql(statement: String) -> sqlx::AssertSqlSafe<String> {
    // Every dynamic statement here is built from table names this module makes and ISO dates.
    sqlx::AssertSqlSafe(statement)
}

/// Builds the date's partition of `dated` as a stand-alone table: load, then the key index
/// (cheaper after the load than during it), with a CHECK that lets the attach skip its scan.
pub(super) async fn stage_dated(
    warehouse: &Warehouse,
    pool: &PgPool,
    dated: Dated,
    date: NaiveDate,
    progress: &Arc<Progress>,
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
                progress,
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
pub(super) async fn swap_in(
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

/// Drops what the serving store no longer keeps: lines of dates older than the two latest
/// publications, and investments older than the kept months.
pub(super) async fn drop_expired(
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
    if options.keep_investment_months == 0 {
        // The whole record is kept (the default).
        return Ok(dropped);
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
