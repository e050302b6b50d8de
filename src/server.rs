//! `stratus serve` (every role in one process), `stratus proxy` and
//! `stratus control` (the roles apart; `stratus node` is [`crate::node`]).
//!
//! Start-up phases:
//! 1. validate the configuration;
//! 2. create the registry — its caches' data in this process (serve), on
//!    nodes (control), or where control put them (proxy) — and, for serve,
//!    the open `default` and `default-memcached` caches if configured;
//! 3. bind the RESP, Memcached (not control) and HTTP listeners (port 0 =
//!    ephemeral; the bound addresses are reported);
//! 4. spawn the accept loops and the cycles: active expiry, usage,
//!    autoscaling; a proxy reads control's list of caches
//!    ([`Follower`]), control reads its nodes' figures
//!    ([`node_stats_cycle`]).
//!
//! Shutdown: cancel the token; accept loops stop, connections flush their
//! pending replies and close, and [`Running::shutdown`] waits for them up to
//! the grace period.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{ControlConfig, MetaConfig, Port, ProxyConfig, ServeConfig};
use crate::control::api::Endpoint;
use crate::control::follow::Follower;
use crate::control::http::{self, HttpState};
use crate::control::keeper::Keeper;
use crate::control::placement::Placer;
use crate::control::registry::Placement;
use crate::control::registry::{DEFAULT_CACHE, DEFAULT_MEMCACHED_CACHE, Engine, NewCache};
use crate::control::{Cache, Registry};
use crate::metrics::Metrics;
use crate::pool::autoscaler::{self, Decision, Thresholds};
use crate::proxy::{self, ProxyShared};
use crate::tls::Tls;

use crate::pool::EXPIRE_PERIOD;
/// Rounds of evictions per cache and expiry period (each of
/// `EVICTIONS_PER_COMMAND` keys): up to about 20,000 keys a second.
const EVICT_MAX_ROUNDS: usize = 32;

/// Pending connections each socket of a data listener queues (the kernel
/// caps it at `net.core.somaxconn`): a burst of connection attempts from
/// one client must not push other tenants' SYNs out (tokio's default is
/// 1024).
const RESP_BACKLOG: i32 = 8192;

/// A running server with data listeners (serve, proxy).
pub struct Running {
    /// The plain RESP listener's address (the TLS one's when plain is off).
    pub resp_addr: SocketAddr,
    /// The TLS RESP listener's address.
    pub tls_addr: Option<SocketAddr>,
    /// The Memcached listener's address (`None`: off).
    pub memcached_addr: Option<SocketAddr>,
    serving: Serving,
}

impl std::ops::Deref for Running {
    type Target = Serving;

    fn deref(&self) -> &Serving {
        &self.serving
    }
}

/// What every role serves: the HTTP port, the registry, the tasks.
pub struct Serving {
    pub http_addr: SocketAddr,
    pub registry: Arc<Registry>,
    tls: Option<Arc<Tls>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    grace: Duration,
    /// Cancelled when the role cannot go on (control lost its
    /// leadership): the process stops, with an error.
    failed: CancellationToken,
}

/// Which role a process plays.
enum Role {
    Serve,
    Proxy {
        control: Vec<String>,
        period: Duration,
        meta: MetaConfig,
    },
    Control {
        nodes: Vec<SocketAddr>,
        endpoint: crate::config::Address,
        meta: MetaConfig,
        advertise_http: Option<String>,
    },
}

/// Starts every role of `stratus serve` on the current tokio runtime.
pub async fn start(config: ServeConfig) -> Result<Running, String> {
    config.validate()?;
    let (running, _) = start_role(config, Role::Serve).await?;
    running.ok_or_else(|| "no RESP listener".into())
}

/// Starts `stratus proxy`: serve's listeners for the caches control
/// lists, their partitions on nodes.
pub async fn start_proxy(config: ProxyConfig) -> Result<Running, String> {
    config.validate()?;
    let role = Role::Proxy {
        control: config.control,
        period: Duration::from_millis(config.follow_period_ms),
        meta: config.meta,
    };
    let (running, _) = start_role(config.serve, role).await?;
    running.ok_or_else(|| "no RESP listener".into())
}

/// Starts `stratus control`: the control API, caches placed on `nodes`.
pub async fn start_control(config: ControlConfig) -> Result<Serving, String> {
    config.validate()?;
    let role = Role::Control {
        nodes: config.nodes,
        endpoint: config.endpoint,
        meta: config.meta,
        advertise_http: config.advertise_http,
    };
    let (_, serving) = start_role(config.serve, role).await?;
    serving.ok_or_else(|| "control did not start".into())
}

/// Phases 2–4 of the module doc for `role`: the data listeners' server
/// (serve, proxy) or the HTTP side alone (control).
async fn start_role(
    config: ServeConfig,
    role: Role,
) -> Result<(Option<Running>, Option<Serving>), String> {
    if let Some(key) = config.token_key_bytes() {
        crate::control::registry::set_token_key(key)?;
    }
    // Before the first cache: pools size their admission from it.
    crate::pool::workers::configure(config.workers.unwrap_or(0));
    let metrics = Arc::new(Metrics::new());
    let placement = match &role {
        Role::Serve => Placement::Local,
        Role::Proxy { .. } => Placement::Follow,
        Role::Control { nodes, .. } => {
            let key = config.token_key_bytes();
            Placement::Nodes(Arc::new(Placer::new(nodes, key)))
        }
    };
    let registry =
        Arc::new(Registry::with_partitions(metrics, config.initial_partitions).placed(placement));
    let serve = matches!(role, Role::Serve);
    // The open `default` cache: made here by serve and control (placed on
    // a node), followed from control by a proxy.
    let default_cache = config
        .default_cache_open()
        .then(|| DEFAULT_CACHE.to_string());
    let default_new = default_cache.as_ref().map(|name| NewCache {
        name: name.clone(),
        description: "embedded default cache (no password)".into(),
        open: true,
        cluster_mode: config.default_cache_cluster_mode,
        ..NewCache::default()
    });
    // Control's leader makes it, if the metadata store has none.
    if let Some(new) = default_new.clone().filter(|_| matches!(role, Role::Serve)) {
        registry.create(new).map_err(|e| e.to_string())?;
    }
    // Its Memcached twin, under the same rule (loopback, or turned on).
    let default_memcached =
        (serve && config.default_cache_open() && config.memcached_port != Port::Off)
            .then(|| DEFAULT_MEMCACHED_CACHE.to_string());
    if let Some(name) = &default_memcached {
        registry
            .create(NewCache {
                name: name.clone(),
                description: "embedded default memcached cache (no password)".into(),
                open: true,
                engine: Engine::Memcached,
                ..NewCache::default()
            })
            .map_err(|e| e.to_string())?;
    }
    let tls = match config.tls_files() {
        Some(files) => Some(Arc::new(Tls::load(files)?)),
        None => None,
    };
    let bind = |port: Port| -> Result<Option<proxy::flood::Listener>, String> {
        port.bind()
            .map(|p| {
                proxy::flood::Listener::bind(
                    SocketAddr::new(config.bind, p),
                    RESP_BACKLOG,
                    config.flood_connects,
                )
                .map_err(|e| format!("cannot listen on {}:{p}: {e}", config.bind))
            })
            .transpose()
    };
    // Control has no data listeners: proxies serve its caches.
    let data = |port: Port| {
        if matches!(role, Role::Control { .. }) {
            Port::Off
        } else {
            port
        }
    };
    let plain_listener = bind(data(config.port))?;
    let tls_listener = bind(data(config.tls_port))?;
    let memcached_listener = bind(data(config.memcached_port))?;
    let http_listener = TcpListener::bind((config.http_bind, config.http_port))
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {}:{}: {e}",
                config.http_bind, config.http_port
            )
        })?;
    let addr = |l: &Option<proxy::flood::Listener>| -> Result<Option<SocketAddr>, String> {
        l.as_ref()
            .map(|l| l.main.local_addr().map_err(|e| e.to_string()))
            .transpose()
    };
    let tls_addr = addr(&tls_listener)?;
    let memcached_addr = addr(&memcached_listener)?;
    let resp_addr = addr(&plain_listener)?.or(tls_addr);
    let http_addr = http_listener.local_addr().map_err(|e| e.to_string())?;

    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let has_default = default_cache.is_some();
    // A proxy is ready once it has read control's caches.
    // Control once it leads.
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(matches!(
        role,
        Role::Serve
    )));
    let follower = match &role {
        Role::Proxy { control, meta, .. } => {
            let store = match meta.etcd.is_empty() {
                true => None,
                false => Some(
                    crate::meta::open(&meta.etcd)
                        .await
                        .map_err(|e| e.to_string())?,
                ),
            };
            let follower = Arc::new(Follower::new(
                registry.clone(),
                control.clone(),
                store.clone(),
                config.admin_token.clone(),
                config.token_key_bytes(),
                ready.clone(),
            ));
            // Its membership, on a lease.
            if let Some(store) = store {
                tracker.spawn(crate::meta::lease::announce(
                    store,
                    crate::meta::keys::proxy(follower.id()),
                    b"{}".to_vec(),
                    meta.lease_ttl(),
                    shutdown.clone(),
                ));
            }
            Some(follower)
        }
        _ => None,
    };
    let failed = CancellationToken::new();
    let keeper = match &role {
        Role::Control {
            meta,
            advertise_http,
            ..
        } => {
            let store = crate::meta::open(&meta.etcd)
                .await
                .map_err(|e| e.to_string())?;
            let me = crate::meta::keys::LeaderRecord {
                id: format!(
                    "control-{}-{:08x}",
                    std::process::id(),
                    rand::random::<u32>()
                ),
                http: match advertise_http {
                    None => http_addr.to_string(),
                    Some(a)
                        if a.rsplit_once(':')
                            .is_some_and(|(_, p)| p.parse::<u16>().is_ok()) =>
                    {
                        a.clone()
                    }
                    Some(host) => format!("{host}:{}", http_addr.port()),
                },
            };
            let keeper = Keeper::new(store, me, meta.lease_ttl(), ready.clone());
            if let Some(placer) = registry.placer() {
                placer.set_journal(keeper.clone());
            }
            tracker.spawn(keeper.clone().run(
                registry.clone(),
                default_new.clone(),
                shutdown.clone(),
                failed.clone(),
            ));
            // Alone (no etcd) it leads at once: serve only then.
            if meta.etcd.is_empty() {
                let end = std::time::Instant::now() + Duration::from_secs(10);
                while !keeper.leading() && std::time::Instant::now() < end {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            Some(keeper)
        }
        _ => None,
    };
    let mut shared = ProxyShared::new(registry.clone(), default_cache, &config);
    shared.follower = follower.clone();
    shared.default_memcached = default_memcached;
    shared.memcached_port = memcached_addr.map_or(0, |a| a.port());
    let shared = Arc::new(shared);
    let memcached_tls = if config.memcached_tls {
        tls.clone()
    } else {
        None
    };
    let listeners = [
        (plain_listener, None, proxy::Wire::Resp),
        (tls_listener, tls.clone(), proxy::Wire::Resp),
        (memcached_listener, memcached_tls, proxy::Wire::Memcached),
    ];
    for (listener, tls, wire) in listeners {
        if let Some(listener) = listener {
            tracker.spawn(proxy::serve(
                listener,
                shared.clone(),
                tls,
                wire,
                shutdown.clone(),
                tracker.clone(),
            ));
        }
    }
    // What the API shows clients: this process's listeners, or (control)
    // the proxies' address.
    let endpoint = match (&role, resp_addr) {
        (Role::Control { endpoint, .. }, _) => Endpoint(endpoint.clone(), None),
        (_, Some(resp)) => Endpoint(resp.into(), memcached_addr.map(Into::into)),
        (_, None) => return Err("no RESP listener".into()),
    };
    let state = Arc::new(HttpState {
        registry: registry.clone(),
        endpoint,
        admin_token: config.admin_token.clone(),
        ready,
        follower: follower.clone(),
        keeper,
    });
    let http_tls = if config.http_tls { tls.clone() } else { None };
    tracker.spawn(http::serve(
        http_listener,
        state,
        http_tls,
        Duration::from_secs(config.auth_timeout_secs),
        shutdown.clone(),
    ));
    tracker.spawn(expire_cycle(registry.clone(), shutdown.clone()));
    tracker.spawn(usage_cycle(registry.clone(), shutdown.clone()));
    tracker.spawn(autoscale_cycle(
        registry.clone(),
        config.thresholds(),
        shutdown.clone(),
    ));
    match &role {
        Role::Proxy { period, .. } => {
            // INFO and the metrics show the nodes' figures, a second old.
            tracker.spawn(node_stats_cycle(registry.clone(), shutdown.clone()));
            // Keyspace events and scripts' messages, from the nodes.
            tracker.spawn(feed_cycle(registry.clone(), shutdown.clone()));
            if let Some(follower) = follower {
                // Function libraries changed through other proxies.
                if let Some(store) = follower.store() {
                    let limits = crate::proxy::scripting::Limits {
                        script_time_limit: Duration::from_millis(config.script_time_limit_ms),
                        busy_threshold: Duration::from_millis(config.busy_threshold_ms),
                    };
                    tracker.spawn(follow_functions(
                        registry.clone(),
                        store.clone(),
                        limits,
                        shutdown.clone(),
                    ));
                }
                tracker.spawn(follower.run(*period, shutdown.clone()));
            }
        }
        Role::Control { .. } => {
            tracker.spawn(node_stats_cycle(registry.clone(), shutdown.clone()));
        }
        Role::Serve => {}
    }
    let serving = Serving {
        tls,
        http_addr,
        registry,
        shutdown,
        tracker,
        grace: Duration::from_secs(config.shutdown_grace),
        failed,
    };
    let Some(resp_addr) = resp_addr else {
        tracing::info!(%http_addr, "stratus control serving");
        return Ok((None, Some(serving)));
    };
    let role_name = match role {
        Role::Serve => "serve",
        Role::Proxy { .. } => "proxy",
        Role::Control { .. } => "control",
    };
    tracing::info!(role = role_name, %resp_addr, tls_addr = ?tls_addr, memcached_addr = ?memcached_addr, %http_addr, default_cache = has_default, "stratus serving");
    let running = Running {
        resp_addr,
        tls_addr,
        memcached_addr,
        serving,
    };
    Ok((Some(running), None))
}

/// A proxy: one reader per cache and node hosting some of its partitions,
/// delivering what the node's feed gives on this proxy's hub
/// ([`crate::pool::feed`]). Readers start and stop as the caches and
/// their routes change (checked every [`FEED_CHECK`]).
async fn feed_cycle(registry: Arc<Registry>, shutdown: CancellationToken) {
    let mut readers: HashMap<(String, SocketAddr), tokio::task::JoinHandle<()>> = HashMap::new();
    let mut tick = tokio::time::interval(FEED_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => break,
        }
        let mut wanted = std::collections::HashSet::new();
        for cache in registry.list() {
            // Every node of a cache new here: its routes first.
            if cache.pool.epoch() == 0 {
                let _ = cache.pool.load_routes().await;
            }
            for node in cache.pool.nodes() {
                let key = (cache.name.clone(), node.addr());
                wanted.insert(key.clone());
                if readers.get(&key).is_none_or(|r| r.is_finished()) {
                    let reader = read_feed(cache.clone(), node, shutdown.clone());
                    readers.insert(key, tokio::spawn(reader));
                }
            }
        }
        readers.retain(|key, reader| {
            let keep = wanted.contains(key) && !reader.is_finished();
            if !keep {
                reader.abort();
            }
            keep
        });
    }
    for reader in readers.into_values() {
        reader.abort();
    }
}

/// A proxy with etcd: every [`code_store::FOLLOW_EVERY`], takes the
/// function libraries other proxies changed as its own.
///
/// [`code_store::FOLLOW_EVERY`]: crate::proxy::code_store::FOLLOW_EVERY
async fn follow_functions(
    registry: Arc<Registry>,
    store: Arc<dyn crate::meta::MetaStore>,
    limits: crate::proxy::scripting::Limits,
    shutdown: CancellationToken,
) {
    let mut seen = HashMap::new();
    let mut tick = tokio::time::interval(crate::proxy::code_store::FOLLOW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        for (name, payload) in
            crate::proxy::code_store::changed_functions(store.as_ref(), &mut seen).await
        {
            let Some(cache) = registry.get(&name) else {
                continue;
            };
            if let Err(e) = crate::proxy::scripting::adopt(&cache, payload.as_deref(), limits).await
            {
                tracing::warn!(cache = %name, "shared libraries not taken: {e}");
            }
        }
    }
}

/// How often a proxy checks which node feeds it reads.
const FEED_CHECK: Duration = Duration::from_millis(50);

/// Reads one node's feed of `cache` until the cache goes: long polls, each
/// asking for the event classes the cache needs now (asked again at once
/// when they change), their items delivered in order.
async fn read_feed(
    cache: Arc<Cache>,
    node: Arc<crate::link::NodeClient>,
    shutdown: CancellationToken,
) {
    let Some(name) = cache.pool.hosted_as().map(str::to_string) else {
        return;
    };
    let mut after = cache.pool.feed_mark(node.addr());
    while !cache.is_deleted() && !shutdown.is_cancelled() {
        // A position found since (a batch's reply, `want_feed`).
        after = after.or_else(|| cache.pool.feed_mark(node.addr()));
        let flags = cache.pool.feed_flags();
        let poll = node.call(crate::wire::Request::Feed {
            cache: name.clone(),
            after,
            flags,
        });
        tokio::pin!(poll);
        let answer = loop {
            tokio::select! {
                r = &mut poll => break Some(r),
                () = tokio::time::sleep(Duration::from_millis(50)) => {
                    if cache.pool.feed_flags() != flags {
                        break None;
                    }
                }
            }
        };
        match answer {
            // The classes changed: ask again with them.
            None => {}
            Some(Ok(crate::wire::Response::Fed { next, items })) => {
                // A first poll answers where the feed is; a position found
                // meanwhile may be earlier (nothing after it is skipped).
                let marked = cache
                    .pool
                    .feed_mark(node.addr())
                    .filter(|_| after.is_none());
                after = Some(marked.map_or(next, |m| m.min(next)));
                cache.pool.mark_feed(node.addr(), next);
                cache.pool.deliver_feed(items);
            }
            // Unreachable, or the cache is gone there: try again later.
            Some(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

/// How often control reads its nodes' figures for its API and metrics.
const NODE_STATS_PERIOD: Duration = Duration::from_secs(1);

/// Control and proxies: every remote partition's figures, read from its
/// node.
async fn node_stats_cycle(registry: Arc<Registry>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(NODE_STATS_PERIOD);
    // Control: when each cache's storage was last integrated.
    let mut accrued: HashMap<String, tokio::time::Instant> = HashMap::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        for cache in registry.list() {
            // Control: its own view follows the table it last sent.
            if let Some(placer) = registry.placer()
                && let Some(epoch) = placer.epoch(&cache.name)
                && epoch > cache.pool.epoch()
            {
                let entry = placer
                    .entry(&cache.name)
                    .map(|a| placer.directory().client(a));
                let _ = cache.pool.load_routes_any(entry.as_slice()).await;
            }
            // A node that restarted lost its caches: control hosts them
            // again (empty) so they serve again.
            if !cache.pool.refresh_remote_stats().await {
                registry.rehost(&cache);
            }
            // Control bills storage from the figures just read, as serve
            // does from its own (`usage_cycle`): integrated at the moment
            // they are seen, not a period later.
            if registry.placer().is_some() {
                let now = tokio::time::Instant::now();
                let since = accrued.insert(cache.name.clone(), now).unwrap_or(now);
                accrue_storage(&cache, now.duration_since(since));
            }
        }
        accrued.retain(|name, _| registry.get(name).is_some());
        if let Some(placer) = registry.placer() {
            placer.resend().await;
        }
        // Control: every node asked, so `GET /v1/nodes` shows which are up.
        for node in registry.placer().map(|p| p.nodes()).unwrap_or_default() {
            let _ = node.client.call(crate::wire::Request::Ping).await;
        }
    }
}

impl AsRef<Serving> for Running {
    fn as_ref(&self) -> &Serving {
        &self.serving
    }
}

impl AsRef<Serving> for Serving {
    fn as_ref(&self) -> &Serving {
        self
    }
}

impl Running {
    /// Stops accepting, lets connections flush and close, waits up to the
    /// grace period.
    pub async fn shutdown(self) {
        self.serving.shutdown().await;
    }
}

impl Serving {
    /// Reads the TLS files again (SIGHUP): new handshakes use them, open
    /// connections keep theirs; on error the old files stay in use.
    pub fn reload_tls(&self) -> Result<(), String> {
        match &self.tls {
            Some(tls) => tls.reload(),
            None => Ok(()),
        }
    }

    /// Cancelled when the role cannot go on (control lost its leadership).
    pub fn failed(&self) -> &CancellationToken {
        &self.failed
    }

    /// Stops accepting, lets connections flush and close, waits up to the grace period.
    pub async fn shutdown(self) {
        // Running scripts stop now, so their clients get a reply in time.
        for cache in self.registry.list() {
            cache.pool.kill_scripts(true);
        }
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

/// Integrates `cache`'s stored bytes over `dt` (the billed figure at
/// least the storage minimum).
fn accrue_storage(cache: &Cache, dt: Duration) {
    let minimum = cache.limits().min_storage_bytes();
    let dt_ms = u64::try_from(dt.as_millis()).unwrap_or(u64::MAX);
    cache
        .usage
        .accrue_storage(cache.pool.used_bytes(), minimum, dt_ms);
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
        // Storage is billed once, where the caches are held (serve, here)
        // or placed (control, as it reads the nodes' figures:
        // `node_stats_cycle`), never again by each proxy.
        if registry.bills_storage() && registry.placer().is_none() {
            for cache in registry.list() {
                accrue_storage(&cache, Duration::from_millis(dt_ms));
            }
        }
        ticks += 1;
        if ticks.is_multiple_of(PUBLISH_EVERY) {
            // On a worker: the exporter's upkeep alone held a reactor for
            // 0.63 ms (`perf`, `noisy --heavy bigbulk`).
            let registry = registry.clone();
            crate::pool::workers::get()
                .run(move || registry.publish_metrics(false))
                .await;
        }
    }
}

/// How often the autoscaler observes partitions (its windows count these ticks).
const AUTOSCALE_PERIOD: Duration = Duration::from_secs(1);

/// The autoscaler: once a tick, observe every cache's partitions, decide
/// (pure functions in [`crate::pool::autoscaler`]), apply and log.
async fn autoscale_cycle(
    registry: Arc<Registry>,
    thresholds: Thresholds,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(AUTOSCALE_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut states: HashMap<String, autoscaler::State> = HashMap::new();
    let mut last = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let now = tokio::time::Instant::now();
        let secs = now.duration_since(last).as_secs_f64().max(0.001);
        last = now;
        let caches = registry.list();
        states.retain(|name, _| caches.iter().any(|c| &c.name == name));
        // A proxy's caches scale where control placed them: what their
        // slots served goes to control at each check-in (`Follower`).
        if !registry.autoscales() {
            continue;
        }
        // One cache per turn of the reactor: a tick over every cache at
        // once held the connections it serves for milliseconds.
        for cache in caches {
            let state = states.remove(&cache.name).unwrap_or_default();
            let next = match registry.placer() {
                Some(placer) => autoscale_placed(&cache, placer, &thresholds, &state, secs).await,
                None => autoscale(&cache, &thresholds, &state, secs),
            };
            states.insert(cache.name.clone(), next);
            tokio::task::yield_now().await;
        }
        if let Some(placer) = registry.placer() {
            balance(&registry, placer, &thresholds).await;
        }
    }
}

/// One autoscaler tick for a cache whose partitions are on nodes (`stratus
/// control`): the same rules as `serve`'s on the bytes the nodes last
/// reported (each partition's taken as spread evenly over its slots) and
/// the load the proxies reported per slot at their check-ins — applied
/// through the placer (a split's new partition goes to the least loaded
/// node).
async fn autoscale_placed(
    cache: &Cache,
    placer: &Placer,
    thresholds: &Thresholds,
    state: &autoscaler::State,
    secs: f64,
) -> autoscaler::State {
    let load = cache.pool.take_slot_load();
    let obs: Vec<autoscaler::Observation> = placer
        .ranges(&cache.name)
        .into_iter()
        .map(|part| {
            let handle = cache.pool.partition(part.id);
            let bytes = handle.as_ref().map_or(0, |h| h.stats().used_bytes as u64);
            let slots = u64::from(part.last - part.first) + 1;
            let slot_load: Vec<u64> = load[usize::from(part.first)..=usize::from(part.last)]
                .iter()
                .map(|l| (*l as f64 / secs) as u64)
                .collect();
            let o = autoscaler::Observation {
                id: part.id,
                first_slot: part.first,
                last_slot: part.last,
                bytes,
                slot_bytes: vec![bytes / slots; slots as usize],
                slot_load,
                age_secs: handle.as_ref().map_or(0, |h| h.age().as_secs()),
            };
            if let Some(h) = &handle {
                h.set_ecpu_per_sec(o.ecpu_per_sec());
            }
            o
        })
        .collect();
    // Cluster mode disabled: one partition, never split (its load is
    // still shown).
    if cache.pool.cluster_mode().spans_slots() {
        return state.clone();
    }
    // Pre-scaling: the minimum ECPU/s needs this many partitions.
    let min_ecpu = cache.limits().ecpu_per_second.minimum as u64;
    let t = Thresholds {
        min_partitions: min_ecpu.div_ceil(thresholds.split_ecpu_per_sec).max(1) as usize,
        ..*thresholds
    };
    let (decisions, next) = autoscaler::decide(&t, state, &obs);
    for d in decisions {
        let done = match d {
            Decision::Split { id, at, reason } => match placer.split(&cache.name, id, at).await {
                Ok(new) => {
                    // The new partition in this process's view, then why.
                    let _ = cache.pool.load_routes().await;
                    cache.pool.note_change(&[id, new], "split", reason.label());
                    Ok(())
                }
                Err(e) => Err(e),
            },
            Decision::Merge { left, right } => {
                let merged = placer.merge(&cache.name, left, right).await;
                if merged.is_ok() {
                    let _ = cache.pool.load_routes().await;
                    cache.pool.note_change(&[left], "merge", "cold");
                }
                merged
            }
            Decision::HotSlot { id, slot } => {
                if cache.pool.report_hot_slot(id, slot) {
                    tracing::warn!(cache = %cache.name, partition = id, slot, "hot slot: one slot exceeds a split threshold alone");
                }
                Ok(())
            }
        };
        if let Err(e) = done {
            tracing::warn!(cache = %cache.name, "autoscaler: {d:?} not done: {e}");
        }
    }
    next
}

/// Control's balancing, by bytes and then by load (one move a tick: each
/// narrows a gap): when the open node holding the most of a measure holds
/// more than twice the least loaded open node's plus a slack (a merge's
/// worth of bytes; a cold partition's load, a quarter of a split's), its
/// smallest partition by that measure of at most half the gap moves there.
async fn balance(registry: &Registry, placer: &Placer, thresholds: &Thresholds) {
    let handle = |cache: &str, id: u64| registry.get(cache).and_then(|c| c.pool.partition(id));
    let bytes = |cache: &str, id: u64| handle(cache, id).map_or(0, |h| h.stats().used_bytes as u64);
    let load = |cache: &str, id: u64| {
        handle(cache, id).map_or(0, |h| (h.view().ecpu_per_sec * 1000.0) as u64)
    };
    let moved = balance_by(placer, &bytes, thresholds.merge_bytes, "bytes").await;
    if !moved {
        let cold = thresholds.split_ecpu_per_sec.saturating_mul(1000) / 4;
        balance_by(placer, &load, cold, "load").await;
    }
}

/// One balancing move by `measure` (see [`balance`]); whether one was made.
async fn balance_by(
    placer: &Placer,
    measure: &(dyn Fn(&str, u64) -> u64 + Sync),
    slack: u64,
    what: &str,
) -> bool {
    let placed = placer.partitions();
    let mut per_node: HashMap<SocketAddr, u64> = placer
        .nodes()
        .iter()
        .filter(|n| !n.draining() && n.client.up())
        .map(|n| (n.addr(), 0))
        .collect();
    for (cache, id, node) in &placed {
        if let Some(m) = per_node.get_mut(node) {
            *m += measure(cache, *id);
        }
    }
    let (Some((&full, &most)), Some((&empty, &least))) = (
        per_node.iter().max_by_key(|(_, m)| **m),
        per_node.iter().min_by_key(|(_, m)| **m),
    ) else {
        return false;
    };
    if most <= least.saturating_mul(2).saturating_add(slack) {
        return false;
    }
    let gap = most - least;
    let candidate = placed
        .iter()
        .filter(|(_, _, n)| *n == full)
        .map(|(c, id, _)| (measure(c, *id), c, *id))
        .filter(|(m, _, _)| *m > 0 && *m <= gap / 2)
        .min_by_key(|(m, _, _)| *m);
    let Some((_, cache, id)) = candidate else {
        return false;
    };
    let to = empty.to_string();
    match placer.move_partition(cache, id, &to).await {
        Ok(_) => {
            tracing::info!(%cache, partition = id, %to, "balanced by {what}: partition moved");
            true
        }
        Err(e) => {
            tracing::warn!(%cache, partition = id, "balance move ({what}) not done: {e}");
            false
        }
    }
}

/// One autoscaler tick for one cache.
fn autoscale(
    cache: &Cache,
    thresholds: &Thresholds,
    state: &autoscaler::State,
    secs: f64,
) -> autoscaler::State {
    let load = cache.pool.take_slot_load();
    let ranges = cache.pool.ranges();
    let mut obs = Vec::with_capacity(ranges.len());
    for (first, last, part) in &ranges {
        // A partition that slow work holds is not read: skip this tick.
        let Some((bytes, slot_bytes)) = part.slot_bytes(thresholds.split_bytes) else {
            return state.clone();
        };
        let slot_load: Vec<u64> = load[usize::from(*first)..=usize::from(*last)]
            .iter()
            .map(|l| (*l as f64 / secs) as u64)
            .collect();
        let o = autoscaler::Observation {
            id: part.id(),
            first_slot: *first,
            last_slot: *last,
            bytes,
            slot_bytes,
            slot_load,
            age_secs: part.age().as_secs(),
        };
        part.set_ecpu_per_sec(o.ecpu_per_sec());
        obs.push(o);
    }
    // Cluster mode disabled: one partition, never split (its load is
    // still shown); its storage maximum applies as on any cache.
    if cache.pool.cluster_mode().spans_slots() {
        return state.clone();
    }
    // Pre-scaling: the minimum ECPU/s needs this many partitions.
    let min_ecpu = cache.limits().ecpu_per_second.minimum as u64;
    let t = Thresholds {
        min_partitions: min_ecpu.div_ceil(thresholds.split_ecpu_per_sec).max(1) as usize,
        ..*thresholds
    };
    let (decisions, next) = autoscaler::decide(&t, state, &obs);
    for d in decisions {
        match d {
            Decision::Split { id, at, reason } => match cache.pool.split(id, at, reason.label()) {
                Ok(new) => {
                    tracing::info!(cache = %cache.name, partition = id, new_partition = new, at, reason = reason.label(), "partition split")
                }
                Err(e) => {
                    tracing::warn!(cache = %cache.name, partition = id, error = %e, "split skipped")
                }
            },
            Decision::Merge { left, right } => match cache.pool.merge(left, right) {
                Ok(()) => {
                    tracing::info!(cache = %cache.name, partition = left, merged = right, reason = "cold", "partitions merged")
                }
                Err(e) => {
                    tracing::warn!(cache = %cache.name, partition = left, error = %e, "merge skipped")
                }
            },
            Decision::HotSlot { id, slot } => {
                if cache.pool.report_hot_slot(id, slot) {
                    tracing::warn!(cache = %cache.name, partition = id, slot, "hot slot: one slot exceeds a split threshold alone");
                }
            }
        }
    }
    next
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
            // A cache over its memory limit (a lowered maxmemory, writes
            // that outran their commands' inline evictions) is brought
            // back under it here, a round at a time.
            for _ in 0..EVICT_MAX_ROUNDS {
                let now = crate::partition::now_ms();
                if !proxy::memory::evict_over_limit(
                    &cache,
                    now,
                    proxy::memory::EVICTIONS_PER_COMMAND,
                )
                .await
                {
                    break;
                }
                tokio::task::yield_now().await;
            }
            cache.pool.expire_round().await;
        }
    }
}
