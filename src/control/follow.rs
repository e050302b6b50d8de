//! A proxy follows control (`stratus proxy`).
//!
//! Control owns the caches, their tokens, limits and users; a proxy keeps
//! a copy, read at each check-in ([`Follower::check_in`]: it reports the
//! ECPU/s it used by cache, reads the caches to serve and its share of
//! each cache's ECPU/s limit). Check-ins run every period, and at once
//! after every change a proxy passes on to control for its clients
//! ([`Follower::forward`]: the control API's writes sent to the proxy,
//! `ACL SETUSER` and `DELUSER`) — so a client that changed something
//! through a proxy sees it there as soon as it has the answer. Control
//! unreachable, the proxy keeps serving what it last read, at the shares
//! it last had.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::{Method, StatusCode};
use tokio_util::sync::CancellationToken;

use super::Registry;
use super::http;
use crate::node::Nodes;

/// Largest answer to a forwarded request a proxy reads, bytes.
const MAX_FORWARDED_ANSWER: usize = 1024 * 1024;

/// A proxy's link to control.
pub struct Follower {
    registry: Arc<Registry>,
    control: SocketAddr,
    admin_token: Option<String>,
    /// The nodes' data-plane clients (one per address).
    nodes: Arc<Nodes>,
    /// This proxy, to control: a name no other proxy has.
    id: String,
    /// What `/readyz` answers: set after the first check-in.
    ready: Arc<AtomicBool>,
    /// One check-in at a time, and what it measures from.
    meter: tokio::sync::Mutex<Meter>,
}

/// What the check-ins measure ECPU/s from.
struct Meter {
    /// ECPU each cache had metered at the last check-in (thousandths).
    metered: HashMap<String, u64>,
    last: Instant,
    /// The last check-in failed (warned once until one succeeds).
    failing: bool,
}

impl Follower {
    pub fn new(
        registry: Arc<Registry>,
        control: SocketAddr,
        admin_token: Option<String>,
        key: Option<[u8; 32]>,
        ready: Arc<AtomicBool>,
    ) -> Follower {
        Follower {
            registry,
            control,
            admin_token,
            nodes: Nodes::new(key),
            id: format!("proxy-{}-{:08x}", std::process::id(), rand::random::<u32>()),
            ready,
            meter: tokio::sync::Mutex::new(Meter {
                metered: HashMap::new(),
                last: Instant::now(),
                failing: false,
            }),
        }
    }

    /// Checks in every `period` until `shutdown`.
    pub async fn run(self: Arc<Self>, period: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let _ = self.check_in().await;
        }
    }

    /// One check-in: reports what each cache used since the last one,
    /// makes this proxy's caches control's ([`Registry::follow`]) and
    /// applies the shares.
    pub async fn check_in(&self) -> Result<(), String> {
        let mut meter = self.meter.lock().await;
        let elapsed = meter.last.elapsed().as_secs_f64().max(0.001);
        meter.last = Instant::now();
        let mut used = HashMap::new();
        let mut loads = HashMap::new();
        for cache in self.registry.list() {
            // What each slot served since the last check-in (control's
            // autoscaler splits on it).
            let served: Vec<(u16, u64)> = (0u16..)
                .zip(cache.pool.take_slot_load())
                .filter(|(_, milli)| *milli > 0)
                .collect();
            if !served.is_empty() {
                loads.insert(cache.name.clone(), served);
            }
            let total: u64 = cache
                .usage
                .ecpu_milli
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .sum();
            let before = meter.metered.insert(cache.name.clone(), total);
            let before = before.unwrap_or(total);
            used.insert(
                cache.name.clone(),
                total.saturating_sub(before) as f64 / 1000.0 / elapsed,
            );
        }
        let answer = match http::check_in(
            self.control,
            self.admin_token.as_deref(),
            &self.id,
            &used,
            &loads,
        )
        .await
        {
            Ok(a) => a,
            Err(e) => {
                if !meter.failing {
                    tracing::warn!(control = %self.control, "cannot check in with control: {e}");
                }
                meter.failing = true;
                return Err(e);
            }
        };
        meter.failing = false;
        let followed = self.registry.follow(&answer.caches, &self.nodes);
        match &followed {
            Ok(()) => self.ready.store(true, Ordering::Release),
            Err(e) => tracing::warn!(control = %self.control, "control's caches not applied: {e}"),
        }
        // Each limited cache admits this proxy's share of its maximum.
        for (name, share) in &answer.shares {
            if let Some(cache) = self.registry.get(name) {
                cache.set_ecpu_share(*share);
            }
        }
        let registry = &self.registry;
        meter.metered.retain(|name, _| registry.get(name).is_some());
        followed.map_err(|e| e.to_string())
    }

    /// Passes a request on to control's API and, when control made the
    /// change, checks in at once so this proxy serves it before answering.
    /// Control's status and body, or why control could not be asked.
    pub async fn forward(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&[u8]>,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), String> {
        let changes = method != Method::GET;
        let (status, body) = http::call(
            self.control,
            self.admin_token.as_deref(),
            method,
            path,
            content_type,
            body,
            MAX_FORWARDED_ANSWER,
        )
        .await?;
        if changes && status.is_success() {
            // Control made the change: if this check-in fails, the next
            // one brings it.
            let _ = self.check_in().await;
        }
        Ok((status, body))
    }
}
