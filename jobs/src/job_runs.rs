//! `job_runs`: every job run recorded in PostgreSQL when a database is configured — what ran,
//! for which date and shard, rows in and out, how long, and how it ended — so operators can
//! answer "did last night's run happen, and how big was it" with one query. The same record
//! goes next to the job's output as a run manifest (`_runs/<job>/date=<D>/<shard>.json` in the
//! warehouse), so a data team or an operator without database access can tell too.

use std::time::Instant;

use chrono::{DateTime, NaiveDate, Utc};

use crate::plumbing::exit;

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
    warehouse: Option<String>,
    started_at: DateTime<Utc>,
    started: Instant,
    /// What the operator should act on although the run may succeed (a holiday calendar
    /// about to end): logged, and kept in the manifest.
    warnings: Vec<String>,
}

impl JobRun {
    /// The job's name, as `job_runs` records it.
    pub fn name(&self) -> &'static str {
        self.job
    }

    /// The run's root span: one trace per job run (see `telemetry`).
    pub fn span(&self) -> tracing::Span {
        crate::plumbing::telemetry::job_span(self.job, self.date, self.shard.as_deref())
    }

    pub fn start(
        job: &'static str,
        date: Option<NaiveDate>,
        shard: Option<String>,
        warehouse: Option<String>,
    ) -> Self {
        Self {
            job,
            date,
            shard,
            warehouse,
            started_at: Utc::now(),
            started: Instant::now(),
            warnings: Vec::new(),
        }
    }

    /// Logs `message` as a warning and keeps it for the manifest.
    pub fn warn(&mut self, message: String) {
        tracing::warn!(job = self.job, "{message}");
        self.warnings.push(message);
    }

    /// Writes the run manifest into the job's warehouse, for failed runs too: the manifest is
    /// the run's record, not data, and no table reads `_runs`.
    pub async fn write_manifest(&self, result: &anyhow::Result<RowCounts>) -> anyhow::Result<()> {
        let Some(location) = &self.warehouse else {
            return Ok(());
        };
        let warehouse = warehouse::Warehouse::open(location)?;
        let shard = self.shard.as_deref().unwrap_or("0/1");
        let path = warehouse.layout().run_manifest(
            &self.job.replace(' ', "_"),
            self.date,
            &format!("shard={}", shard.replace('/', "-of-")),
        );
        let manifest = self.manifest(result, std::env::args().skip(1).collect());
        warehouse
            .put_document(&path, serde_json::to_vec_pretty(&manifest)?)
            .await?;
        tracing::debug!(%path, "run manifest written");
        Ok(())
    }

    fn manifest(&self, result: &anyhow::Result<RowCounts>, args: Vec<String>) -> serde_json::Value {
        let (counts, exit_code, error) = match result {
            Ok(counts) => (*counts, exit::SUCCESS, None),
            Err(e) => (
                RowCounts::default(),
                exit::classify(e),
                Some(crate::plumbing::redact::urls(&format!("{e:#}"))),
            ),
        };
        serde_json::json!({
            "job": self.job,
            "date": self.date.map(|d| d.to_string()),
            "shard": self.shard,
            "outcome": result.as_ref().map_or_else(exit::outcome, |_| "ok"),
            "exit_code": exit_code,
            "error": error,
            "rows_in": counts.rows_in,
            "rows_out": counts.rows_out,
            "started_at": self.started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "finished_at": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "duration_ms": u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "host": hostname(),
            "version": env!("CARGO_PKG_VERSION"),
            "args": crate::plumbing::redact::args(args),
            "warnings": self.warnings,
        })
    }

    pub async fn record(
        &self,
        database_url: &str,
        result: &anyhow::Result<RowCounts>,
    ) -> anyhow::Result<()> {
        let pool = crate::plumbing::postgres::connect(database_url).await?;
        // The table may not exist yet on a fresh database (a job that failed before migrating).
        crate::plumbing::postgres::migrate(&pool).await?;
        let (counts, outcome, error) = match result {
            Ok(counts) => (*counts, "ok", None),
            Err(e) => (
                RowCounts::default(),
                exit::outcome(e),
                Some(crate::plumbing::redact::urls(&format!("{e:#}"))),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_records_the_run_without_the_database_password() {
        let run = JobRun::start(
            "sip execute",
            NaiveDate::from_ymd_opt(2025, 6, 27),
            Some("1/4".to_string()),
            Some("./data".to_string()),
        );
        let args = [
            "sip",
            "execute",
            "--database-url",
            "postgres://u:secret@db/x",
            "--database-url=postgres://u:secret@db/y",
        ]
        .map(String::from)
        .to_vec();
        let ok = run.manifest(&Ok(RowCounts::new(10, 7)), args.clone());
        assert_eq!(ok["outcome"], "ok");
        assert_eq!(ok["exit_code"], 0);
        assert_eq!(ok["date"], "2025-06-27");
        assert_eq!(ok["shard"], "1/4");
        assert_eq!(ok["rows_out"], 7);
        assert!(!ok.to_string().contains("secret"), "{ok}");

        let missing: anyhow::Result<RowCounts> =
            Err(exit::JobFailure::MissingUpstream("no NAV file yet".into()).into());
        let failed = run.manifest(&missing, args);
        assert_eq!(failed["outcome"], "missing_upstream");
        assert_eq!(failed["exit_code"], 4);
        assert_eq!(failed["error"], "missing upstream: no NAV file yet");
        assert!(failed["rows_in"].is_null());
    }
}
