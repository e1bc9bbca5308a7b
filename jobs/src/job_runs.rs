//! `job_runs`: every job run recorded in PostgreSQL when a database is configured — what ran,
//! for which date and shard, rows in and out, how long, and how it ended — so operators can
//! answer "did last night's run happen, and how big was it" with one query.

use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};

use crate::exit;

const INSERT_RUN: &str = "INSERT INTO job_runs (job, run_date, shard, started_at, finished_at, duration_ms, \
     rows_in, rows_out, outcome, error, host) VALUES ($1, $2, $3, $4, now(), $5, $6, $7, $8, $9, $10)";

/// Rows a job read and wrote (as its summary line counts them).
#[derive(Debug, Default, Clone, Copy)]
pub struct RowCounts {
    pub rows_in: Option<u64>,
    pub rows_out: Option<u64>,
}

impl RowCounts {
    pub fn new(rows_in: u64, rows_out: u64) -> Self {
        Self {
            rows_in: Some(rows_in),
            rows_out: Some(rows_out),
        }
    }
}

#[derive(Debug)]
pub struct JobRun {
    job: &'static str,
    date: Option<NaiveDate>,
    shard: Option<String>,
    started_at: DateTime<Utc>,
    started: Instant,
}

impl JobRun {
    pub fn start(job: &'static str, date: Option<NaiveDate>, shard: Option<String>) -> Self {
        Self {
            job,
            date,
            shard,
            started_at: Utc::now(),
            started: Instant::now(),
        }
    }

    pub async fn record(
        &self,
        database_url: &str,
        result: &anyhow::Result<RowCounts>,
    ) -> anyhow::Result<()> {
        let pool = crate::postgres::connect(database_url).await?;
        // The table may not exist yet on a fresh database (a job that failed before migrating).
        crate::postgres::migrate(&pool).await?;
        let (counts, outcome, error) = match result {
            Ok(counts) => (*counts, "ok", None),
            Err(e) => (
                RowCounts::default(),
                exit::outcome(e),
                Some(format!("{e:#}")),
            ),
        };
        let to_i64 = |n: Option<u64>| n.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        sqlx::query(INSERT_RUN)
            .bind(self.job)
            .bind(self.date)
            .bind(self.shard.as_deref())
            .bind(self.started_at)
            .bind(i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX))
            .bind(to_i64(counts.rows_in))
            .bind(to_i64(counts.rows_out))
            .bind(outcome)
            .bind(error)
            .bind(hostname())
            .execute(&pool)
            .await?;
        pool.close().await;
        Ok(())
    }
}

fn hostname() -> Option<String> {
    std::env::var("HOSTNAME").ok().or_else(|| {
        std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
    })
}
