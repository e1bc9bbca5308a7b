//! The seed's cache, in process: latest NAV 24 h, portfolio 15 min, graph 30 min. Values are
//! the serialized JSON bodies, so a hit costs a map lookup and a copy. `publish`'s NOTIFY
//! clears the portfolio and graph caches (and the NAVs, which publish upserts).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Bytes;

pub struct TtlCache<K> {
    name: &'static str,
    ttl: Duration,
    max_entries: usize,
    entries: Mutex<HashMap<K, (Instant, Bytes)>>,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

impl<K: Eq + Hash> TtlCache<K> {
    pub fn new(name: &'static str, ttl: Duration, max_entries: usize) -> Self {
        Self {
            name,
            ttl,
            max_entries,
            entries: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn get(&self, key: &K) -> Option<Bytes> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let found = entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, body)| body.clone());
        drop(entries);
        match &found {
            Some(_) => self.hits.fetch_add(1, Ordering::Relaxed),
            None => self.misses.fetch_add(1, Ordering::Relaxed),
        };
        found
    }

    pub fn insert(&self, key: K, body: Bytes) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.max_entries {
            // Bounded memory without an LRU's bookkeeping: drop what expired, and if that is
            // not enough, start over (a burst of misses, never unbounded growth).
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= self.max_entries {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), body));
    }

    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub struct Caches {
    pub nav: TtlCache<i64>,
    pub portfolio: TtlCache<i64>,
    pub graph: TtlCache<(i64, &'static str)>,
}

impl Caches {
    pub fn new(max_entries: usize) -> Self {
        Self {
            nav: TtlCache::new("nav", Duration::from_secs(24 * 3600), max_entries),
            portfolio: TtlCache::new("portfolio", Duration::from_secs(15 * 60), max_entries),
            graph: TtlCache::new("graph", Duration::from_secs(30 * 60), max_entries),
        }
    }

    pub fn clear_published(&self) {
        self.nav.clear();
        self.portfolio.clear();
        self.graph.clear();
    }
}
