//! Prometheus metrics, rendered by hand (a few histograms and counters do not need a
//! registry crate): request latency per route, database query time, cache hits and misses,
//! pool usage.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Observations per bucket, not cumulative: one counter touched per observation (the
/// cumulative counts Prometheus wants are summed when rendered).
#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(at) = BUCKETS.iter().position(|bucket| seconds <= *bucket) {
            self.counts[at].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bucket, count) in BUCKETS.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bucket}\"}} {cumulative}"
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(
            out,
            "{name}_sum{braces} {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// Latency histograms of one route, by method and status.
type RouteHistograms = HashMap<(&'static str, u16), Arc<Histogram>>;

#[derive(Default)]
pub struct Metrics {
    /// Route → (method, status) → latency. Read-locked and allocation-free once a series
    /// exists (every request after the first of its kind); written when a series is new.
    requests: RwLock<HashMap<String, RouteHistograms>>,
    pub db_query: Histogram,
}

impl Metrics {
    pub fn observe_request(
        &self,
        method: &'static str,
        route: &str,
        status: u16,
        elapsed: Duration,
    ) {
        let known = self
            .requests
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(route)
            .and_then(|series| series.get(&(method, status)).cloned());
        let histogram = known.unwrap_or_else(|| {
            let mut requests = self.requests.write().unwrap_or_else(|e| e.into_inner());
            requests
                .entry(route.to_string())
                .or_default()
                .entry((method, status))
                .or_default()
                .clone()
        });
        histogram.observe(elapsed);
    }

    pub fn render(
        &self,
        caches: &crate::cache::Caches,
        pool: &sqlx::PgPool,
        calendar: &pipeline::calendar::BusinessCalendar,
        today: chrono::NaiveDate,
    ) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP sipline_api_request_duration_seconds Request latency by route and status.\n",
        );
        out.push_str("# TYPE sipline_api_request_duration_seconds histogram\n");
        let requests = self.requests.read().unwrap_or_else(|e| e.into_inner());
        // Sorted, so a scrape reads the same order every time.
        let sorted: BTreeMap<_, _> = requests
            .iter()
            .flat_map(|(route, series)| {
                series.iter().map(move |((method, status), histogram)| {
                    ((*method, route, *status), histogram)
                })
            })
            .collect();
        for ((method, route, status), histogram) in sorted {
            histogram.render(
                &mut out,
                "sipline_api_request_duration_seconds",
                &format!("method=\"{method}\",route=\"{route}\",status=\"{status}\""),
            );
        }
        drop(requests);
        out.push_str(
            "# HELP sipline_api_db_query_duration_seconds Time spent in database queries.\n",
        );
        out.push_str("# TYPE sipline_api_db_query_duration_seconds histogram\n");
        self.db_query
            .render(&mut out, "sipline_api_db_query_duration_seconds", "");
        out.push_str(
            "# HELP sipline_api_cache_requests_total Cache lookups by cache and result.\n",
        );
        out.push_str("# TYPE sipline_api_cache_requests_total counter\n");
        for (name, hits, misses) in [
            (caches.nav.name(), &caches.nav.hits, &caches.nav.misses),
            (
                caches.portfolio.name(),
                &caches.portfolio.hits,
                &caches.portfolio.misses,
            ),
            (
                caches.graph.name(),
                &caches.graph.hits,
                &caches.graph.misses,
            ),
        ] {
            let _ = writeln!(
                out,
                "sipline_api_cache_requests_total{{cache=\"{name}\",result=\"hit\"}} {}",
                hits.load(Ordering::Relaxed)
            );
            let _ = writeln!(
                out,
                "sipline_api_cache_requests_total{{cache=\"{name}\",result=\"miss\"}} {}",
                misses.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP sipline_api_cache_bytes Bytes held by each response cache.\n");
        out.push_str("# TYPE sipline_api_cache_bytes gauge\n");
        for (name, bytes) in [
            (caches.nav.name(), caches.nav.bytes()),
            (caches.portfolio.name(), caches.portfolio.bytes()),
            (caches.graph.name(), caches.graph.bytes()),
        ] {
            let _ = writeln!(out, "sipline_api_cache_bytes{{cache=\"{name}\"}} {bytes}");
        }
        out.push_str(
            "# HELP sipline_api_db_pool_connections Database pool connections by state.\n",
        );
        out.push_str("# TYPE sipline_api_db_pool_connections gauge\n");
        let idle = pool.num_idle();
        let size = pool.size() as usize;
        let _ = writeln!(
            out,
            "sipline_api_db_pool_connections{{state=\"idle\"}} {idle}"
        );
        let _ = writeln!(
            out,
            "sipline_api_db_pool_connections{{state=\"in_use\"}} {}",
            size.saturating_sub(idle)
        );
        // Alert on this before the holiday list ends: after it every weekday counts as a
        // business day, and SIP schedules shown to users would be wrong on holidays.
        if let Some(through) = calendar.through() {
            out.push_str("# HELP sipline_holiday_calendar_days_left Days until the NSE holiday list in use ends (negative: ended).\n");
            out.push_str("# TYPE sipline_holiday_calendar_days_left gauge\n");
            let _ = writeln!(
                out,
                "sipline_holiday_calendar_days_left {}",
                (through - today).num_days()
            );
        }
        out
    }
}

/// The jobs' health as the serving store records it (`job_runs`, `publications`), so the
/// Prometheus that scrapes the API can alert on a nightly run that failed or never came.
/// A job's latest run is every shard's latest run for the date it last ran (a shard count
/// changed since leaves no stale shard behind); runs without a date (`notify dispatch`)
/// count as one date. Cheap: the query reads the last 8 days of `job_runs`.
// A night that ended waiting (`no_nav_dated_yet`: no NAV dated the day by the deadline, a
// market holiday the list does not have, settled by the next business day) is not a failure:
// it pages nobody.
const JOB_HEALTH: &str = "WITH recent AS (SELECT job, run_date, shard, outcome, duration_ms, finished_at \
       FROM job_runs WHERE finished_at > now() - INTERVAL '8 days'), \
     last_date AS (SELECT DISTINCT ON (job) job, run_date FROM recent ORDER BY job, finished_at DESC), \
     latest AS (SELECT DISTINCT ON (r.job, coalesce(r.shard, '')) r.job, r.outcome, r.duration_ms, r.finished_at \
       FROM recent r JOIN last_date l ON l.job = r.job AND r.run_date IS NOT DISTINCT FROM l.run_date \
       ORDER BY r.job, coalesce(r.shard, ''), r.finished_at DESC) \
     SELECT job, bool_and(outcome IN ('ok', 'no_nav_dated_yet')) AS ok, max(duration_ms)::bigint AS duration_ms, \
       extract(epoch FROM max(finished_at))::float8 AS finished, \
       (SELECT extract(epoch FROM max(o.finished_at))::float8 FROM recent o \
         WHERE o.job = latest.job AND o.outcome = 'ok') AS succeeded \
     FROM latest GROUP BY job ORDER BY job";

/// Job and publication gauges; on a database error, none (the scrape still succeeds and
/// `up` stays 1, the API's own metrics are still worth having).
pub async fn render_jobs(
    pool: &sqlx::PgPool,
    calendar: &pipeline::calendar::BusinessCalendar,
    today: chrono::NaiveDate,
) -> String {
    match job_health(pool, calendar, today).await {
        Ok(text) => text,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: job health unavailable");
            String::new()
        }
    }
}

async fn job_health(
    pool: &sqlx::PgPool,
    calendar: &pipeline::calendar::BusinessCalendar,
    today: chrono::NaiveDate,
) -> Result<String, sqlx::Error> {
    type Row = (String, Option<bool>, Option<i64>, Option<f64>, Option<f64>);
    let rows: Vec<Row> = sqlx::query_as(JOB_HEALTH).fetch_all(pool).await?;
    let mut out = String::new();
    out.push_str("# HELP sipline_job_last_run_ok Whether the latest run of every shard of a job (last 8 days) succeeded.\n# TYPE sipline_job_last_run_ok gauge\n");
    for (job, ok, ..) in &rows {
        let _ = writeln!(
            out,
            "sipline_job_last_run_ok{{job=\"{job}\"}} {}",
            u8::from(ok.unwrap_or(false))
        );
    }
    out.push_str("# HELP sipline_job_last_duration_seconds Duration of the latest run of a job (its slowest shard).\n# TYPE sipline_job_last_duration_seconds gauge\n");
    for (job, _, duration_ms, ..) in &rows {
        let _ = writeln!(
            out,
            "sipline_job_last_duration_seconds{{job=\"{job}\"}} {}",
            duration_ms.unwrap_or(0) as f64 / 1000.0
        );
    }
    out.push_str("# HELP sipline_job_last_finished_timestamp_seconds When the latest run of a job ended.\n# TYPE sipline_job_last_finished_timestamp_seconds gauge\n");
    for (job, _, _, finished, _) in &rows {
        let _ = writeln!(
            out,
            "sipline_job_last_finished_timestamp_seconds{{job=\"{job}\"}} {}",
            finished.unwrap_or(0.0)
        );
    }
    out.push_str("# HELP sipline_job_last_success_timestamp_seconds When a run of a job last succeeded (0: not in the last 8 days).\n# TYPE sipline_job_last_success_timestamp_seconds gauge\n");
    for (job, .., succeeded) in &rows {
        let _ = writeln!(
            out,
            "sipline_job_last_success_timestamp_seconds{{job=\"{job}\"}} {}",
            succeeded.unwrap_or(0.0)
        );
    }
    // "A nightly run missing" in business days, so weekends and NSE holidays never page:
    // the business days after the latest published date and before today (IST). Tonight's
    // date counts from midnight IST, while its run may still be retrying a late NAV file;
    // the alert waits hours before it fires.
    let latest: Option<(chrono::NaiveDate, f64)> = sqlx::query_as(
        "SELECT as_of, extract(epoch FROM published_at)::float8 FROM publications ORDER BY as_of DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    if let Some((as_of, published_at)) = latest {
        // Nights that ended waiting for a NAV dated the day (a market holiday the list does
        // not have) are not missing runs.
        let waited: Vec<chrono::NaiveDate> = sqlx::query_scalar(
            "SELECT DISTINCT run_date FROM job_runs WHERE outcome = 'no_nav_dated_yet' AND run_date > $1",
        )
        .bind(as_of)
        .fetch_all(pool)
        .await?;
        let behind = match (as_of.succ_opt(), today.pred_opt()) {
            (Some(from), Some(to)) => calendar
                .business_days(from, to)
                .filter(|d| !waited.contains(d))
                .count(),
            _ => 0,
        };
        out.push_str("# HELP sipline_publication_business_days_behind Business days before today (IST) with no publication after the latest published date.\n# TYPE sipline_publication_business_days_behind gauge\n");
        let _ = writeln!(out, "sipline_publication_business_days_behind {behind}");
        out.push_str("# HELP sipline_publication_last_timestamp_seconds When the latest published date was published.\n# TYPE sipline_publication_last_timestamp_seconds gauge\n");
        let _ = writeln!(
            out,
            "sipline_publication_last_timestamp_seconds {published_at}"
        );
    }
    Ok(out)
}
