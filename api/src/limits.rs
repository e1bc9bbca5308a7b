//! Rate limits (OWASP API4): per client address, as a tower layer in front of every `/v1`
//! route (`tower_governor`), and per caller, checked once the token is verified (`governor`,
//! keyed by the token's subject, so one person's many tokens share a budget and a forged
//! subject never reaches it). Both answer 429 with `Retry-After`. Token buckets: `per_second`
//! requests a second on average, bursts of `burst`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;
use tower_governor::{GovernorError, GovernorLayer};

use crate::problem::Problem;

/// A token bucket: `per_second` on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

impl Rate {
    /// `None`: not limited (a rate of 0).
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        (per_second > 0).then_some(Self {
            per_second,
            burst: burst.max(1),
        })
    }

    fn period(self) -> Duration {
        Duration::from_nanos(1_000_000_000 / u64::from(self.per_second.max(1)))
    }

    fn quota(self) -> Quota {
        let burst = NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN);
        Quota::with_period(self.period())
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst)
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RateLimits {
    pub per_user: Option<Rate>,
    pub per_address: Option<Rate>,
}

pub fn too_many(wait: Duration) -> Response {
    Problem::too_many_requests(wait).into_response()
}

/// The client address: the TCP peer (behind a proxy, the proxy's; limit there too). Without
/// connection info (a router driven in-process) every request shares one key.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress;

impl KeyExtractor for ClientAddress {
    type Key = IpAddr;

    fn extract<T>(&self, request: &Request<T>) -> Result<IpAddr, GovernorError> {
        Ok(request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip()))
    }
}

pub type AddressLayer =
    GovernorLayer<ClientAddress, governor::middleware::NoOpMiddleware, axum::body::Body>;

/// The per-address layer, and its limiter to prune (see [`prune_every_minute`]).
pub fn address_layer(rate: Rate) -> Option<(AddressLayer, Pruned)> {
    let config = GovernorConfigBuilder::default()
        .key_extractor(ClientAddress)
        .period(rate.period())
        .burst_size(rate.burst)
        .finish()?;
    let limiter = config.limiter().clone();
    let layer = GovernorLayer::new(config).error_handler(|error| match error {
        GovernorError::TooManyRequests { wait_time, .. } => {
            too_many(Duration::from_secs(wait_time))
        }
        other => {
            tracing::error!(error = %other, "rate limiter");
            Problem::internal().into_response()
        }
    });
    Some((
        layer,
        Box::new(move || {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }),
    ))
}

/// The per-caller limiter, keyed by the token's subject.
pub struct UserLimiter(Arc<DefaultKeyedRateLimiter<String>>);

impl UserLimiter {
    pub fn new(rate: Rate) -> Self {
        Self(Arc::new(DefaultKeyedRateLimiter::keyed(rate.quota())))
    }

    /// A 429 when the caller's budget is spent.
    pub fn check(&self, caller: &crate::auth::Caller) -> Result<(), Problem> {
        self.0.check_key(&caller.subject).map_err(|refused| {
            Problem::too_many_requests(refused.wait_time_from(DefaultClock::default().now()))
        })
    }

    pub fn pruner(&self) -> Pruned {
        let limiter = self.0.clone();
        Box::new(move || {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        })
    }
}

/// Drops a limiter's idle keys (whose bucket is full again).
pub type Pruned = Box<dyn Fn() + Send + Sync>;

/// Prunes the limiters every minute, so keys of callers gone quiet do not accumulate.
pub fn prune_every_minute(limiters: Vec<Pruned>) {
    let limiters = Arc::new(limiters);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            for prune in limiters.iter() {
                prune();
            }
        }
    });
}
