//! Prometheus metrics, rendered by hand (a few histograms and counters do not need a
//! registry crate): request latency per route, database query time, cache hits and misses,
//! pool usage.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        for (bucket, count) in BUCKETS.iter().zip(&self.counts) {
            if seconds <= *bucket {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bucket, count) in BUCKETS.iter().zip(&self.counts) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bucket}\"}} {}",
                count.load(Ordering::Relaxed)
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

#[derive(Default)]
pub struct Metrics {
    /// (method, route, status class) → latency.
    requests: Mutex<BTreeMap<(String, String, u16), std::sync::Arc<Histogram>>>,
    pub db_query: Histogram,
}

impl Metrics {
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let histogram = {
            let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
            requests
                .entry((method.to_string(), route.to_string(), status))
                .or_default()
                .clone()
        };
        histogram.observe(elapsed);
    }

    pub fn render(
        &self,
        caches: &crate::cache::Caches,
        pool: &sqlx::PgPool,
        calendar: &pipeline::calendar::BusinessCalendar,
    ) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP sipline_api_request_duration_seconds Request latency by route and status.\n",
        );
        out.push_str("# TYPE sipline_api_request_duration_seconds histogram\n");
        let requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        for ((method, route, status), histogram) in requests.iter() {
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
            let today = (chrono::Utc::now() + chrono::Duration::minutes(330)).date_naive();
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
