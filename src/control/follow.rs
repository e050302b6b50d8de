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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::{Method, StatusCode};
use tokio_util::sync::CancellationToken;

use super::Registry;
use super::registry::Placed;
use crate::link::Nodes;
use crate::meta::MetaStore;

/// Largest answer to a forwarded request a proxy reads, bytes.
const MAX_FORWARDED_ANSWER: usize = 1024 * 1024;

/// How a process reaches the control that leads (a proxy, `stratus
/// drain`): the one that answered last, then the leader etcd records, then
/// each configured address; a standby's `not_leader` sends it on.
pub struct ControlClient {
    /// Control's API addresses as configured (`host:port`).
    controls: Vec<String>,
    /// With etcd: where the leader records its API address.
    store: Option<Arc<dyn MetaStore>>,
    /// The control that answered last (asked first).
    current: parking_lot::Mutex<Option<String>>,
    admin_token: Option<String>,
}

/// A proxy's link to control.
pub struct Follower {
    registry: Arc<Registry>,
    control: ControlClient,
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
        controls: Vec<String>,
        store: Option<Arc<dyn MetaStore>>,
        admin_token: Option<String>,
        key: Option<[u8; 32]>,
        ready: Arc<AtomicBool>,
    ) -> Follower {
        Follower {
            registry,
            control: ControlClient::new(controls, store, admin_token),
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

    /// The metadata store this proxy shares scripts and libraries
    /// through (with `--etcd`).
    pub fn store(&self) -> Option<&Arc<dyn MetaStore>> {
        self.control.store.as_ref()
    }

    /// This proxy's name to control (and in etcd).
    pub fn id(&self) -> &str {
        &self.id
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
        let answer = match self.check_in_once(&used, &loads).await {
            Ok(a) => a,
            Err(e) => {
                if !meter.failing {
                    tracing::warn!("cannot check in with control: {e}");
                }
                meter.failing = true;
                return Err(e);
            }
        };
        meter.failing = false;
        let followed = self.registry.follow(&answer.caches, &self.nodes);
        match &followed {
            Ok(()) => self.ready.store(true, Ordering::Release),
            Err(e) => tracing::warn!("control's caches not applied: {e}"),
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
        let (status, body) = self
            .control
            .ask(method, path, content_type, body, MAX_FORWARDED_ANSWER)
            .await?;
        if changes && status.is_success() {
            // Control made the change: if this check-in fails, the next
            // one brings it.
            let _ = self.check_in().await;
        }
        Ok((status, body))
    }
}

impl ControlClient {
    pub fn new(
        controls: Vec<String>,
        store: Option<Arc<dyn MetaStore>>,
        admin_token: Option<String>,
    ) -> ControlClient {
        ControlClient {
            controls,
            store,
            current: parking_lot::Mutex::new(None),
            admin_token,
        }
    }

    /// One request to the control that leads: its status and body (at
    /// most `limit` bytes), or why no control answered.
    pub async fn ask(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&[u8]>,
        body: Bytes,
        limit: usize,
    ) -> Result<(StatusCode, Bytes), String> {
        let mut candidates: Vec<String> = self.current.lock().iter().cloned().collect();
        if let Some(store) = &self.store {
            match crate::meta::lease::leader(store.as_ref()).await {
                Ok(Some(leader)) => candidates.push(leader.http),
                Ok(None) => {}
                Err(e) => tracing::debug!("cannot read the control leader from etcd: {e}"),
            }
        }
        candidates.extend(self.controls.iter().cloned());
        let mut seen = std::collections::HashSet::new();
        candidates.retain(|c| seen.insert(c.clone()));
        let mut last = "no control address known (none configured, none in etcd)".to_string();
        for control in candidates {
            let call = crate::http1::Call {
                method: method.clone(),
                path,
                content_type,
                bearer: self.admin_token.as_deref(),
                body: body.clone(),
                limit,
                answer_within: ANSWER_WITHIN,
            };
            let answer = crate::http1::request(&control, call).await;
            match answer {
                Ok((status, body))
                    if status == StatusCode::SERVICE_UNAVAILABLE
                        && memchr::memmem::find(&body, b"\"not_leader\"").is_some() =>
                {
                    last = format!("{control} is a standby");
                }
                Ok(answer) => {
                    *self.current.lock() = Some(control);
                    return Ok(answer);
                }
                Err(e) => last = format!("{control}: {e}"),
            }
        }
        *self.current.lock() = None;
        Err(last)
    }
}

impl Follower {
    /// A check-in (`POST /v1/proxies/{id}`): reports the ECPU/s this
    /// proxy used by cache and what each slot served, and reads the
    /// caches to serve and its shares.
    async fn check_in_once(
        &self,
        used: &HashMap<String, f64>,
        loads: &HashMap<String, Vec<(u16, u64)>>,
    ) -> Result<CheckedIn, String> {
        let body = serde_json::to_vec(&serde_json::json!({ "used": used, "loads": loads }))
            .map_err(|e| e.to_string())?;
        let (status, body) = self
            .control
            .ask(
                Method::POST,
                &format!("/v1/proxies/{}", self.id),
                Some(b"application/json"),
                Bytes::from(body),
                MAX_PLACEMENT,
            )
            .await?;
        if status != StatusCode::OK {
            return Err(format!("control answered {status}"));
        }
        serde_json::from_slice::<CheckedIn>(&body).map_err(|e| format!("control's answer: {e}"))
    }
}

/// Largest placement list a proxy reads from control, bytes.
const MAX_PLACEMENT: usize = 64 * 1024 * 1024;

/// What control answers a proxy's check-in.
#[derive(Debug, serde::Deserialize)]
pub struct CheckedIn {
    /// The caches to serve.
    pub caches: Vec<Placed>,
    /// This proxy's ECPU/s share of each limited cache.
    pub shares: std::collections::HashMap<String, u64>,
}

/// How long control has to answer a request.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
