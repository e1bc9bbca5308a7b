//! The seed's cache, in process: latest NAV 24 h, portfolio 15 min, graph 30 min. Values are
//! the serialized JSON bodies, so a hit costs a lookup and a reference-counted copy.
//!
//! Bounded by bytes, not entries (a body is weighed by its length plus a fixed overhead), so 10 million
//! users cannot hold more than the configured memory. `quick_cache` rather than `moka`: a hit
//! is a sharded read lock and one hash probe, with no read log to replay and no epoch to pin
//! (moka's bookkeeping was most of a cached read's CPU, issue 18); eviction is S3-FIFO, which
//! keeps what is read again and lets a one-off scan pass through. Loading is single-flight:
//! concurrent misses of one key wait for one query and share its answer (after a failed load
//! the next waiter loads). `publish`'s NOTIFY invalidates the published caches: a publish
//! replaces every user's rows of the date, so every key is stale at once.

use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;

use crate::problem::Problem;

/// What an entry costs beyond its body: the key, the slot and the expiry.
const ENTRY_OVERHEAD: u64 = 128;

/// A cached body (`None`: nothing published for the key, which is as stable as a body until
/// the next publish, and as worth remembering), when it was loaded, and under which
/// generation (see [`TtlCache::clear`]).
#[derive(Clone)]
struct Entry {
    loaded: Instant,
    generation: u64,
    body: Option<Bytes>,
}

#[derive(Clone)]
struct ByLength;

impl<K> quick_cache::Weighter<K, Entry> for ByLength {
    fn weight(&self, _key: &K, entry: &Entry) -> u64 {
        entry.body.as_ref().map_or(0, Bytes::len) as u64 + ENTRY_OVERHEAD
    }
}

pub struct TtlCache<K> {
    name: &'static str,
    ttl: Duration,
    entries: quick_cache::sync::Cache<K, Entry, ByLength>,
    /// Bumped by every clear: an entry of an older generation is stale even when a load that
    /// began before the clear stored it after.
    generation: AtomicU64,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

impl<K: Eq + Hash + Clone> TtlCache<K> {
    /// A cache of at most `max_bytes` of bodies (and their overhead), each kept `ttl`.
    pub fn new(name: &'static str, ttl: Duration, max_bytes: u64) -> Self {
        // The item estimate sizes the shards' tables up front; bodies are ~1–2 KB.
        let estimated_items = usize::try_from(max_bytes / 2048)
            .unwrap_or(usize::MAX)
            .max(16);
        Self {
            name,
            ttl,
            entries: quick_cache::sync::Cache::with_weighter(estimated_items, max_bytes, ByLength),
            generation: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    fn fresh(&self, entry: &Entry) -> bool {
        entry.generation == self.generation.load(Ordering::Acquire)
            && entry.loaded.elapsed() < self.ttl
    }

    /// The cached body of `key` (`None`: none published), or `load`'s, which is then cached.
    /// Concurrent callers that miss the same key wait for one `load` and share its answer;
    /// nothing is cached on a problem (the caller gets it, and a waiter loads again).
    pub async fn get_or_load<F>(&self, key: K, load: F) -> Result<Option<Bytes>, Problem>
    where
        F: Future<Output = Result<Option<Bytes>, Problem>>,
    {
        loop {
            match self.entries.get_value_or_guard_async(&key).await {
                Ok(entry) if self.fresh(&entry) => {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(entry.body);
                }
                Ok(_) => {
                    // Expired or of a cleared generation: drop it (unless a fresh one replaced
                    // it meanwhile) and look again, joining or becoming the loader.
                    self.entries.remove_if(&key, |entry| !self.fresh(entry));
                }
                Err(guard) => {
                    self.misses.fetch_add(1, Ordering::Relaxed);
                    let generation = self.generation.load(Ordering::Acquire);
                    let body = load.await?;
                    let _ = guard.insert(Entry {
                        loaded: Instant::now(),
                        generation,
                        body: body.clone(),
                    });
                    return Ok(body);
                }
            }
        }
    }

    pub fn insert(&self, key: K, body: Bytes) {
        let entry = Entry {
            loaded: Instant::now(),
            generation: self.generation.load(Ordering::Acquire),
            body: Some(body),
        };
        self.entries.insert(key, entry);
    }

    /// Every entry stale from now on, loads in flight included.
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.clear();
    }

    /// Bytes held: bodies and their overhead.
    pub fn bytes(&self) -> u64 {
        self.entries.weight()
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
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn stays_under_its_byte_bound_with_ten_times_its_size_in_distinct_users() {
        let bound = 1_000_000;
        let cache = TtlCache::new("portfolio", Duration::from_secs(60), bound);
        // Portfolio bodies of ~2 KB for 10× the bound's worth of distinct users.
        let body = Bytes::from(vec![b'x'; 2_000]);
        let users = 10 * bound / 2_000;
        for user in 0..users as i64 {
            cache.insert(user, body.clone());
        }
        let held = cache.bytes();
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
                            Ok(Some(Bytes::from_static(b"{}")))
                        })
                        .await
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(
                task.await.unwrap().unwrap(),
                Some(Bytes::from_static(b"{}"))
            );
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
            .get_or_load(1, async { Ok(Some(Bytes::from_static(b"1"))) })
            .await
            .unwrap();
        assert_eq!(loaded, Some(Bytes::from_static(b"1")));
    }

    #[tokio::test]
    async fn a_load_that_began_before_a_clear_is_not_served_after_it() {
        let cache = Arc::new(TtlCache::new(
            "portfolio",
            Duration::from_secs(60),
            1_000_000,
        ));
        let (started, release) = (
            Arc::new(tokio::sync::Notify::new()),
            Arc::new(tokio::sync::Notify::new()),
        );
        let loading = {
            let (cache, started, release) = (cache.clone(), started.clone(), release.clone());
            tokio::spawn(async move {
                cache
                    .get_or_load(1, async {
                        started.notify_one();
                        release.notified().await;
                        Ok(Some(Bytes::from_static(b"old date")))
                    })
                    .await
            })
        };
        started.notified().await;
        cache.clear(); // a publish lands while the old date's row is being read
        release.notify_one();
        assert_eq!(
            loading.await.unwrap().unwrap(),
            Some(Bytes::from_static(b"old date"))
        );
        let next = cache
            .get_or_load(1, async { Ok(Some(Bytes::from_static(b"new date"))) })
            .await
            .unwrap();
        assert_eq!(next, Some(Bytes::from_static(b"new date")));
    }

    #[tokio::test]
    async fn an_entry_is_loaded_again_after_its_time_to_live() {
        let cache = TtlCache::new("nav", Duration::from_millis(50), 1_000_000);
        let first = cache
            .get_or_load(1, async { Ok(Some(Bytes::from_static(b"1"))) })
            .await
            .unwrap();
        let cached = cache
            .get_or_load(1, async { Ok(Some(Bytes::from_static(b"2"))) })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(80)).await;
        let reloaded = cache
            .get_or_load(1, async { Ok(Some(Bytes::from_static(b"3"))) })
            .await
            .unwrap();
        let body = |text: &'static [u8]| Some(Bytes::from_static(text));
        assert_eq!(
            (first, cached, reloaded),
            (body(b"1"), body(b"1"), body(b"3"))
        );
        assert_eq!(
            (
                cache.hits.load(Ordering::Relaxed),
                cache.misses.load(Ordering::Relaxed)
            ),
            (1, 2)
        );
    }

    #[tokio::test]
    async fn nothing_published_is_remembered_until_a_clear() {
        let cache = TtlCache::new("graph", Duration::from_secs(60), 1_000_000);
        let loads = AtomicU64::new(0);
        let load = || async {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok(None)
        };
        assert_eq!(cache.get_or_load(9, load()).await.unwrap(), None);
        assert_eq!(cache.get_or_load(9, load()).await.unwrap(), None);
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        cache.clear();
        let published = cache
            .get_or_load(9, async { Ok(Some(Bytes::from_static(b"{}"))) })
            .await
            .unwrap();
        assert_eq!(published, Some(Bytes::from_static(b"{}")));
    }
}
