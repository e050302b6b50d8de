//! The cache registry: every cache (tenant) of this server, its usage limits,
//! token hashes and partition pool.
//!
//! Tokens: generated here (shown once) or supplied; only SHA-256 hashes
//! keyed with a per-process secret are kept, and a presented token is
//! compared in constant time. A cache's name is
//! its username: `AUTH <cache> <token>`. `AUTH <token>` alone finds the cache
//! by the token's hash. The open default cache (dev mode) binds connections
//! that never authenticate.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;

use parking_lot::RwLock;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::functions::FunctionStore;
use super::placement::Placer;
use super::scripts::ScriptStore;
use crate::acl::log::AclLog;
use crate::acl::{User, valid_user_name};
use crate::link::Nodes;
pub use crate::metering::limits::UsageLimits;
use crate::metering::{EcpuLimiter, Usage};
use crate::metrics::{CacheFigures, Metrics};
use crate::partition::ClusterMode;
use crate::pool::CachePool;

/// Name of the embedded cache that needs no password on loopback.
pub const DEFAULT_CACHE: &str = "default";
/// Name of the embedded Memcached-engine cache (same rule as [`DEFAULT_CACHE`]).
pub const DEFAULT_MEMCACHED_CACHE: &str = "default-memcached";
/// A Memcached cache's item size limit unless its creator chose one:
/// memcached's own default (`-I 1m`), bytes.
pub const DEFAULT_ITEM_SIZE_MAX: u64 = 1 << 20;
/// The smallest item size limit a cache may choose (memcached: 1 KiB).
pub const MIN_ITEM_SIZE_MAX: u64 = 1024;
/// The largest: 128 MiB, as ElastiCache and memcached (`-I 128m`) allow.
pub const MAX_ITEM_SIZE_MAX: u64 = 128 << 20;

/// The protocol a cache speaks, fixed at creation: Redis's (RESP) or
/// Memcached's (text and meta protocols, on the Memcached port). A cache is
/// reachable only through its own engine's listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    #[default]
    Redis,
    Memcached,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Redis => "redis",
            Engine::Memcached => "memcached",
        }
    }
}

impl std::str::FromStr for Engine {
    type Err = String;

    fn from_str(s: &str) -> Result<Engine, String> {
        match s {
            "redis" => Ok(Engine::Redis),
            "memcached" => Ok(Engine::Memcached),
            other => Err(format!(
                "engine must be \"redis\" or \"memcached\" (got \"{}\")",
                other.chars().take(40).collect::<String>()
            )),
        }
    }
}

/// Checks a Memcached cache's item size limit, bytes.
pub fn validate_item_size_max(bytes: u64) -> Result<(), String> {
    if !(MIN_ITEM_SIZE_MAX..=MAX_ITEM_SIZE_MAX).contains(&bytes) {
        return Err(format!(
            "item_size_max must be {MIN_ITEM_SIZE_MAX} to {MAX_ITEM_SIZE_MAX} bytes (got {bytes})"
        ));
    }
    Ok(())
}
/// Named users per cache at most.
pub const MAX_USERS_PER_CACHE: usize = 100;
/// Passwords per user at most (two are enough to rotate).
const MAX_PASSWORDS: usize = 8;
/// Length of generated tokens (alphanumeric: ~238 bits).
const TOKEN_LEN: usize = 40;

/// The mutable part of a cache.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub description: String,
    pub limits: UsageLimits,
    /// Memcached engine: the largest item's data, bytes.
    pub item_size_max: u64,
    token_hashes: Vec<[u8; 32]>,
}

/// One tenant.
pub struct Cache {
    pub name: String,
    pub created_at: SystemTime,
    /// Which incarnation of the name this is, as control numbers them (a
    /// proxy's copy of a cache deleted and made again is replaced, not
    /// kept); 0 for a cache of this process.
    incarnation: AtomicU64,
    /// Connections that never authenticate are bound here (the default cache).
    pub open: bool,
    /// The protocol the cache speaks (fixed for its life).
    pub engine: Engine,
    pub settings: RwLock<CacheSettings>,
    pub pool: CachePool,
    pub usage: Usage,
    /// Lua scripts by SHA1 (EVALSHA, SCRIPT LOAD): this cache's only.
    pub scripts: ScriptStore,
    /// Function libraries (FUNCTION LOAD, FCALL): this cache's only.
    pub functions: FunctionStore,
    /// Configuration values, statistics, slow log and clients as the
    /// introspection commands (CONFIG, INFO, SLOWLOG, CLIENT) see them.
    pub server: super::introspection::ServerState,
    /// The ECPU/s limiter; replaced (not reconfigured) when the limit changes.
    limiter: RwLock<Option<Arc<EcpuLimiter>>>,
    /// The storage maximum in bytes (0 = none), as the request path reads
    /// it: one load, no lock.
    storage_max: AtomicU64,
    deleted: AtomicBool,
    /// Named users (the default user is whoever has the token).
    users: RwLock<HashMap<String, Arc<User>>>,
    /// `ACL LOG`: denials and failed logins.
    pub acl_log: AclLog,
    /// Memcached engine: the `stats` counters.
    pub memcached: crate::memcached::MemcachedStats,
}

impl Cache {
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Whether `token` is one of this cache's tokens (constant-time compare).
    pub fn check_token(&self, token: &[u8]) -> bool {
        let presented = hash_token(token);
        let settings = self.settings.read();
        let mut ok = subtle::Choice::from(0);
        for h in &settings.token_hashes {
            ok |= h.ct_eq(&presented);
        }
        bool::from(ok)
    }

    pub fn has_tokens(&self) -> bool {
        !self.settings.read().token_hashes.is_empty()
    }

    /// The named user `name`.
    pub fn user(&self, name: &str) -> Option<Arc<User>> {
        self.users.read().get(name).cloned()
    }

    /// Every named user, sorted by name.
    pub fn users(&self) -> Vec<Arc<User>> {
        let mut all: Vec<_> = self.users.read().values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Adds a user (see [`User::new`]).
    pub fn add_user(
        &self,
        name: &str,
        access: &str,
        passwords: &[String],
    ) -> Result<Arc<User>, RegistryError> {
        if !valid_user_name(name) || name == "default" {
            return Err(RegistryError::Invalid(format!(
                "user name '{name}' must be 1-64 of [A-Za-z0-9_-] and not 'default'"
            )));
        }
        validate_passwords(passwords)?;
        let user = Arc::new(
            User::new(name, access, passwords)
                .map_err(|e| RegistryError::Invalid(e.to_string()))?,
        );
        let mut users = self.users.write();
        if users.contains_key(name) {
            return Err(RegistryError::Exists(format!("{}.{name}", self.name)));
        }
        if users.len() >= MAX_USERS_PER_CACHE {
            return Err(RegistryError::Invalid(format!(
                "a cache has at most {MAX_USERS_PER_CACHE} users"
            )));
        }
        users.insert(name.to_string(), user.clone());
        Ok(user)
    }

    /// `ACL SETUSER`: applies `rules` (one per argument, Redis's syntax) to
    /// user `name`, creating it first (off, no permissions) if it is new.
    /// All or nothing: a refused rule changes nothing. The same users as
    /// the control API's (it lists and changes them too).
    pub fn set_user_rules(&self, name: &str, rules: &[String]) -> Result<(), RegistryError> {
        if !valid_user_name(name) || name == "default" {
            return Err(RegistryError::Invalid(format!(
                "user name '{name}' must be 1-64 of [A-Za-z0-9_-] and not 'default'"
            )));
        }
        let invalid = |e: crate::acl::RuleError| RegistryError::Invalid(e.to_string());
        let mut users = self.users.write();
        if let Some(user) = users.get(name) {
            return user.apply_rules(rules).map_err(invalid);
        }
        if users.len() >= MAX_USERS_PER_CACHE {
            return Err(RegistryError::Invalid(format!(
                "a cache has at most {MAX_USERS_PER_CACHE} users"
            )));
        }
        let user = User::new(name, "", &[]).map_err(invalid)?;
        user.apply_rules(rules).map_err(invalid)?;
        users.insert(name.to_string(), Arc::new(user));
        Ok(())
    }

    /// Changes a user's access string and/or passwords; `disconnect` closes
    /// the connections logged in as it.
    pub fn update_user(
        &self,
        name: &str,
        access: Option<&str>,
        passwords: Option<&[String]>,
        disconnect: bool,
    ) -> Result<Arc<User>, RegistryError> {
        let user = self
            .user(name)
            .ok_or_else(|| RegistryError::NotFound(format!("{}.{name}", self.name)))?;
        if let Some(p) = passwords {
            validate_passwords(p)?;
        }
        user.update(access, passwords)
            .map_err(|e| RegistryError::Invalid(e.to_string()))?;
        if disconnect {
            user.disconnect();
        }
        Ok(user)
    }

    /// Makes the cache's users those of `placed` (a proxy, from control's
    /// list): new ones appear, changed ones change (their connections stay
    /// unless control closed them), missing ones go and their connections
    /// close.
    pub fn follow_users(&self, placed: &[PlacedUser]) -> Result<(), RegistryError> {
        let mut users = self.users.write();
        for p in placed {
            let current = users.get(&p.name);
            let same = current.is_some_and(|u| {
                let (rules, passwords) = u.access().replica();
                rules == p.rules && passwords == p.passwords && u.revocations() == p.revocations
            });
            if same {
                continue;
            }
            let access = crate::acl::Access::from_replica(&p.rules, &p.passwords)
                .map_err(|e| RegistryError::Invalid(format!("user {}: {e}", p.name)))?;
            match current {
                Some(u) => u.follow(access, p.revocations),
                None => {
                    let user = User::new(&p.name, "", &[])
                        .map_err(|e| RegistryError::Invalid(e.to_string()))?;
                    user.follow(access, p.revocations);
                    users.insert(p.name.clone(), Arc::new(user));
                }
            }
        }
        users.retain(|name, user| {
            let kept = placed.iter().any(|p| &p.name == name);
            if !kept {
                user.disconnect();
            }
            kept
        });
        Ok(())
    }

    /// Deletes a user and closes its connections (as Redis's ACL DELUSER).
    pub fn delete_user(&self, name: &str) -> Result<(), RegistryError> {
        let user = self
            .users
            .write()
            .remove(name)
            .ok_or_else(|| RegistryError::NotFound(format!("{}.{name}", self.name)))?;
        user.disconnect();
        Ok(())
    }

    /// The bytes the cache may store (0 = no limit): its storage maximum,
    /// or the lower `maxmemory` a client set (`CONFIG SET`).
    pub fn memory_limit(&self) -> u64 {
        let max = self.storage_max.load(Ordering::Relaxed);
        match self.server.config.maxmemory() {
            0 => max,
            own if max == 0 => own,
            own => own.min(max),
        }
    }

    /// The current ECPU/s limiter (`None` = no limit).
    pub fn limiter(&self) -> Option<Arc<EcpuLimiter>> {
        self.limiter.read().clone()
    }

    /// `f` on the cache's limiter, if it has one, without holding on to
    /// it (no reference count moved: every request does this).
    pub fn with_limiter<R>(&self, f: impl FnOnce(&EcpuLimiter) -> R) -> Option<R> {
        self.limiter.read().as_deref().map(f)
    }

    pub fn limits(&self) -> UsageLimits {
        self.settings.read().limits
    }

    /// Applies new limits: a new limiter if the ECPU/s maximum changed, and
    /// the limit gauges. Connections see the change on their next command.
    /// This proxy's share of the cache's ECPU/s limit (`stratus proxy`,
    /// from control): the limiter admits `share` a second. It is rebuilt
    /// only when the share moves by more than a tenth (a new limiter
    /// starts with a fresh burst).
    pub fn set_ecpu_share(&self, share: u64) {
        let max = u64::try_from(self.limits().ecpu_per_second.maximum).unwrap_or(0);
        if max == 0 {
            return;
        }
        let share = share.clamp(1, max);
        let mut limiter = self.limiter.write();
        let now = limiter.as_ref().map_or(0, |l| l.max_ecpu_per_sec);
        if now == 0 || now.abs_diff(share) * 10 > now {
            *limiter = EcpuLimiter::new(share).map(Arc::new);
        }
    }

    fn apply_limits(&self, limits: UsageLimits) {
        let max = u64::try_from(limits.ecpu_per_second.maximum).unwrap_or(0);
        let mut limiter = self.limiter.write();
        if limiter.as_ref().map_or(0, |l| l.max_ecpu_per_sec) != max {
            *limiter = EcpuLimiter::new(max).map(Arc::new);
        }
        self.settings.write().limits = limits;
        self.storage_max
            .store(limits.max_storage_bytes(), Ordering::Relaxed);
    }
}

fn validate_passwords(passwords: &[String]) -> Result<(), RegistryError> {
    if passwords.len() > MAX_PASSWORDS {
        return Err(RegistryError::Invalid(format!(
            "at most {MAX_PASSWORDS} passwords per user"
        )));
    }
    if passwords.iter().any(|p| p.is_empty() || p.len() > 1024) {
        return Err(RegistryError::Invalid(
            "a password is 1 to 1024 bytes".into(),
        ));
    }
    Ok(())
}

/// Errors from registry operations; the API maps them to HTTP statuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("cache '{0}' already exists")]
    Exists(String),
    #[error("cache '{0}' not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
}

/// What creating a cache asks for.
#[derive(Debug, Clone, Default)]
pub struct NewCache {
    pub name: String,
    pub description: String,
    pub limits: UsageLimits,
    /// A token chosen by the operator; `None` generates one.
    pub token: Option<String>,
    pub open: bool,
    /// Fixed for the cache's life: which keys one command may combine.
    pub cluster_mode: ClusterMode,
    /// Fixed for the cache's life: the protocol it speaks.
    pub engine: Engine,
    /// Memcached engine: the item size limit (`None`: 1 MiB).
    pub item_size_max: Option<u64>,
    /// When it was made (`None`: now; a copy of a cache made elsewhere
    /// keeps its original's, which tells it from others of its name).
    pub created_at: Option<SystemTime>,
}

/// Where a registry's caches keep their data.
#[derive(Default)]
pub enum Placement {
    /// In this process (`stratus serve`).
    #[default]
    Local,
    /// On nodes (`stratus control`): a new cache's partitions go to the
    /// nodes hosting the fewest; a deleted one is let go there
    /// ([`Placer`]).
    Nodes(Arc<Placer>),
    /// Where control placed them (`stratus proxy`): caches arrive through
    /// [`Registry::follow`], never through `create`, and deleting one only
    /// forgets it here.
    Follow,
}

/// A cache as control lists it for proxies (`GET /v1/placement`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placed {
    pub name: String,
    pub description: String,
    pub engine: String,
    pub cluster_mode: String,
    pub usage_limits: UsageLimits,
    pub item_size_max: u64,
    /// SHA-256 of each valid token, hex.
    pub token_hashes: Vec<String>,
    /// The data-plane address of the node proxies first ask for its
    /// routing table (each range names its own node).
    pub node: std::net::SocketAddr,
    /// When control made it, nanoseconds since the Unix epoch: tells a
    /// cache from one deleted and made again under its name.
    pub incarnation: u64,
    /// Connections that never authenticate are bound to it (the open
    /// `default` cache, on loopback).
    pub open: bool,
    /// Its named users.
    pub users: Vec<PlacedUser>,
    /// Its storage integrals as control bills them: byte-seconds stored,
    /// and with the storage minimum applied.
    pub byte_seconds: [u64; 2],
}

/// A named user as control lists it for proxies ([`Access::replica`]).
///
/// [`Access::replica`]: crate::acl::Access::replica
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacedUser {
    pub name: String,
    /// What it may run and touch, as `ACL SETUSER` rules.
    pub rules: Vec<String>,
    /// Its stored passwords, hashed.
    pub passwords: Vec<String>,
    /// How many times control closed its connections.
    pub revocations: u64,
}

/// All caches of this server.
pub struct Registry {
    caches: RwLock<HashMap<String, Arc<Cache>>>,
    /// SHA-256 of token → cache name, for one-argument AUTH.
    tokens: RwLock<HashMap<[u8; 32], String>>,
    pub metrics: Arc<Metrics>,
    /// Partitions a new cache starts with.
    initial_partitions: usize,
    placement: Placement,
    /// What each proxy last reported using, by proxy id (`stratus
    /// control`: the ECPU/s shares follow it).
    reports: parking_lot::Mutex<HashMap<String, ProxyReport>>,
}

/// A proxy's last check-in: when, and ECPU/s used by cache.
struct ProxyReport {
    at: std::time::Instant,
    used: HashMap<String, f64>,
}

/// How long a proxy's report counts: a proxy silent longer has gone, and
/// its share goes to the others.
const REPORT_LEASE: std::time::Duration = std::time::Duration::from_secs(3);

/// Proxies control keeps reports of at most (more check-ins are refused).
const MAX_PROXIES: usize = 1024;

impl Registry {
    pub fn new(metrics: Arc<Metrics>) -> Registry {
        Registry::with_partitions(metrics, 1)
    }

    /// A registry whose new caches start with `initial_partitions` partitions.
    pub fn with_partitions(metrics: Arc<Metrics>, initial_partitions: usize) -> Registry {
        Registry {
            caches: RwLock::new(HashMap::new()),
            tokens: RwLock::new(HashMap::new()),
            metrics,
            initial_partitions,
            placement: Placement::Local,
            reports: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// The same registry with its caches' data kept as `placement` says.
    pub fn placed(mut self, placement: Placement) -> Registry {
        self.placement = placement;
        self
    }

    /// The pool of a new cache `name`, where the placement puts it.
    fn new_pool(&self, name: &str, mode: ClusterMode) -> Result<CachePool, RegistryError> {
        match &self.placement {
            Placement::Local => Ok(CachePool::with_mode(self.initial_partitions, mode)),
            Placement::Nodes(placer) => {
                let entry = placer
                    .place(name, self.initial_partitions, mode)
                    .map_err(|e| RegistryError::Invalid(e.to_string()))?;
                let nodes = placer.directory();
                Ok(CachePool::remote(name, nodes.client(entry), nodes.clone()))
            }
            Placement::Follow => Err(RegistryError::Invalid(
                "this proxy follows control: create caches through control's API".into(),
            )),
        }
    }

    /// Whether this process bills the caches' storage (byte-seconds): not
    /// a proxy — control does, once per cache, however many proxies serve
    /// it (their ECPU is theirs: each request is metered by one proxy).
    pub fn bills_storage(&self) -> bool {
        !matches!(self.placement, Placement::Follow)
    }

    /// Whether this process's autoscaler splits and merges the caches'
    /// partitions: not a proxy's (control does, from what proxies report).
    pub fn autoscales(&self) -> bool {
        !matches!(self.placement, Placement::Follow)
    }

    /// Where caches' partitions are placed (`stratus control`; none
    /// otherwise).
    pub fn placer(&self) -> Option<&Arc<Placer>> {
        match &self.placement {
            Placement::Nodes(placer) => Some(placer),
            _ => None,
        }
    }

    /// Hosts `cache` again on its nodes (`stratus control`: a node that
    /// restarted empty; its partitions' data is lost, the cache serves
    /// again).
    pub fn rehost(&self, cache: &Cache) {
        if let Placement::Nodes(placer) = &self.placement {
            tracing::warn!(cache = %cache.name, "a node lost the cache: sending its table again (its partitions there start empty)");
            placer.rehost(&cache.name);
        }
    }

    /// A proxy checks in with what it used (ECPU/s by cache): its share of
    /// each limited cache's ECPU/s maximum, max-min fair among the proxies
    /// that checked in within [`REPORT_LEASE`] ([`fair_shares`]).
    ///
    /// [`fair_shares`]: crate::metering::shares::fair_shares
    pub fn check_in(
        &self,
        proxy: &str,
        used: HashMap<String, f64>,
    ) -> Result<HashMap<String, u64>, RegistryError> {
        let now = std::time::Instant::now();
        let mut reports = self.reports.lock();
        reports.retain(|_, r| now.duration_since(r.at) < REPORT_LEASE);
        if !reports.contains_key(proxy) && reports.len() >= MAX_PROXIES {
            return Err(RegistryError::Invalid(format!(
                "more than {MAX_PROXIES} proxies"
            )));
        }
        reports.insert(proxy.to_string(), ProxyReport { at: now, used });
        let mut ids: Vec<&String> = reports.keys().collect();
        ids.sort();
        let mine = ids.iter().position(|id| *id == proxy).unwrap_or(0);
        let mut shares = HashMap::new();
        for cache in self.list() {
            let max = u64::try_from(cache.limits().ecpu_per_second.maximum).unwrap_or(0);
            if max == 0 {
                continue;
            }
            let used: Vec<f64> = ids
                .iter()
                .map(|id| reports[*id].used.get(&cache.name).copied().unwrap_or(0.0))
                .collect();
            let split = crate::metering::shares::fair_shares(max, &used);
            shares.insert(cache.name.clone(), split[mine]);
        }
        Ok(shares)
    }

    /// Every cache with its node, for proxies (`stratus control`).
    pub fn placement(&self) -> Vec<Placed> {
        self.list()
            .into_iter()
            .filter_map(|c| {
                // Control's table names it (it changes when a node dies).
                let node = self
                    .placer()
                    .and_then(|p| p.entry(&c.name))
                    .or_else(|| c.pool.node().map(|n| n.addr()))?;
                let settings = c.settings.read();
                Some(Placed {
                    name: c.name.clone(),
                    description: settings.description.clone(),
                    engine: c.engine.as_str().to_string(),
                    cluster_mode: c.pool.cluster_mode().as_str().to_string(),
                    usage_limits: settings.limits,
                    item_size_max: settings.item_size_max,
                    token_hashes: settings.token_hashes.iter().map(hex).collect(),
                    node,
                    open: c.open,
                    byte_seconds: [
                        c.usage.byte_seconds.load(Ordering::Relaxed),
                        c.usage.billed_byte_seconds.load(Ordering::Relaxed),
                    ],
                    users: c
                        .users()
                        .iter()
                        .map(|u| {
                            let (rules, passwords) = u.access().replica();
                            PlacedUser {
                                name: u.name.clone(),
                                rules,
                                passwords,
                                revocations: u.revocations(),
                            }
                        })
                        .collect(),
                    incarnation: c.incarnation.load(Ordering::Relaxed),
                })
            })
            .collect()
    }

    /// Makes this registry's caches those of `placed` (`stratus proxy`,
    /// from control's list): new ones appear (their pools on their node,
    /// reached through `nodes`), changed tokens and limits apply, and caches
    /// no longer listed are forgotten.
    pub fn follow(&self, placed: &[Placed], nodes: &Arc<Nodes>) -> Result<(), RegistryError> {
        for p in placed {
            let hashes: Vec<[u8; 32]> = p
                .token_hashes
                .iter()
                .map(|h| {
                    crate::config::unhex(h)
                        .ok_or_else(|| RegistryError::Invalid(format!("bad hash {h}")))
                })
                .collect::<Result<_, _>>()?;
            // Another incarnation of the name, or moved to another node:
            // this process's copy goes, a fresh one comes.
            let stale = self.get(&p.name).filter(|c| {
                c.incarnation.load(Ordering::Relaxed) != p.incarnation
                    || c.pool.node().map(|n| n.addr()) != Some(p.node)
            });
            if stale.is_some() {
                self.delete(&p.name)?;
            }
            let cache = match self.get(&p.name) {
                Some(c) => c,
                None => {
                    let req = NewCache {
                        name: p.name.clone(),
                        description: p.description.clone(),
                        limits: p.usage_limits,
                        token: None,
                        open: p.open,
                        cluster_mode: p.cluster_mode.parse().map_err(RegistryError::Invalid)?,
                        engine: p.engine.parse().map_err(RegistryError::Invalid)?,
                        item_size_max: Some(p.item_size_max),
                        created_at: Some(
                            std::time::UNIX_EPOCH + std::time::Duration::from_nanos(p.incarnation),
                        ),
                    };
                    let pool = CachePool::remote(&p.name, nodes.client(p.node), nodes.clone());
                    let mut caches = self.caches.write();
                    self.insert(&mut caches, req, Vec::new(), pool)
                }
            };
            if cache.limits() != p.usage_limits {
                cache.apply_limits(p.usage_limits);
            }
            cache.follow_users(&p.users)?;
            for (mine, control) in cache.usage.billed_by_control.iter().zip(p.byte_seconds) {
                mine.store(control, Ordering::Relaxed);
            }
            let mut tokens = self.tokens.write();
            let mut s = cache.settings.write();
            s.description.clone_from(&p.description);
            s.item_size_max = p.item_size_max;
            if s.token_hashes != hashes {
                for old in s.token_hashes.drain(..) {
                    tokens.remove(&old);
                }
                for h in &hashes {
                    tokens.insert(*h, p.name.clone());
                }
                s.token_hashes = hashes;
            }
        }
        let gone: Vec<String> = self
            .caches
            .read()
            .keys()
            .filter(|name| !placed.iter().any(|p| &p.name == *name))
            .cloned()
            .collect();
        for name in gone {
            self.delete(&name)?;
        }
        Ok(())
    }

    /// Creates a cache; returns it and its token in clear (shown once), if any.
    pub fn create(&self, req: NewCache) -> Result<(Arc<Cache>, Option<String>), RegistryError> {
        validate_name(&req.name)?;
        req.limits.validate().map_err(RegistryError::Invalid)?;
        if let Some(n) = req.item_size_max {
            if req.engine != Engine::Memcached {
                return Err(RegistryError::Invalid(
                    "item_size_max is a setting of memcached-engine caches".into(),
                ));
            }
            validate_item_size_max(n).map_err(RegistryError::Invalid)?;
        }
        let token = match req.token.clone() {
            Some(t) => Some(validate_token(t)?),
            None if req.open => None,
            None => Some(generate_token()),
        };
        if self.caches.read().contains_key(&req.name) {
            return Err(RegistryError::Exists(req.name));
        }
        let hashes: Vec<[u8; 32]> = token.iter().map(|t| hash_token(t.as_bytes())).collect();
        let pool = self.new_pool(&req.name, req.cluster_mode)?;
        let mut caches = self.caches.write();
        if caches.contains_key(&req.name) {
            return Err(RegistryError::Exists(req.name));
        }
        let cache = self.insert(&mut caches, req, hashes, pool);
        Ok((cache, token))
    }

    /// Builds cache `req` with its token hashes and pool and lists it.
    fn insert(
        &self,
        caches: &mut HashMap<String, Arc<Cache>>,
        req: NewCache,
        hashes: Vec<[u8; 32]>,
        pool: CachePool,
    ) -> Arc<Cache> {
        let created_at = req.created_at.unwrap_or_else(SystemTime::now);
        let incarnation = created_at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let cache = Arc::new(Cache {
            name: req.name.clone(),
            created_at,
            incarnation: AtomicU64::new(incarnation),
            open: req.open,
            engine: req.engine,
            settings: RwLock::new(CacheSettings {
                description: req.description,
                limits: req.limits,
                item_size_max: req.item_size_max.unwrap_or(DEFAULT_ITEM_SIZE_MAX),
                token_hashes: hashes.clone(),
            }),
            pool,
            usage: Usage::default(),
            scripts: ScriptStore::default(),
            functions: FunctionStore::default(),
            server: Default::default(),
            limiter: RwLock::new(None),
            storage_max: AtomicU64::new(0),
            deleted: AtomicBool::new(false),
            users: RwLock::new(HashMap::new()),
            acl_log: AclLog::default(),
            memcached: Default::default(),
        });
        cache.apply_limits(req.limits);
        if req.engine == Engine::Memcached {
            // Memcached evicts any item at its memory limit (LRU), not only
            // those with a TTL.
            if let Some(p) = crate::cmd::params::find("maxmemory-policy") {
                cache.server.config.set_all(&[(p, "allkeys-lru".into())]);
            }
        }
        let mut tokens = self.tokens.write();
        for h in hashes {
            tokens.insert(h, req.name.clone());
        }
        caches.insert(req.name, cache.clone());
        cache
    }

    pub fn get(&self, name: &str) -> Option<Arc<Cache>> {
        self.caches.read().get(name).cloned()
    }

    /// Every cache, sorted by name.
    pub fn list(&self) -> Vec<Arc<Cache>> {
        let mut all: Vec<_> = self.caches.read().values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// The cache whose token this is (one-argument AUTH).
    pub fn find_by_token(&self, token: &[u8]) -> Option<Arc<Cache>> {
        let name = self.tokens.read().get(&hash_token(token)).cloned()?;
        self.get(&name)
    }

    /// Publishes every cache's figures to the metrics recorder; returns the
    /// exposition when `render` is set.
    pub fn publish_metrics(&self, render: bool) -> Option<String> {
        let caches = self.list();
        let figures: Vec<CacheFigures<'_>> = caches
            .iter()
            .map(|c| CacheFigures {
                name: &c.name,
                engine: c.engine.as_str(),
                usage: &c.usage,
                totals: c.pool.totals(),
                partitions: c.pool.partitions().len(),
                scaling: &c.pool.scaling,
                hot_slots: c.pool.hot_slots(),
                limits: c.limits(),
            })
            .collect();
        if render {
            Some(self.metrics.render(&figures))
        } else {
            self.metrics.publish(&figures);
            None
        }
    }

    /// Changes description and/or limits.
    pub fn update(
        &self,
        name: &str,
        description: Option<String>,
        limits: Option<UsageLimits>,
    ) -> Result<Arc<Cache>, RegistryError> {
        let cache = self
            .get(name)
            .ok_or_else(|| RegistryError::NotFound(name.into()))?;
        if let Some(l) = &limits {
            l.validate().map_err(RegistryError::Invalid)?;
        }
        if let Some(d) = description {
            cache.settings.write().description = d;
        }
        if let Some(l) = limits {
            cache.apply_limits(l);
        }
        Ok(cache)
    }

    /// Replaces a cache's tokens with `token` (or a generated one); returns
    /// the new token in clear. Old tokens stop working at once.
    pub fn rotate_token(
        &self,
        name: &str,
        token: Option<String>,
        keep_previous: bool,
    ) -> Result<String, RegistryError> {
        let cache = self
            .get(name)
            .ok_or_else(|| RegistryError::NotFound(name.into()))?;
        let token = match token {
            Some(t) => validate_token(t)?,
            None => generate_token(),
        };
        let h = hash_token(token.as_bytes());
        let mut tokens = self.tokens.write();
        let mut s = cache.settings.write();
        // Rotation without downtime: the newest previous token stays valid
        // beside the new one until it is revoked.
        let keep = if keep_previous {
            s.token_hashes.pop()
        } else {
            None
        };
        for old in s.token_hashes.drain(..) {
            tokens.remove(&old);
        }
        s.token_hashes.extend(keep.filter(|k| *k != h));
        s.token_hashes.push(h);
        tokens.insert(h, name.to_string());
        Ok(token)
    }

    /// Keeps only a cache's newest token (the end of a rotation).
    pub fn revoke_previous_tokens(&self, name: &str) -> Result<(), RegistryError> {
        let cache = self
            .get(name)
            .ok_or_else(|| RegistryError::NotFound(name.into()))?;
        let mut tokens = self.tokens.write();
        let mut s = cache.settings.write();
        let newest = s.token_hashes.pop();
        for old in s.token_hashes.drain(..) {
            tokens.remove(&old);
        }
        s.token_hashes.extend(newest);
        Ok(())
    }

    /// Deletes a cache: its data is released now, its tokens refused, and
    /// connections bound to it are refused on their next command.
    pub fn delete(&self, name: &str) -> Result<(), RegistryError> {
        let cache = self
            .caches
            .write()
            .remove(name)
            .ok_or_else(|| RegistryError::NotFound(name.into()))?;
        cache.deleted.store(true, Ordering::Release);
        for user in cache.users.write().drain() {
            user.1.disconnect();
        }
        let mut tokens = self.tokens.write();
        for h in cache.settings.write().token_hashes.drain(..) {
            tokens.remove(&h);
        }
        // Its data is released now; a partition that slow work holds (a
        // running script is stopped) is released off the caller's thread
        // once that work ends.
        cache.pool.kill_scripts(true);
        cache.scripts.flush();
        cache.functions.flush();
        if let Placement::Nodes(placer) = &self.placement {
            placer.unhost(&cache.name);
        }
        if !cache.pool.try_flush() {
            let released = cache.clone();
            let spawned = std::thread::Builder::new()
                .name("stratus-release".into())
                .spawn(move || released.pool.flush_blocking());
            if spawned.is_err() {
                tracing::warn!(cache = %cache.name, "a busy partition of a deleted cache keeps its data until restart");
            }
        }
        Ok(())
    }
}

/// Names: 1–40 chars of a-z, 0-9 and '-', starting with a letter.
pub fn validate_name(name: &str) -> Result<(), RegistryError> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(RegistryError::Invalid(format!(
            "invalid cache name '{}': use 1-40 characters of a-z, 0-9 and '-', starting with a letter",
            name.chars().take(64).collect::<String>()
        )))
    }
}

/// Supplied tokens follow ElastiCache's AUTH token rules: 16–128 printable
/// ASCII characters, without space, '"', '/' or '@'.
fn validate_token(t: String) -> Result<String, RegistryError> {
    let ok = (16..=128).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'/' | b'@'));
    if ok {
        Ok(t)
    } else {
        Err(RegistryError::Invalid(
            "token must be 16-128 printable ASCII characters without space, '\"', '/' or '@'"
                .into(),
        ))
    }
}

fn generate_token() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..TOKEN_LEN)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The key token hashes are made with (see [`hash_token`]).
static TOKEN_KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();

/// Sets the key token hashes are made with, before the first hash: the
/// processes of one deployment (control and its proxies) share it, as a
/// secret that is never stored beside the hashes. Refused if another key
/// is in use already.
pub fn set_token_key(key: [u8; 32]) -> Result<(), String> {
    if *TOKEN_KEY.get_or_init(|| key) == key {
        Ok(())
    } else {
        Err("token key already set to another value".into())
    }
}

/// A token's hash: SHA-256 keyed with a secret ([`set_token_key`], or a
/// random one of this process), so a leaked hash table cannot be checked
/// against guesses offline; one key for all tokens keeps `AUTH <token>` a
/// lookup by hash.
fn hash_token(token: &[u8]) -> [u8; 32] {
    let key = TOKEN_KEY.get_or_init(|| rand::rng().random());
    let mut h = Sha256::new();
    h.update(key);
    h.update(token);
    h.finalize().into()
}

/// Lower-case hex of a hash.
fn hex(hash: &[u8; 32]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        Registry::new(Arc::new(Metrics::new()))
    }

    #[test]
    fn tokens_bind_and_rotate() {
        let r = registry();
        let (cache, token) = r
            .create(NewCache {
                name: "orders".into(),
                ..NewCache::default()
            })
            .unwrap();
        let token = token.unwrap();
        assert_eq!(token.len(), TOKEN_LEN);
        assert!(cache.check_token(token.as_bytes()));
        assert!(!cache.check_token(b"nope"));
        assert_eq!(r.find_by_token(token.as_bytes()).unwrap().name, "orders");
        let new = r.rotate_token("orders", None, false).unwrap();
        assert!(!cache.check_token(token.as_bytes()));
        assert!(r.find_by_token(token.as_bytes()).is_none());
        assert!(cache.check_token(new.as_bytes()));
        // Rotation without downtime: the previous token stays until revoked.
        let newer = r.rotate_token("orders", None, true).unwrap();
        assert!(cache.check_token(new.as_bytes()) && cache.check_token(newer.as_bytes()));
        let newest = r.rotate_token("orders", None, true).unwrap();
        assert!(
            !cache.check_token(new.as_bytes()),
            "only one previous token is kept"
        );
        r.revoke_previous_tokens("orders").unwrap();
        assert!(!cache.check_token(newer.as_bytes()) && cache.check_token(newest.as_bytes()));
        assert!(r.find_by_token(newer.as_bytes()).is_none());
        let new = newest;
        r.delete("orders").unwrap();
        assert!(r.find_by_token(new.as_bytes()).is_none());
        assert!(cache.is_deleted());
    }

    #[test]
    fn names_and_limits_are_validated() {
        for bad in ["", "Orders", "1abc", "a_b", &"a".repeat(41)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        validate_name("a").unwrap();
        validate_name("orders-2").unwrap();
    }
}
