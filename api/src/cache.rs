//! The seed's cache, in process: latest NAV 24 h, portfolio 15 min, graph 30 min. Values are
//! the serialized JSON bodies, so a hit costs a lookup and a reference-counted copy.
//!
//! Bounded by bytes, not entries (`moka`: a body is weighed by its length plus its key), so
//! 10 million users cannot hold more than the configured memory; the least recently used go
//! first. Loading is single-flight: concurrent misses of one key run one query and share its
//! answer. `publish`'s NOTIFY invalidates the published caches: a publish replaces every
//! user's rows of the date, so every key is stale at once.

use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;

use crate::problem::Problem;

/// What an entry costs beyond its body: the key, moka's node and the map's slot.
const ENTRY_OVERHEAD: u32 = 128;

pub struct TtlCache<K> {
    name: &'static str,
    entries: moka::future::Cache<K, Bytes>,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

impl<K: Eq + Hash + Send + Sync + Clone + 'static> TtlCache<K> {
    /// A cache of at most `max_bytes` of bodies (and their overhead), each kept `ttl`.
    pub fn new(name: &'static str, ttl: Duration, max_bytes: u64) -> Self {
        Self {
            name,
            entries: moka::future::Cache::builder()
                .name(name)
                .max_capacity(max_bytes)
                .weigher(|_key, body: &Bytes| {
                    u32::try_from(body.len())
                        .unwrap_or(u32::MAX)
                        .saturating_add(ENTRY_OVERHEAD)
                })
                .time_to_live(ttl)
                .build(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The cached body of `key`, or `load`'s, which is then cached. Concurrent callers that
    /// miss the same key wait for one `load` and share its body or its problem (nothing is
    /// cached on a problem).
    pub async fn get_or_load<F>(&self, key: K, load: F) -> Result<Bytes, Problem>
    where
        F: Future<Output = Result<Bytes, Problem>>,
    {
        if let Some(body) = self.entries.get(&key).await {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(body);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        self.entries
            .try_get_with(key, load)
            .await
            .map_err(Arc::unwrap_or_clone)
    }

    pub async fn get(&self, key: &K) -> Option<Bytes> {
        self.entries.get(key).await
    }

    pub async fn insert(&self, key: K, body: Bytes) {
        self.entries.insert(key, body).await;
    }

    pub fn clear(&self) {
        self.entries.invalidate_all();
    }

    /// Bytes held (bodies and overhead), after pending evictions ran.
    pub async fn weighted_size(&self) -> u64 {
        self.entries.run_pending_tasks().await;
        self.entries.weighted_size()
    }

    /// Bytes held as last counted (without waiting for pending evictions): for metrics.
    pub fn bytes(&self) -> u64 {
        self.entries.weighted_size()
    }
}

pub struct Caches {
    pub nav: TtlCache<i64>,
    pub portfolio: TtlCache<i64>,
    pub graph: TtlCache<(i64, &'static str)>,
}

impl Caches {
    /// `max_bytes` shared out: a tenth to NAVs (small bodies, ~14,000 schemes), the rest
    /// evenly to portfolios and charts.
    pub fn new(max_bytes: u64) -> Self {
        let tenth = (max_bytes / 10).max(1);
        let half_rest = ((max_bytes - tenth.min(max_bytes)) / 2).max(1);
        Self {
            nav: TtlCache::new("nav", Duration::from_secs(24 * 3600), tenth),
            portfolio: TtlCache::new("portfolio", Duration::from_secs(15 * 60), half_rest),
            graph: TtlCache::new("graph", Duration::from_secs(30 * 60), half_rest),
        }
    }

    pub fn clear_published(&self) {
        self.nav.clear();
        self.portfolio.clear();
        self.graph.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stays_under_its_byte_bound_with_ten_times_its_size_in_distinct_users() {
        let bound = 1_000_000;
        let cache = TtlCache::new("portfolio", Duration::from_secs(60), bound);
        // Portfolio bodies of ~2 KB for 10× the bound's worth of distinct users.
        let body = Bytes::from(vec![b'x'; 2_000]);
        let users = 10 * bound / 2_000;
        for user in 0..users as i64 {
            cache.insert(user, body.clone()).await;
        }
        let held = cache.weighted_size().await;
        assert!(held <= bound, "{held} bytes held, bound {bound}");
        assert!(held > bound / 2, "{held} bytes held: the bound is not used");
    }

    #[tokio::test]
    async fn concurrent_misses_of_one_key_load_it_once() {
        let cache = Arc::new(TtlCache::new("graph", Duration::from_secs(60), 1_000_000));
        let loads = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (cache, loads) = (cache.clone(), loads.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_load((7, "pie"), async {
                            loads.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok(Bytes::from_static(b"{}"))
                        })
                        .await
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap(), Bytes::from_static(b"{}"));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_load_is_not_cached() {
        let cache = TtlCache::new("nav", Duration::from_secs(60), 1_000_000);
        let failed = cache
            .get_or_load(1, async { Err(Problem::not_found("none")) })
            .await;
        assert_eq!(
            failed.unwrap_err().status,
            axum::http::StatusCode::NOT_FOUND
        );
        let loaded = cache
            .get_or_load(1, async { Ok(Bytes::from_static(b"1")) })
            .await
            .unwrap();
        assert_eq!(loaded, Bytes::from_static(b"1"));
    }
}
