//! `sipline sips export --date D`: the mandates in PostgreSQL (where clients create, pause and
//! cancel SIPs) into the warehouse's `sips` snapshot as of D, which the next execution run
//! reads. The snapshot is rebuilt from the change history (`sip_changes`, migration 0009):
//! each SIP's latest state effective on or before D, so a change made after D's cut-off
//! applies from the next batch date, and re-exporting a past date gives the same snapshot
//! whatever changed since. Exporting D before D's cut-off has passed is refused (exit 4):
//! changes could still apply to D. Every bucket is written, empty or not, so the snapshot is complete; a bucket whose
//! write failed has no `_SUCCESS` and the execution run refuses the snapshot (exit 4) until
//! the export is re-run.
//!
//! The users come along: PostgreSQL is also the system of record for who exists (a person who
//! signs in is provisioned there by the API), and `portfolio value` values exactly the users
//! of the warehouse's `users` table, so a user created through the API is valued from the
//! first export after their sign-in. The table is replaced whole, bucket by bucket.

use std::fmt;

use anyhow::Context;
use chrono::NaiveDate;
use futures::{StreamExt, TryStreamExt};
use pipeline::sip::{Mandate, SipStatus};
use pipeline::user::UserRow;
use serving::mandates::MandateRow;
use sqlx::{PgPool, Row};
use warehouse::{bucket_of, Commit, Part, Warehouse, BUCKETS};

use crate::plumbing::exit::JobFailure;

// Money and step-up come out as scaled integers, the form the batch computes in. SIPs whose
// first change is effective after D do not exist yet as of D.
const SELECT_SIPS_AS_OF: &str = "SELECT sip_id, user_id, scheme_code, amount_paise, sip_day, start_date, end_date, step_up_bps, status, paused_until \
     FROM (SELECT DISTINCT ON (sip_id) sip_id, user_id, scheme_code, (amount * 100)::bigint AS amount_paise, \
             sip_day, start_date, end_date, (step_up_pct * 100)::bigint AS step_up_bps, status, paused_until \
           FROM sip_changes WHERE effective_from <= $1 ORDER BY sip_id, change_id DESC) AS as_of";

/// Whether D's cut-off has passed: the batch date a change made now ($2, the job's clock)
/// would apply to is after D.
const CUTOFF_PASSED: &str =
    "SELECT sipline_batch_date($2) > $1 AS passed, sipline_sip_cutoff()::text AS cutoff";

const SELECT_USERS: &str = "SELECT user_id, auth_subject, \
     (extract(epoch FROM created_at) * 1000000)::bigint AS created_at_micros FROM users";

#[derive(Debug, Default)]
pub struct ExportSummary {
    pub date: Option<NaiveDate>,
    pub users: u64,
    pub sips: u64,
    pub active: u64,
    pub buckets: u32,
}

impl fmt::Display for ExportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sips export ok: as_of={} sips={} active={} users={} buckets={}",
            self.date.map(|d| d.to_string()).unwrap_or_default(),
            self.sips,
            self.active,
            self.users,
            self.buckets
        )
    }
}

pub async fn export(
    warehouse: &Warehouse,
    pool: &PgPool,
    date: NaiveDate,
    parallelism: usize,
    clock: serving::Clock,
) -> anyhow::Result<ExportSummary> {
    let cutoff = sqlx::query(CUTOFF_PASSED)
        .bind(date)
        .bind(clock.now())
        .fetch_one(pool)
        .await?;
    if !cutoff.try_get::<bool, _>("passed")? {
        let at: String = cutoff.try_get("cutoff")?;
        return Err(JobFailure::MissingUpstream(format!(
            "the cut-off for {date} ({at} IST) has not passed: SIP changes made before it still apply to {date}; export after it"
        ))
        .into());
    }
    let mut buckets: Vec<Vec<Mandate>> = (0..BUCKETS).map(|_| Vec::new()).collect();
    let mut rows = sqlx::query_as::<_, MandateRow>(SELECT_SIPS_AS_OF)
        .bind(date)
        .fetch(pool);
    while let Some(row) = rows.try_next().await? {
        let mandate = Mandate::try_from(row)?;
        buckets[bucket_of(mandate.user_id) as usize].push(mandate);
    }
    drop(rows);
    let mut users: Vec<Vec<UserRow>> = (0..BUCKETS).map(|_| Vec::new()).collect();
    let mut rows = sqlx::query(SELECT_USERS).fetch(pool);
    while let Some(row) = rows.try_next().await? {
        let user = UserRow {
            user_id: row.try_get("user_id")?,
            auth_subject: row.try_get("auth_subject")?,
            created_at_micros: row.try_get("created_at_micros")?,
        };
        users[bucket_of(user.user_id) as usize].push(user);
    }
    drop(rows);
    let summary = ExportSummary {
        date: Some(date),
        users: users.iter().map(|b| b.len() as u64).sum(),
        sips: buckets.iter().map(|b| b.len() as u64).sum(),
        active: buckets
            .iter()
            .flatten()
            .filter(|m| m.status == SipStatus::Active)
            .count() as u64,
        buckets: BUCKETS,
    };
    futures::stream::iter(buckets.into_iter().zip(users).enumerate())
        .map(|(bucket, (mut sips, mut users))| async move {
            // Sorted by SIP day, as `generate` writes it: a day's run skips other days' row groups.
            sips.sort_unstable_by_key(|s| (s.sip_day, s.sip_id));
            users.sort_unstable_by_key(|u| u.user_id);
            let bucket = u32::try_from(bucket).context("bucket number")?;
            let mut commit = Commit::default();
            commit
                .stage_rows(Part::dated_bucket(date, bucket), &sips)?
                .stage_rows(Part::bucket(bucket), &users)?;
            warehouse.commit(commit).await?;
            anyhow::Ok(())
        })
        .buffer_unordered(parallelism.max(1))
        .try_collect::<()>()
        .await?;
    Ok(summary)
}
