//! `publish --mandates`: a generated universe's users and SIPs into the serving store, for
//! demos and benchmarks (in production they are created through the API).

use super::*;

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
         sip_day integer, start_date date, end_date date, step_up_pct numeric(5,2), status text, paused_until date) \
         ON COMMIT DROP",
    )
    .execute(&mut *tx)
    .await?;
    let buckets: Vec<u32> = (0..BUCKETS).collect();
    {
        let mut copy =
            BinaryCopy::start(&mut tx, "COPY users_stage FROM STDIN (FORMAT binary)").await?;
        let sent = async {
            for bucket in &buckets {
                let batches = read_all(warehouse, Table::Users, &[Part::bucket(*bucket)]).await?;
                copy.send(&batches).await?;
            }
            anyhow::Ok(())
        }
        .await;
        copy.finish(sent).await?;
    }
    {
        let mut copy =
            BinaryCopy::start(&mut tx, "COPY sips_stage FROM STDIN (FORMAT binary)").await?;
        let sent = async {
            for bucket in &buckets {
                let part = Part::dated_bucket(sips_as_of, *bucket);
                let batches = read_all(warehouse, Table::Sips, &[part]).await?;
                // Decoded first so a malformed snapshot fails here with the table's own checks.
                decode_all::<Mandate>(part, &batches)?;
                copy.send(&batches).await?;
            }
            anyhow::Ok(())
        }
        .await;
        copy.finish(sent).await?;
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
