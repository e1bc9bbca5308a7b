//! The sipline HTTP API: a thin axum service over the PostgreSQL serving store. Portfolios,
//! charts, SIPs, NAVs, notifications and NAV alerts under `/v1`, behind JWT bearer auth; reads
//! of published data go through an in-process cache that `publish`'s NOTIFY invalidates.

// The OpenAPI document is one `json!` literal deeper than the macro's default recursion.
#![recursion_limit = "256"]

pub mod auth;
pub mod cache;
pub mod graphql;
pub mod limits;
pub mod metrics;
mod openapi;
pub mod problem;
pub mod replica;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::PgPool;

pub use serving::secret::Secret;
pub use serving::{MIGRATOR, PUBLISH_CHANNEL};

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub database_url: String,
    pub auth: auth::AuthConfig,
    /// A streaming-replication standby of `database_url` for reads of published data.
    pub read_database_url: Option<String>,
    /// The standby is left out while its replay lags more than this.
    pub max_replica_lag: Duration,
    /// Apply migrations before serving.
    pub migrate: bool,
    pub request_timeout: Duration,
    pub max_connections: u32,
    /// Bytes the response caches may hold, all together.
    pub cache_bytes: u64,
    pub limits: limits::RateLimits,
    /// The jobs' business calendar: SIP schedules shown to users follow it.
    pub calendar: pipeline::calendar::BusinessCalendar,
    /// "Now" for the date rules (today, the cut-off): the wall clock unless `--now` set it.
    pub clock: serving::Clock,
    /// When set, `/metrics` answers only `Authorization: Bearer <token>`.
    pub metrics_token: Option<Secret>,
    /// The key unsubscribe links are signed with (the dispatcher's); unset, `/v1/unsubscribe`
    /// answers 404.
    pub unsubscribe_secret: Option<Secret>,
    /// The key unsubscribe links were signed with before the last rotation: its links still
    /// work until they expire (`serving::unsubscribe::LINK_DAYS`).
    pub unsubscribe_previous_secret: Option<Secret>,
    /// The key the dispatcher signs providers' callback URLs with; unset, the callback routes
    /// answer 404.
    pub provider_callback_secret: Option<Secret>,
    /// The callback key before the last rotation: reports on messages sent before it land.
    pub provider_callback_previous_secret: Option<Secret>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("listening on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("serving: {0}")]
    Serve(std::io::Error),
}

pub struct AppState {
    /// The primary: every write, and reads that must see them.
    pub pool: PgPool,
    /// The standby for published reads, when configured (see `replica`).
    pub replica: Option<Arc<replica::Replica>>,
    pub verifier: auth::Verifier,
    pub caches: cache::Caches,
    pub metrics: metrics::Metrics,
    /// Token subject → user id: ids never change, but a subject idle for an hour is dropped,
    /// so the map holds the active users, not every user ever seen.
    pub subjects: moka::sync::Cache<String, i64>,
    /// Per-caller rate limit (`None`: off).
    pub user_limiter: Option<limits::UserLimiter>,
    pub limits: limits::RateLimits,
    pub request_timeout: Duration,
    pub calendar: pipeline::calendar::BusinessCalendar,
    pub clock: serving::Clock,
    pub metrics_token: Option<Secret>,
    pub unsubscribe_secret: Option<Secret>,
    pub unsubscribe_previous_secret: Option<Secret>,
    pub provider_callback_secret: Option<Secret>,
    pub provider_callback_previous_secret: Option<Secret>,
    /// The job and publication gauges of the last scrape, and when they were read.
    pub job_gauges: tokio::sync::Mutex<Option<(std::time::Instant, String)>>,
}

pub type Shared = Arc<AppState>;

/// Subjects remembered at most (an entry is ~100 bytes: ~100 MB at the bound).
const SUBJECTS_KEPT: u64 = 1_000_000;

impl AppState {
    pub fn new(pool: PgPool, config: &ServeConfig) -> Shared {
        Self::with_replica(pool, None, config)
    }

    pub fn with_replica(
        pool: PgPool,
        replica: Option<Arc<replica::Replica>>,
        config: &ServeConfig,
    ) -> Shared {
        Arc::new(Self {
            pool,
            replica,
            verifier: auth::Verifier::new(config.auth.clone()),
            caches: cache::Caches::new(config.cache_bytes),
            metrics: metrics::Metrics::default(),
            subjects: moka::sync::Cache::builder()
                .max_capacity(SUBJECTS_KEPT)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
            user_limiter: config.limits.per_user.map(limits::UserLimiter::new),
            limits: config.limits,
            request_timeout: config.request_timeout,
            calendar: config.calendar.clone(),
            clock: config.clock,
            metrics_token: config.metrics_token.clone(),
            unsubscribe_secret: config.unsubscribe_secret.clone(),
            unsubscribe_previous_secret: config.unsubscribe_previous_secret.clone(),
            provider_callback_secret: config.provider_callback_secret.clone(),
            provider_callback_previous_secret: config.provider_callback_previous_secret.clone(),
            job_gauges: tokio::sync::Mutex::new(None),
        })
    }
}

pub use routes::router;

/// Serves until SIGTERM or Ctrl-C, then stops accepting and lets in-flight requests finish.
pub async fn serve(config: ServeConfig) -> Result<(), ServeError> {
    if config.migrate {
        // On a connection of its own: a migration may take longer than any request may.
        let mut conn =
            <sqlx::PgConnection as sqlx::Connection>::connect(&config.database_url).await?;
        MIGRATOR.run(&mut conn).await?;
    }
    // A statement may not outlive its request, and a lock wait (a publish switching dates)
    // ends after two seconds with a 503 rather than queueing every reader behind it.
    let statement_timeout_ms = config.request_timeout.as_millis().max(1);
    let pool_options = || {
        PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    sqlx::Executor::execute(
                        &mut *conn,
                        sqlx::AssertSqlSafe(format!(
                            "SET statement_timeout = {statement_timeout_ms}; SET lock_timeout = 2000"
                        )),
                    )
                    .await?;
                    Ok(())
                })
            })
    };
    let pool = pool_options().connect(&config.database_url).await?;
    // The standby may be down at start: connected lazily, the monitor finds out.
    let replica = match &config.read_database_url {
        Some(url) => {
            let standby = pool_options()
                .acquire_timeout(Duration::from_secs(1))
                .connect_lazy(url)?;
            let replica = Arc::new(replica::Replica::new(standby, config.max_replica_lag));
            tokio::spawn(replica.clone().monitor(pool.clone()));
            Some(replica)
        }
        None => None,
    };

    let state = AppState::with_replica(pool, replica, &config);
    tokio::spawn(invalidate_on_publish(
        config.database_url.clone(),
        state.clone(),
    ));
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| ServeError::Listen(config.listen, e))?;
    tracing::info!(listen = %config.listen, "serving");
    // Connection info: the per-address rate limit keys on the peer.
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .map_err(ServeError::Serve)?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// Published data may have changed: the standby must first replay to the primary's position
/// now (so no read refills a cache from a standby still showing the previous date), then
/// the caches are cleared.
async fn published_changed(state: &Shared) {
    if let Some(replica) = &state.replica {
        replica.publish_announced(&state.pool).await;
    }
    state.caches.clear_published();
}

/// Clears the caches of published data on every `publish` NOTIFY, and whenever the LISTEN
/// connection was lost (a NOTIFY may have been missed meanwhile).
async fn invalidate_on_publish(database_url: String, state: Shared) {
    loop {
        let mut listener = match PgListener::connect(&database_url).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "cache invalidation: cannot LISTEN; retrying");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(PUBLISH_CHANNEL).await {
            tracing::warn!(error = %e, "cache invalidation: LISTEN failed; retrying");
            tokio::time::sleep(Duration::from_secs(5)).await;
            continue;
        }
        published_changed(&state).await;
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    tracing::info!(
                        payload = notification.payload(),
                        "publish notified: caches cleared"
                    );
                    published_changed(&state).await;
                }
                Ok(None) => {
                    tracing::warn!("cache invalidation: connection lost; caches cleared");
                    published_changed(&state).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cache invalidation: reconnecting");
                    published_changed(&state).await;
                    break;
                }
            }
        }
    }
}
