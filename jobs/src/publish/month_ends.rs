//! `portfolio_month_ends`, the line and bar charts' history: built once after each month end
//! (and for users whose history a reversal rewrote), attached like the dated partitions.

use super::*;

/// What a publish does to the charts' history.
#[derive(Debug, Default)]
pub(super) struct MonthEnds {
    /// The month ends staged in `MONTH_ENDS_STAGE`, to attach as one partition.
    pub(super) staged: Option<Vec<NaiveDate>>,
    pub(super) rows: u64,
    /// The last month end complete after this publish (`publications.month_ends_through`).
    pub(super) through: Option<NaiveDate>,
    /// Users whose history a reversal on this date changed, and their rows up to the month
    /// end complete before this publish (`rewrite_through`), re-read from today's valuation.
    pub(super) rewritten_users: Vec<i64>,
    pub(super) rewrite_through: Option<NaiveDate>,
    pub(super) rewritten: Vec<MonthEndRow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MonthEndRow {
    pub(super) month_end: NaiveDate,
    pub(super) user_id: i64,
    /// Paise, as the charts file holds them (money at scale 2).
    pub(super) invested: i64,
    pub(super) value: i64,
}

/// Month-end rows as the stage's COPY columns: `month_end, user_id, invested, value`.
fn month_ends_batch(rows: &[MonthEndRow]) -> anyhow::Result<RecordBatch> {
    use warehouse::schema::{date_to_days, MONEY_PRECISION, MONEY_SCALE};
    let money = |get: fn(&MonthEndRow) -> i64| -> anyhow::Result<ArrayRef> {
        Ok(Arc::new(
            Decimal128Array::from_iter_values(rows.iter().map(|r| i128::from(get(r))))
                .with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE)?,
        ))
    };
    Ok(RecordBatch::try_from_iter([
        (
            "month_end",
            Arc::new(Date32Array::from_iter_values(
                rows.iter().map(|r| date_to_days(r.month_end)),
            )) as ArrayRef,
        ),
        (
            "user_id",
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.user_id))),
        ),
        ("invested", money(|r| r.invested)?),
        ("value", money(|r| r.value)?),
    ])?)
}

/// The last month end before `date`: the line chart's history ends there.
pub(super) fn last_month_end_before(date: NaiveDate) -> Option<NaiveDate> {
    date.with_day(1)?.pred_opt()
}

/// Loads the month ends that ended since the last one loaded (normally none; one on the first
/// publish of a month; the whole history on a store's first publish) from the date's
/// `portfolio_charts` line points, into a stand-alone table indexed after the load. Also
/// collects the corrected history of users a reversal touched.
pub(super) async fn stage_month_ends(
    warehouse: &Warehouse,
    pool: &PgPool,
    date: NaiveDate,
    progress: &Progress,
) -> anyhow::Result<MonthEnds> {
    let counted = std::sync::atomic::AtomicU64::new(0);
    let bucket_done = || {
        progress.add(1);
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    let staged = stage_month_ends_counted(warehouse, pool, date, &bucket_done).await;
    // A date with no month end to stage (most of them) has its buckets done at once.
    let left = u64::from(BUCKETS).saturating_sub(counted.into_inner());
    progress.add(left);
    staged
}

async fn stage_month_ends_counted(
    warehouse: &Warehouse,
    pool: &PgPool,
    date: NaiveDate,
    bucket_done: &(dyn Fn() + Sync),
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
    let statement = format!(
        "COPY {MONTH_ENDS_STAGE} (month_end, user_id, invested, value) FROM STDIN (FORMAT binary)"
    );
    let mut copy = BinaryCopy::start(&mut conn, &statement).await?;
    let sent = async {
        for part in date_buckets(date) {
            let rows = month_end_rows_of(warehouse, date, part, |_, end| is_new(end)).await?;
            bucket_done();
            ends.extend(rows.iter().map(|row| row.month_end));
            out.rows += copy.send(&[month_ends_batch(&rows)?]).await?;
        }
        anyhow::Ok(())
    }
    .await;
    copy.finish(sent).await?;
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
pub(super) fn in_list<'a>(ends: impl IntoIterator<Item = &'a NaiveDate>) -> String {
    ends.into_iter()
        .map(|d| format!("DATE '{d}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Attaches the staged month ends as one partition (inside the publish transaction).
pub(super) async fn attach_month_ends(
    tx: &mut PgConnection,
    ends: &[NaiveDate],
) -> anyhow::Result<()> {
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
pub(super) async fn rewrite_history(
    tx: &mut PgConnection,
    month_ends: &MonthEnds,
) -> anyhow::Result<u64> {
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
        .bind(rows.iter().map(|r| paise(r.invested)).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| paise(r.value)).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await
        .context("rewriting the month ends of users with a reversed instalment")?
        .rows_affected();
    Ok(inserted)
}

/// Paise as the `numeric` PostgreSQL stores money in.
fn paise(amount: i64) -> rust_decimal::Decimal {
    rust_decimal::Decimal::new(amount, 2)
}

/// Users with an instalment reversed on `date`, sorted.
pub(super) async fn reversed_users(
    warehouse: &Warehouse,
    date: NaiveDate,
) -> anyhow::Result<Vec<i64>> {
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
pub(super) async fn month_end_rows_of(
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
        // The rows carry paise: a file at another scale would be misread, not converted.
        anyhow::ensure!(
            invested.scale() == warehouse::schema::MONEY_SCALE
                && values.scale() == warehouse::schema::MONEY_SCALE,
            "`portfolio_charts` of {part:?} holds money at scale {}, not {}",
            invested.scale(),
            warehouse::schema::MONEY_SCALE
        );
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
            let money = |column: &Decimal128Array, name: &str| {
                i64::try_from(column.value(i)).with_context(|| {
                    format!("`portfolio_charts.{name}` of user {user_id} out of range")
                })
            };
            rows.push(MonthEndRow {
                month_end: period,
                user_id,
                invested: money(invested, "invested")?,
                value: money(values, "value")?,
            });
        }
    }
    Ok(rows)
}
