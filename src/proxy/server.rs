//! The RESP accept loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::conn;
use crate::control::{Cache, Registry};
use crate::metrics::GlobalCounters;
use crate::resp::{Decoder, reply};

/// What every connection shares.
pub struct ProxyShared {
    pub registry: Arc<Registry>,
    /// Name of the cache unauthenticated connections bind to, if open.
    pub default_cache: Option<String>,
    pub decoder: Decoder,
    pub max_key_len: usize,
    pub output_buffer_limit: usize,
    pub max_clients: usize,
    /// Longest a request waits for ECPU/s admission before THROTTLED.
    pub throttle_max_wait: std::time::Duration,
    /// Longest a Lua script may run (set after `new`).
    pub script_time_limit: std::time::Duration,
    pub started: std::time::Instant,
    next_id: AtomicU64,
}

impl ProxyShared {
    pub fn new(
        registry: Arc<Registry>,
        default_cache: Option<String>,
        decoder: Decoder,
        max_key_len: usize,
        output_buffer_limit: usize,
        max_clients: usize,
        throttle_max_wait: std::time::Duration,
    ) -> ProxyShared {
        ProxyShared {
            registry,
            default_cache,
            decoder,
            max_key_len,
            output_buffer_limit,
            max_clients,
            throttle_max_wait,
            script_time_limit: std::time::Duration::from_millis(
                crate::config::DEFAULT_SCRIPT_TIME_LIMIT_MS,
            ),
            started: std::time::Instant::now(),
            next_id: AtomicU64::new(1),
        }
    }

    /// The open default cache, if configured and still present.
    pub fn default_cache(&self) -> Option<Arc<Cache>> {
        let name = self.default_cache.as_ref()?;
        self.registry.get(name).filter(|c| c.open)
    }

    pub fn next_client_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// Accepts connections until `shutdown`; each runs in its own task on `tracker`.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<ProxyShared>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let permits = Arc::new(Semaphore::new(shared.max_clients));
    let metrics = shared.registry.metrics.clone();
    loop {
        let (mut stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => return,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            GlobalCounters::bump(&metrics.global.connections_rejected);
            tracker.spawn(async move {
                let line = format!("-{}\r\n", reply::MAX_CLIENTS);
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), stream.write_all(line.as_bytes()))
                        .await;
            });
            continue;
        };
        GlobalCounters::bump(&metrics.global.connections_accepted);
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            conn::run(stream, peer, shared, shutdown).await;
            drop(permit);
        });
    }
}
