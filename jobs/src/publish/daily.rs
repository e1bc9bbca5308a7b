//! The loads inside the publish transaction: the date's investments, the outbox rows for its
//! SIP events and statements, the SIPs the batch cancelled.

use super::*;

pub(super) struct Loaded {
    pub(super) rows: (u64, u64, u64),
    pub(super) notifications: u64,
    pub(super) cancelled: u64,
}

pub(super) async fn load_in_transaction(
    warehouse: &Warehouse,
    tx: &mut PgConnection,
    date: NaiveDate,
    snapshots_too: bool,
    progress: &Arc<Progress>,
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
            // Staged beside the transaction instead (`stage_dated`), which counts them.
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
            progress,
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
        progress,
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
