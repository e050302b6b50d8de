//! `stratus serve`: every role in one process.
//!
//! Start-up phases:
//! 1. validate the configuration;
//! 2. create the registry (and the open `default` cache if configured);
//! 3. bind the RESP and HTTP listeners (port 0 = ephemeral; the bound
//!    addresses are reported);
//! 4. spawn the accept loops and the active-expiry cycle.
//!
//! Shutdown: cancel the token; accept loops stop, connections flush their
//! pending replies and close, and [`Running::shutdown`] waits for them up to
//! the grace period.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServeConfig;
use crate::control::Registry;
use crate::control::api::Endpoint;
use crate::control::http::{self, HttpState};
use crate::control::registry::{DEFAULT_CACHE, NewCache};
use crate::metrics::Metrics;
use crate::proxy::{self, ProxyShared};
use crate::resp::Decoder;

/// How often the active expiry cycle runs (Redis's `hz 10`).
const EXPIRE_PERIOD: Duration = Duration::from_millis(100);
/// Heap entries examined per partition per round, between lock releases.
const EXPIRE_BUDGET: usize = 256;
/// Rounds per period at most: bounds the cycle's CPU share.
const EXPIRE_MAX_ROUNDS: usize = 64;

/// A running server.
pub struct Running {
    pub resp_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub registry: Arc<Registry>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    grace: Duration,
}

/// Starts every role of `stratus serve` on the current tokio runtime.
pub async fn start(config: ServeConfig) -> Result<Running, String> {
    config.validate()?;
    let metrics = Arc::new(Metrics::new());
    let registry = Arc::new(Registry::new(metrics));
    let default_cache = config
        .default_cache_open()
        .then(|| DEFAULT_CACHE.to_string());
    if let Some(name) = &default_cache {
        registry
            .create(NewCache {
                name: name.clone(),
                description: "embedded default cache (no password)".into(),
                open: true,
                ..NewCache::default()
            })
            .map_err(|e| e.to_string())?;
    }
    let resp_listener = TcpListener::bind((config.bind, config.port))
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", config.bind, config.port))?;
    let http_listener = TcpListener::bind((config.http_bind, config.http_port))
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {}:{}: {e}",
                config.http_bind, config.http_port
            )
        })?;
    let resp_addr = resp_listener.local_addr().map_err(|e| e.to_string())?;
    let http_addr = http_listener.local_addr().map_err(|e| e.to_string())?;

    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let shared = Arc::new(ProxyShared::new(
        registry.clone(),
        default_cache,
        Decoder::new(config.limits()),
        config.max_key_len,
        config.output_buffer_limit,
        config.max_clients,
        Duration::from_millis(config.throttle_max_wait_ms),
    ));
    tracker.spawn(proxy::serve(
        resp_listener,
        shared,
        shutdown.clone(),
        tracker.clone(),
    ));
    let state = Arc::new(HttpState {
        registry: registry.clone(),
        endpoint: Endpoint(resp_addr),
        admin_token: config.admin_token.clone(),
    });
    tracker.spawn(http::serve(http_listener, state, shutdown.clone()));
    tracker.spawn(expire_cycle(registry.clone(), shutdown.clone()));
    tracker.spawn(usage_cycle(registry.clone(), shutdown.clone()));
    tracing::info!(%resp_addr, %http_addr, default_cache = config.default_cache_open(), "stratus serving");
    Ok(Running {
        resp_addr,
        http_addr,
        registry,
        shutdown,
        tracker,
        grace: Duration::from_secs(config.shutdown_grace),
    })
}

impl Running {
    /// Stops accepting, lets connections flush and close, waits up to the grace period.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(self.grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("shutdown grace period over; dropping remaining connections");
        }
    }
}

/// How often stored bytes are integrated into byte-seconds.
const USAGE_PERIOD: Duration = Duration::from_secs(1);
/// Every this many usage periods, metrics are published (keeps live series
/// from idling out between scrapes and drains histograms).
const PUBLISH_EVERY: u64 = 5;

/// The usage cycle: integrates each cache's stored bytes over time (the
/// billing byte-seconds, with the storage minimum applied for the billed
/// figure) and publishes metrics periodically.
async fn usage_cycle(registry: Arc<Registry>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(USAGE_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = tokio::time::Instant::now();
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let now = tokio::time::Instant::now();
        let dt_ms = now.duration_since(last).as_millis() as u64;
        last = now;
        for cache in registry.list() {
            let minimum = cache.limits().min_storage_bytes();
            cache
                .usage
                .accrue_storage(cache.pool.used_bytes(), minimum, dt_ms);
        }
        ticks += 1;
        if ticks.is_multiple_of(PUBLISH_EVERY) {
            registry.publish_metrics(false);
        }
    }
}

/// The active expiry cycle: every period, each partition deletes keys whose
/// deadline has passed, in bounded rounds that release the partition's lock.
async fn expire_cycle(registry: Arc<Registry>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(EXPIRE_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        for cache in registry.list() {
            for part in cache.pool.partitions() {
                for _ in 0..EXPIRE_MAX_ROUNDS {
                    let now = proxy::conn::now_ms();
                    if part.active_expire(now, EXPIRE_BUDGET) < EXPIRE_BUDGET / 4 {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
            }
        }
    }
}
