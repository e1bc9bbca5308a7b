//! `sipline generate`: a synthetic universe in the warehouse — scheme master, NAV history,
//! users and SIP mandates. Users are generated a bucket at a time (each bucket on its own,
//! from the seed), so memory is bounded by one bucket per worker whatever `--users` is.

use std::fmt;
use std::sync::Arc;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use pipeline::calendar::BusinessCalendar;
use pipeline::generate::{generate_bucket, scheme_master, NavWalk, UniverseSpec};
use warehouse::{Commit, Part, Warehouse};

use crate::plumbing::progress::Progress;
use crate::shard::Shard;

#[derive(Debug, Default)]
pub struct GenerateSummary {
    pub users: u64,
    pub sips: u64,
    pub schemes: usize,
    pub nav_days: usize,
    pub navs: usize,
}

impl fmt::Display for GenerateSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "generate ok: users={} sips={} schemes={} nav_days={} navs={}",
            self.users, self.sips, self.schemes, self.nav_days, self.navs
        )
    }
}

/// The date the `sips` snapshot of a generated universe is written under: the first day of
/// its history, so every run over that history finds it.
pub fn snapshot_date(spec: &UniverseSpec) -> chrono::NaiveDate {
    spec.start_date()
}

pub async fn generate(
    spec: UniverseSpec,
    shard: Shard,
    calendar: &BusinessCalendar,
    warehouse: &Warehouse,
    parallelism: usize,
) -> anyhow::Result<GenerateSummary> {
    let mut summary = GenerateSummary::default();
    if shard.is_first() {
        let schemes = scheme_master(spec.seed);
        summary.schemes = schemes.len();
        warehouse
            .write_rows(Part::WHOLE, &schemes)
            .await
            .context("writing schemes")?;
        for (date, rows) in NavWalk::new(&spec, calendar) {
            summary.nav_days += 1;
            summary.navs += rows.len();
            warehouse
                .write_rows(Part::date(date), &rows)
                .await
                .with_context(|| format!("writing navs for {date}"))?;
        }
        tracing::info!(
            schemes = summary.schemes,
            nav_days = summary.nav_days,
            "scheme master and NAV history written"
        );
    }

    let buckets: Vec<u32> = shard.buckets().collect();
    let progress = Arc::new(Progress::new(
        "users",
        buckets
            .iter()
            .map(|b| spec.users_in_bucket(*b).count() as u64)
            .sum(),
    ));
    let as_of = snapshot_date(&spec);
    let counts: Vec<(u64, u64)> = futures::stream::iter(buckets)
        .map(|bucket| {
            let warehouse = warehouse.clone();
            let progress = Arc::clone(&progress);
            tokio::spawn(async move {
                let (users, mut sips) =
                    tokio::task::spawn_blocking(move || generate_bucket(&spec, bucket)).await?;
                // Sorted by SIP day, so a day's execution can skip the row groups of other days.
                sips.sort_unstable_by_key(|s| (s.sip_day, s.sip_id));
                let mut commit = Commit::default();
                commit
                    .stage_rows(Part::bucket(bucket), &users)?
                    .stage_rows(Part::dated_bucket(as_of, bucket), &sips)?;
                warehouse.commit(commit).await?;
                progress.add(users.len() as u64);
                anyhow::Ok((users.len() as u64, sips.len() as u64))
            })
        })
        .buffer_unordered(parallelism.max(1))
        .map(|joined| joined.context("generator task panicked")?)
        .try_collect()
        .await?;
    progress.finish();
    summary.users = counts.iter().map(|c| c.0).sum();
    summary.sips = counts.iter().map(|c| c.1).sum();
    Ok(summary)
}
