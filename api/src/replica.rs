//! Reads of published data from a hot standby (issue 40 §3): `serve --read-database-url`
//! names a streaming-replication standby of the serving store. Published data (portfolios,
//! charts, instalments, schemes, NAVs, statements) is read there when the standby is up, has
//! replayed the latest publish this process was told of, and lags by at most
//! `--max-replica-lag-secs`; a person who wrote within twice that reads from the primary
//! (their own writes first); anything else reads the primary, as do all writes and the
//! person-owned lists (SIPs, orders, plans, alerts, preferences, notifications).
//!
//! A standby that stops answering costs nobody an error: a read that fails to reach it is
//! retried on the primary at once, and the standby is left out until the monitor (every
//! 500 ms) sees it answer again. Its lag is exported as metrics for the alert rules.
//!
//! Why the replay position as well as the lag: the caches of published data are cleared on
//! a publish's NOTIFY, which comes from the primary; a read sent to a standby that has not
//! replayed that publish yet would refill the cache with the previous date until the next
//! publish. The NOTIFY handler records the primary's WAL position, and the standby serves
//! published reads again only once it has replayed past it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sqlx::PgPool;

/// The standby's pool and what the monitor last saw of it.
pub struct Replica {
    pub pool: PgPool,
    max_lag: Duration,
    up: AtomicBool,
    /// `pg_last_wal_replay_lsn()` as a number.
    replayed: AtomicU64,
    /// The primary's WAL position at the latest publish NOTIFY.
    published: AtomicU64,
    lag_seconds_bits: AtomicU64,
    lag_bytes: AtomicU64,
    fallbacks: AtomicU64,
    /// The primary's WAL positions the monitor saw and when, oldest first, until the standby
    /// replays past them: the lag is the age of the oldest one still ahead of it.
    seen: std::sync::Mutex<std::collections::VecDeque<(u64, std::time::Instant)>>,
    /// People who wrote recently: their reads go to the primary.
    recent_writers: moka::sync::Cache<i64, ()>,
}

const REPLAY_POSITION: &str = "SELECT pg_last_wal_replay_lsn()::text";
const PRIMARY_POSITION: &str = "SELECT pg_current_wal_lsn()::text";

/// How often the monitor looks at the standby.
const MONITOR_EVERY: Duration = Duration::from_millis(500);
/// Primary positions remembered at most (an hour of looks): a standby further behind shows
/// an hour's lag and more, as the oldest is kept.
const POSITIONS_KEPT: usize = 7_200;
/// `published` while the primary's position at a publish is unknown: the standby serves no
/// published read until the monitor has read the primary's position again.
const POSITION_UNKNOWN: u64 = u64::MAX;

impl Replica {
    pub fn new(pool: PgPool, max_lag: Duration) -> Self {
        Self {
            pool,
            max_lag,
            up: AtomicBool::new(false),
            replayed: AtomicU64::new(0),
            published: AtomicU64::new(0),
            lag_seconds_bits: AtomicU64::new(0f64.to_bits()),
            lag_bytes: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            seen: std::sync::Mutex::new(std::collections::VecDeque::new()),
            recent_writers: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(max_lag.saturating_mul(2).max(Duration::from_secs(1)))
                .build(),
        }
    }

    /// Whether a published read for `user` may go to the standby now.
    pub fn serves(&self, user: Option<i64>) -> bool {
        self.up.load(Ordering::Acquire)
            && self.replayed.load(Ordering::Acquire) >= self.published.load(Ordering::Acquire)
            && user.is_none_or(|u| !self.recent_writers.contains_key(&u))
    }

    /// `user` wrote (or was created): their reads go to the primary for a while.
    pub fn wrote(&self, user: i64) {
        self.recent_writers.insert(user, ());
    }

    /// A publish was announced: the standby serves published reads again once it has
    /// replayed past the primary's position now.
    pub async fn publish_announced(&self, primary: &PgPool) {
        match sqlx::query_scalar::<_, String>(PRIMARY_POSITION)
            .fetch_one(primary)
            .await
        {
            Ok(lsn) => {
                self.published
                    .fetch_max(parse_lsn(&lsn).unwrap_or(u64::MAX), Ordering::AcqRel);
            }
            // Not knowing where the primary is: the primary serves until the monitor reads
            // its position (which is past the publish).
            Err(e) => {
                tracing::warn!(error = %e, "replica: cannot read the primary's WAL position");
                self.published.store(POSITION_UNKNOWN, Ordering::Release);
            }
        }
    }

    /// One look at the standby: up, replay position and lag. The primary's position is read
    /// first, so WAL written between the two reads does not count as behind. Lag is how long
    /// ago the monitor first saw the oldest primary position the standby has not replayed
    /// (0 when caught up): a long publish replayed as it streams shows little lag, an idle
    /// primary none — unlike the time since the last replayed commit.
    async fn observe(&self, primary: &PgPool) {
        let primary_at = sqlx::query_scalar::<_, String>(PRIMARY_POSITION)
            .fetch_one(primary)
            .await
            .ok()
            .and_then(|l| parse_lsn(&l));
        if let Some(at) = primary_at {
            let _ = self.published.compare_exchange(
                POSITION_UNKNOWN,
                at,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        let standby: Result<Option<String>, sqlx::Error> = sqlx::query_scalar(REPLAY_POSITION)
            .fetch_one(&self.pool)
            .await;
        let replayed = match standby {
            Ok(Some(lsn)) => parse_lsn(&lsn).unwrap_or(0),
            Ok(None) => {
                // Not a standby (a primary promoted, or a wrong URL): nothing to wait on.
                if self.up.swap(false, Ordering::AcqRel) {
                    tracing::warn!("replica: --read-database-url is not a standby in recovery");
                }
                return;
            }
            Err(e) => {
                if self.up.swap(false, Ordering::AcqRel) {
                    tracing::warn!(error = %e, "replica: standby unreachable; reading the primary");
                }
                return;
            }
        };
        let now = std::time::Instant::now();
        let lag = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(at) = primary_at {
                if seen.back().is_none_or(|(last, _)| at > *last) && seen.len() < POSITIONS_KEPT {
                    seen.push_back((at, now));
                }
            }
            while seen.front().is_some_and(|(at, _)| *at <= replayed) {
                seen.pop_front();
            }
            seen.front()
                .map_or(0.0, |(_, since)| now.duration_since(*since).as_secs_f64())
        };
        let behind = primary_at.map_or(0, |p| p.saturating_sub(replayed));
        self.replayed.store(replayed, Ordering::Release);
        self.lag_bytes.store(behind, Ordering::Release);
        self.lag_seconds_bits
            .store(lag.to_bits(), Ordering::Release);
        let healthy = lag <= self.max_lag.as_secs_f64();
        if self.up.swap(healthy, Ordering::AcqRel) != healthy {
            tracing::info!(healthy, lag_seconds = lag, "replica: standby state changed");
        }
    }

    /// Looks at the standby every 500 ms, for ever (spawned by `serve`).
    pub async fn monitor(self: std::sync::Arc<Self>, primary: PgPool) {
        loop {
            self.observe(&primary).await;
            tokio::time::sleep(MONITOR_EVERY).await;
        }
    }

    /// A read that could not reach the standby: left out until the monitor sees it again.
    fn fell_back(&self, error: &sqlx::Error) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        if self.up.swap(false, Ordering::AcqRel) {
            tracing::warn!(error = %error, "replica: a read failed on the standby; reading the primary");
        }
    }

    /// The metrics lines (Prometheus text) of the standby.
    pub fn metrics(&self) -> String {
        format!(
            "sipline_api_replica_up {}\nsipline_api_replica_lag_seconds {}\n\
             sipline_api_replica_lag_bytes {}\nsipline_api_replica_fallbacks_total {}\n",
            u8::from(self.up.load(Ordering::Acquire)),
            f64::from_bits(self.lag_seconds_bits.load(Ordering::Acquire)),
            self.lag_bytes.load(Ordering::Acquire),
            self.fallbacks.load(Ordering::Relaxed),
        )
    }
}

/// The descriptions of the standby's metrics (exported even without a standby, so the alert
/// rules and the dashboard can name them).
pub const METRICS_HELP: &str = "\
# HELP sipline_api_replica_up 1 when published reads go to the standby (up, replayed, within the lag bound).\n\
# TYPE sipline_api_replica_up gauge\n\
# HELP sipline_api_replica_lag_seconds How long ago the primary was at the oldest WAL position the standby has not replayed (0 when caught up).\n\
# TYPE sipline_api_replica_lag_seconds gauge\n\
# HELP sipline_api_replica_lag_bytes WAL bytes the standby has yet to replay.\n\
# TYPE sipline_api_replica_lag_bytes gauge\n\
# HELP sipline_api_replica_fallbacks_total Reads that failed on the standby and were answered from the primary.\n\
# TYPE sipline_api_replica_fallbacks_total counter\n";

/// `X/Y` (hex halves) as one number.
fn parse_lsn(lsn: &str) -> Option<u64> {
    let (high, low) = lsn.split_once('/')?;
    Some((u64::from_str_radix(high, 16).ok()? << 32) | u64::from_str_radix(low, 16).ok()?)
}

/// Whether an error means the server could not be reached or is going away (a retry on
/// another server may succeed), rather than a fault of the query.
fn unreachable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => true,
        // Connection exceptions (class 08), too_many_connections, admin_shutdown,
        // crash_shutdown, cannot_connect_now, database_dropped; and a standby cancelling a
        // query that conflicts with recovery (serialization_failure from recovery).
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08")
                || matches!(
                    code.as_ref(),
                    "53300" | "57P01" | "57P02" | "57P03" | "57P04" | "40001"
                )
        }),
        _ => false,
    }
}

impl crate::AppState {
    /// Runs a read of published data on the standby when it serves `user` now, else on the
    /// primary; a standby that cannot be reached is retried on the primary at once.
    pub async fn read_published<'a, T, F, Fut>(
        &'a self,
        user: Option<i64>,
        query: F,
    ) -> Result<T, sqlx::Error>
    where
        F: Fn(&'a PgPool) -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        if let Some(replica) = self.replica.as_deref().filter(|r| r.serves(user)) {
            match query(&replica.pool).await {
                Err(e) if unreachable(&e) => replica.fell_back(&e),
                done => return done,
            }
        }
        query(&self.pool).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_lsn_is_its_two_hex_halves() {
        assert_eq!(parse_lsn("0/3000060"), Some(0x300_0060));
        assert_eq!(parse_lsn("1/0"), Some(1 << 32));
        assert!(parse_lsn("1/0") > parse_lsn("0/FFFFFFFF"));
        assert_eq!(parse_lsn("nope"), None);
    }
}
