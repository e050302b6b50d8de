//! Every setting of `stratus serve`: its default (a constant with its unit and
//! reason), its flag and environment variable, and its check in
//! [`ServeConfig::validate`], run once at start-up.

use std::net::{IpAddr, SocketAddr};

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::partition::ClusterMode;
use crate::tls::{AuthClients, TlsFiles};

/// RESP port: Redis's.
pub const DEFAULT_PORT: u16 = 6379;
/// Control API port.
pub const DEFAULT_HTTP_PORT: u16 = 8080;
/// Memcached port: memcached's.
pub const DEFAULT_MEMCACHED_PORT: u16 = 11211;
/// Largest bulk string, bytes: Redis's proto-max-bulk-len and ElastiCache's limit.
pub const DEFAULT_MAX_BULK_LEN: usize = 512 * 1024 * 1024;
/// Most arguments per request: ElastiCache Serverless's limit.
pub const DEFAULT_MAX_ARGS: usize = 3999;
/// Longest key, bytes: ElastiCache Serverless's limit.
pub const DEFAULT_MAX_KEY_LEN: usize = 4096;
/// Pending reply bytes after which a client that does not read is
/// disconnected (Redis's client-output-buffer-limit, hard).
pub const DEFAULT_OUTPUT_BUFFER_LIMIT: usize = 64 * 1024 * 1024;
/// Most simultaneous client connections (Redis's maxclients).
pub const DEFAULT_MAX_CLIENTS: usize = 10_000;
/// Longest a request waits for ECPU/s admission before it fails with
/// THROTTLED, milliseconds: throttling shows up as latency first.
pub const DEFAULT_THROTTLE_MAX_WAIT_MS: u64 = 100;
/// A partition splits above this many bytes (1 GiB).
pub const DEFAULT_SPLIT_BYTES: u64 = 1 << 30;
/// A partition splits above this load, ECPU/s, sustained (TiKV's QPS split
/// threshold is of this order for one region).
pub const DEFAULT_SPLIT_ECPU_PER_SEC: u64 = 100_000;
/// Seconds the load must stay over the threshold before a split (TiKV: 10 s).
pub const DEFAULT_SPLIT_LOAD_WINDOW_SECS: u64 = 10;
/// Two neighbours merge below this many bytes together (a quarter of split_bytes).
pub const DEFAULT_MERGE_BYTES: u64 = 1 << 28;
/// Seconds two neighbours must stay cold and small before they merge.
pub const DEFAULT_MERGE_WINDOW_SECS: u64 = 60;
/// Seconds a partition lives before it may merge: no split/merge flapping
/// (CockroachDB waits 5 minutes after a load split).
pub const DEFAULT_MERGE_DELAY_SECS: u64 = 300;
/// Partitions a new cache starts with.
pub const DEFAULT_INITIAL_PARTITIONS: usize = 1;
/// Seconds to wait for connections to finish on shutdown.
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 5;
/// Script limits' defaults: scripting's own (its `cmd` module owns them).
pub use crate::cmd::script::{DEFAULT_BUSY_THRESHOLD_MS, DEFAULT_SCRIPT_TIME_LIMIT_MS};
/// Bytes of unparsed requests (and queued MULTI commands) one connection may
/// buffer: Redis's `client-query-buffer-limit` (1 GiB; it must hold one
/// request with a 512 MiB bulk string).
pub const DEFAULT_QUERY_BUFFER_LIMIT: u64 = 1 << 30;
/// ... all connections of one cache together (its clients' allowance: one
/// cache's clients cannot take the memory another's need).
pub const DEFAULT_CACHE_CLIENT_MEMORY: u64 = 1 << 30;
/// ... all connections of the server together.
pub const DEFAULT_CLIENT_MEMORY: u64 = 4 << 30;
/// ... a connection not yet bound to a cache (AUTH and HELLO are small).
pub const UNAUTHENTICATED_QUERY_BUFFER_LIMIT: u64 = 64 * 1024;
/// Pending reply bytes above which a client that reads nothing for
/// `output-buffer-soft-seconds` is disconnected (Redis's pubsub soft limit).
pub const DEFAULT_OUTPUT_BUFFER_SOFT_LIMIT: usize = 8 * 1024 * 1024;
/// Seconds a client may sit above the soft output limit without reading.
pub const DEFAULT_OUTPUT_BUFFER_SOFT_SECS: u64 = 60;
/// Pub/Sub backlog (messages queued plus unwritten replies) at which a
/// subscriber is disconnected at once, bytes: Redis's
/// `client-output-buffer-limit pubsub 32mb 8mb 60`, hard part.
pub const DEFAULT_PUBSUB_OUTPUT_LIMIT: usize = 32 * 1024 * 1024;
/// ... above which it must catch up within the soft time (8 MiB) ...
pub const DEFAULT_PUBSUB_OUTPUT_SOFT_LIMIT: usize = 8 * 1024 * 1024;
/// ... of this many seconds.
pub const DEFAULT_PUBSUB_OUTPUT_SOFT_SECS: u64 = 60;
/// Connections one cache may have (ElastiCache Serverless allows 65,000 per
/// cache on a fleet; here a share of one server's `max-clients`, so one
/// tenant cannot take every socket).
pub const DEFAULT_MAX_CLIENTS_PER_CACHE: usize = 4_000;
/// Connections not yet bound to a cache (before AUTH).
pub const DEFAULT_MAX_UNAUTHENTICATED: usize = 1_000;
/// Connections not yet bound to a cache from one client address: a single
/// host cannot take every unauthenticated place.
pub const DEFAULT_MAX_UNAUTHENTICATED_PER_IP: usize = 64;
/// New connections a second from one client address above which its next
/// ones are accepted apart, at the lowest CPU priority
/// ([`crate::proxy::flood`]).
pub const DEFAULT_FLOOD_CONNECTS: u32 = 256;
/// Seconds a connection may stay unauthenticated before it is closed.
pub const DEFAULT_AUTH_TIMEOUT_SECS: u64 = 10;
/// Cluster mode of the embedded `default` cache: enabled, as every cache
/// created through the API unless it asks otherwise (one slot per
/// multi-key command, as ElastiCache Serverless).
pub const DEFAULT_CACHE_CLUSTER_MODE: ClusterMode = ClusterMode::Enabled;

/// Whether the embedded `default` cache accepts unauthenticated connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DefaultCache {
    /// On when the RESP port listens on loopback only.
    Auto,
    /// Always on (an explicit operator choice, also on public addresses).
    On,
    Off,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A listening port: a number, `any` (a free port the kernel picks: tests),
/// or 0 = off, as Redis's `port 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    Off,
    Any,
    Fixed(u16),
}

impl Port {
    /// The port to bind, `None` when off.
    pub fn bind(self) -> Option<u16> {
        match self {
            Port::Off => None,
            Port::Any => Some(0),
            Port::Fixed(n) => Some(n),
        }
    }
}

impl std::str::FromStr for Port {
    type Err = String;

    fn from_str(s: &str) -> Result<Port, String> {
        match s {
            "any" => Ok(Port::Any),
            "0" | "off" => Ok(Port::Off),
            n => n
                .parse::<u16>()
                .map(Port::Fixed)
                .map_err(|_| format!("'{n}' is not a port (1-65535, any, or 0 = off)")),
        }
    }
}

impl std::fmt::Display for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Port::Off => f.write_str("0"),
            Port::Any => f.write_str("any"),
            Port::Fixed(n) => write!(f, "{n}"),
        }
    }
}

/// How often a proxy reads control's list of caches (`GET /v1/placement`).
pub const DEFAULT_FOLLOW_PERIOD_MS: u64 = 500;

/// A lease's default time to live, seconds (`--lease-ttl`).
pub const DEFAULT_LEASE_TTL_SECS: u64 = 10;

/// Where the roles apart keep their shared metadata (DESIGN §13): etcd,
/// and the time to live of every lease a role holds there.
#[derive(Debug, Clone, Args)]
pub struct MetaConfig {
    /// etcd's client URLs (`http://host:2379,...`). Control without them
    /// keeps its state in its own memory (one control, lost with it).
    #[arg(long, env = "STRATUS_ETCD", value_delimiter = ',')]
    pub etcd: Vec<String>,
    /// Seconds a lease (membership, control's leadership) outlives its
    /// holder's last renewal: a node or control silent this long is taken
    /// for dead, and fences itself.
    #[arg(long = "lease-ttl", env = "STRATUS_LEASE_TTL", default_value_t = DEFAULT_LEASE_TTL_SECS)]
    pub lease_ttl_secs: u64,
}

impl Default for MetaConfig {
    /// No etcd, leases of the default TTL.
    fn default() -> Self {
        MetaConfig {
            etcd: Vec::new(),
            lease_ttl_secs: DEFAULT_LEASE_TTL_SECS,
        }
    }
}

impl MetaConfig {
    pub fn lease_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.lease_ttl_secs)
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(2..=300).contains(&self.lease_ttl_secs) {
            return Err("lease-ttl must be 2..=300 seconds".into());
        }
        if let Some(bad) = self.etcd.iter().find(|u| !u.starts_with("http://")) {
            return Err(format!(
                "etcd endpoint {bad:?}: use http://host:port (TLS to etcd is not supported yet)"
            ));
        }
        Ok(())
    }
}

/// Settings of `stratus proxy`: `serve`'s, without its own caches (it
/// serves those control lists, their partitions on nodes).
#[derive(Debug, Clone, Args)]
pub struct ProxyConfig {
    #[command(flatten)]
    pub serve: ServeConfig,
    #[command(flatten)]
    pub meta: MetaConfig,
    /// Control's HTTP addresses (`host:port,...`), read for the caches to
    /// serve: the leader answers, standbys send the proxy on. With etcd
    /// and none given, the leader's recorded address.
    #[arg(long, env = "STRATUS_CONTROL", value_delimiter = ',')]
    pub control: Vec<String>,
    /// Milliseconds between two readings of control's list of caches.
    #[arg(long, env = "STRATUS_FOLLOW_PERIOD_MS", default_value_t = DEFAULT_FOLLOW_PERIOD_MS)]
    pub follow_period_ms: u64,
}

impl ProxyConfig {
    pub fn validate(&self) -> Result<(), String> {
        self.serve.validate()?;
        if self.serve.token_key.is_none() {
            return Err("a proxy needs token-key (the one control hashes tokens with)".into());
        }
        if !(10..=60_000).contains(&self.follow_period_ms) {
            return Err("follow-period-ms must be 10..=60000".into());
        }
        self.meta.validate()?;
        if self.control.is_empty() && self.meta.etcd.is_empty() {
            return Err("a proxy needs control's address (--control) or etcd (--etcd)".into());
        }
        Ok(())
    }
}

/// Settings of `stratus control`: `serve`'s HTTP side (the control API),
/// its caches' partitions on nodes.
#[derive(Debug, Clone, Args)]
pub struct ControlConfig {
    #[command(flatten)]
    pub serve: ServeConfig,
    #[command(flatten)]
    pub meta: MetaConfig,
    /// The nodes' data-plane addresses (`host:port,...`); with etcd, nodes
    /// also join by announcing themselves there.
    #[arg(long, env = "STRATUS_NODES", value_delimiter = ',')]
    pub nodes: Vec<SocketAddr>,
    /// The API address this control records when it leads (`host:port`,
    /// or a host alone for the HTTP listener's port), where proxies and
    /// tools find the leader (default: its HTTP listener's address).
    #[arg(long, env = "STRATUS_ADVERTISE_HTTP")]
    pub advertise_http: Option<String>,
    /// The address clients reach the proxies at, as the API shows it
    /// (`host:port`, the host a name or an IP).
    #[arg(long, env = "STRATUS_ENDPOINT", default_value = "127.0.0.1:6379")]
    pub endpoint: Address,
}

impl ControlConfig {
    pub fn validate(&self) -> Result<(), String> {
        self.serve.validate()?;
        if self.serve.token_key.is_none() {
            return Err("control needs token-key (shared with its proxies)".into());
        }
        self.meta.validate()?;
        if self.nodes.is_empty() && self.meta.etcd.is_empty() {
            return Err("control needs nodes (--nodes) or etcd (--etcd) where they join".into());
        }
        Ok(())
    }
}

/// Settings of `stratus drain` (a node's pre-stop step): ask the control
/// leader to move every partition off a node, and wait until it has.
#[derive(Debug, Clone, Args)]
pub struct DrainConfig {
    /// The node to drain (its id, as it joined).
    #[arg(long, env = "STRATUS_NODE_ID")]
    pub node: String,
    #[command(flatten)]
    pub meta: MetaConfig,
    /// Control's HTTP addresses (`host:port,...`), if not found in etcd.
    #[arg(long, env = "STRATUS_CONTROL", value_delimiter = ',')]
    pub control: Vec<String>,
    /// The control API's bearer token.
    #[arg(long, env = "STRATUS_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Seconds to wait for the node to be empty.
    #[arg(long, env = "STRATUS_DRAIN_TIMEOUT", default_value_t = 280)]
    pub timeout: u64,
}

impl DrainConfig {
    pub fn validate(&self) -> Result<(), String> {
        self.meta.validate()?;
        if self.control.is_empty() && self.meta.etcd.is_empty() {
            return Err("drain needs control's address (--control) or etcd (--etcd)".into());
        }
        Ok(())
    }
}

/// The port `stratus node` listens on for proxies (data plane).
pub const DEFAULT_NODE_PORT: u16 = 7379;

/// Settings of `stratus node` (hosts partitions for proxies).
#[derive(Debug, Clone, Args)]
pub struct NodeConfig {
    /// Address the data-plane port listens on.
    #[arg(long, env = "STRATUS_NODE_BIND", default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Data-plane port: a number or `any` (a free port).
    #[arg(long, env = "STRATUS_NODE_PORT", default_value_t = Port::Fixed(DEFAULT_NODE_PORT))]
    pub port: Port,
    /// Reactor threads (default: the CPUs this process may run on).
    #[arg(long, env = "STRATUS_THREADS")]
    pub threads: Option<usize>,
    /// Log format.
    #[arg(long, env = "STRATUS_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// The deployment's shared secret (64 hex digits): proxies connecting
    /// must prove they hold it. Required off loopback.
    #[arg(long, env = "STRATUS_TOKEN_KEY", hide_env_values = true)]
    pub token_key: Option<String>,
    #[command(flatten)]
    pub meta: MetaConfig,
    /// This node's name among nodes (with etcd; default: the host name).
    #[arg(long, env = "STRATUS_NODE_ID")]
    pub id: Option<String>,
    /// The data-plane address it announces (with etcd): `ip:port`, or an
    /// IP alone for the listener's port (default: the listener's address).
    #[arg(long, env = "STRATUS_NODE_ADVERTISE")]
    pub advertise: Option<String>,
    /// Address of its HTTP port (`/healthz`, `/readyz`, `/metrics`).
    #[arg(long, env = "STRATUS_NODE_HTTP_BIND", default_value = "127.0.0.1")]
    pub http_bind: IpAddr,
    /// Its HTTP port (0: a free port; none: no HTTP port).
    #[arg(long, env = "STRATUS_NODE_HTTP_PORT")]
    pub http_port: Option<u16>,
}

impl NodeConfig {
    /// The address it announces, its listener being at `listening`.
    pub fn advertised(&self, listening: SocketAddr) -> Result<SocketAddr, String> {
        match self.advertise.as_deref() {
            None => Ok(listening),
            Some(a) => a
                .parse::<SocketAddr>()
                .or_else(|_| {
                    a.parse::<IpAddr>()
                        .map(|ip| SocketAddr::new(ip, listening.port()))
                })
                .map_err(|_| format!("advertise {a:?}: use ip:port or an IP")),
        }
    }

    /// The shared key, when one is set (and well-formed).
    pub fn token_key_bytes(&self) -> Option<[u8; 32]> {
        unhex(self.token_key.as_deref()?)
    }

    /// Checks the settings before anything starts.
    pub fn validate(&self) -> Result<(), String> {
        if self.port == Port::Off {
            return Err("node port 0: a node must listen".into());
        }
        if self.token_key.is_some() && self.token_key_bytes().is_none() {
            return Err("token-key must be 64 hex digits".into());
        }
        if !self.bind.is_loopback() && self.token_key.is_none() {
            return Err(format!(
                "a node listening on {} needs token-key (the data plane would be open to anyone)",
                self.bind
            ));
        }
        if let Some(t) = self.threads
            && (t == 0 || t > 1024)
        {
            return Err(format!("threads must be 1..=1024 (got {t})"));
        }
        self.meta.validate()?;
        self.advertised(SocketAddr::from(([127, 0, 0, 1], 1)))?;
        if let Some(id) = &self.id
            && !crate::meta::keys::valid_id(id)
        {
            return Err(format!(
                "node id {id:?}: 1-63 characters of a-z, 0-9, '-' and '.'"
            ));
        }
        Ok(())
    }
}

/// Settings of `stratus serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address the RESP port listens on.
    #[arg(long, env = "STRATUS_BIND", default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// RESP port: a number, `any` (a free port), or 0 = no plain TCP (Redis's meaning).
    #[arg(long, env = "STRATUS_PORT", default_value_t = Port::Fixed(DEFAULT_PORT))]
    pub port: Port,
    /// RESP over TLS: a number, `any`, or 0 = off (the default).
    #[arg(long, env = "STRATUS_TLS_PORT", default_value_t = Port::Off)]
    pub tls_port: Port,
    /// Memcached port (memcached-engine caches, text and meta protocols):
    /// a number, `any` (a free port), or 0 = off.
    #[arg(long, env = "STRATUS_MEMCACHED_PORT", default_value_t = Port::Fixed(DEFAULT_MEMCACHED_PORT))]
    pub memcached_port: Port,
    /// Speak TLS on the Memcached port (as memcached's `-Z`), with the TLS files.
    #[arg(long, env = "STRATUS_MEMCACHED_TLS", default_value_t = false)]
    pub memcached_tls: bool,
    /// PEM certificate chain for TLS (RESP, and HTTP with --http-tls).
    #[arg(long, env = "STRATUS_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key for TLS.
    #[arg(long, env = "STRATUS_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA certificates client certificates are checked against.
    #[arg(long, env = "STRATUS_TLS_CA_CERT_FILE")]
    pub tls_ca_cert_file: Option<PathBuf>,
    /// Whether TLS clients must show a certificate: no, yes, optional.
    #[arg(
        long,
        env = "STRATUS_TLS_AUTH_CLIENTS",
        value_enum,
        default_value = "no"
    )]
    pub tls_auth_clients: AuthClients,
    /// Serve the HTTP port as HTTPS only, with the TLS files.
    #[arg(long, env = "STRATUS_HTTP_TLS")]
    pub http_tls: bool,
    /// Address the HTTP control API listens on.
    #[arg(long, env = "STRATUS_HTTP_BIND", default_value = "127.0.0.1")]
    pub http_bind: IpAddr,
    /// HTTP control API port (0 = any free port).
    #[arg(long, env = "STRATUS_HTTP_PORT", default_value_t = DEFAULT_HTTP_PORT)]
    pub http_port: u16,
    /// Bearer token for the control API; required when it listens off loopback.
    #[arg(long, env = "STRATUS_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// The secret cache tokens are hashed with (64 hex digits): control and
    /// its proxies must share it; unset, each process draws its own.
    #[arg(long, env = "STRATUS_TOKEN_KEY", hide_env_values = true)]
    pub token_key: Option<String>,
    /// The open `default` cache: auto (on for loopback), on, off.
    #[arg(
        long,
        env = "STRATUS_DEFAULT_CACHE",
        value_enum,
        default_value = "auto"
    )]
    pub default_cache: DefaultCache,
    /// Cluster mode of the `default` cache: enabled (keys of one command in
    /// one slot; the cache splits as it grows) or disabled (any keys, as a
    /// standalone Redis; one partition that never splits). Checked when
    /// parsed: anything else is refused at start-up.
    #[arg(
        long,
        env = "STRATUS_DEFAULT_CACHE_CLUSTER_MODE",
        default_value_t = DEFAULT_CACHE_CLUSTER_MODE
    )]
    pub default_cache_cluster_mode: ClusterMode,
    /// Reactor threads (default: the CPUs this process may run on).
    #[arg(long, env = "STRATUS_THREADS")]
    pub threads: Option<usize>,
    /// Worker-pool threads for scripts and unbounded commands (default: the
    /// CPUs this process may run on, at least 2).
    #[arg(long, env = "STRATUS_WORKERS")]
    pub workers: Option<usize>,
    /// Connections one cache may have.
    #[arg(long, env = "STRATUS_MAX_CLIENTS_PER_CACHE", default_value_t = DEFAULT_MAX_CLIENTS_PER_CACHE)]
    pub max_clients_per_cache: usize,
    /// Connections not yet authenticated.
    #[arg(long, env = "STRATUS_MAX_UNAUTHENTICATED", default_value_t = DEFAULT_MAX_UNAUTHENTICATED)]
    pub max_unauthenticated: usize,
    /// Connections not yet authenticated from one client address.
    #[arg(long, env = "STRATUS_MAX_UNAUTHENTICATED_PER_IP", default_value_t = DEFAULT_MAX_UNAUTHENTICATED_PER_IP)]
    pub max_unauthenticated_per_ip: usize,
    /// New connections a second from one client address above which its
    /// next ones are accepted apart, at the lowest CPU priority (0: never).
    #[arg(long, env = "STRATUS_FLOOD_CONNECTS", default_value_t = DEFAULT_FLOOD_CONNECTS)]
    pub flood_connects: u32,
    /// Seconds a connection may stay unauthenticated.
    #[arg(long = "auth-timeout", env = "STRATUS_AUTH_TIMEOUT", default_value_t = DEFAULT_AUTH_TIMEOUT_SECS)]
    pub auth_timeout_secs: u64,
    /// Bytes of buffered requests one connection may hold.
    #[arg(long, env = "STRATUS_QUERY_BUFFER_LIMIT", default_value_t = DEFAULT_QUERY_BUFFER_LIMIT)]
    pub query_buffer_limit: u64,
    /// Bytes of buffered requests all connections of one cache may hold.
    #[arg(long, env = "STRATUS_CACHE_CLIENT_MEMORY", default_value_t = DEFAULT_CACHE_CLIENT_MEMORY)]
    pub cache_client_memory: u64,
    /// Bytes of buffered requests all connections may hold.
    #[arg(long, env = "STRATUS_CLIENT_MEMORY", default_value_t = DEFAULT_CLIENT_MEMORY)]
    pub client_memory: u64,
    /// Most simultaneous client connections.
    #[arg(long, env = "STRATUS_MAX_CLIENTS", default_value_t = DEFAULT_MAX_CLIENTS)]
    pub max_clients: usize,
    /// Largest bulk string in bytes.
    #[arg(long, env = "STRATUS_MAX_BULK_LEN", default_value_t = DEFAULT_MAX_BULK_LEN)]
    pub max_bulk_len: usize,
    /// Most arguments in one request.
    #[arg(long, env = "STRATUS_MAX_ARGS", default_value_t = DEFAULT_MAX_ARGS)]
    pub max_args: usize,
    /// Longest key in bytes.
    #[arg(long, env = "STRATUS_MAX_KEY_LEN", default_value_t = DEFAULT_MAX_KEY_LEN)]
    pub max_key_len: usize,
    /// Pending reply bytes above which a connection's further requests wait
    /// until the client reads (one reply may be larger).
    #[arg(long, env = "STRATUS_OUTPUT_BUFFER_LIMIT", default_value_t = DEFAULT_OUTPUT_BUFFER_LIMIT)]
    pub output_buffer_limit: usize,
    /// Pending reply bytes above which a client that reads nothing for
    /// output-buffer-soft-seconds is disconnected.
    #[arg(long, env = "STRATUS_OUTPUT_BUFFER_SOFT_LIMIT", default_value_t = DEFAULT_OUTPUT_BUFFER_SOFT_LIMIT)]
    pub output_buffer_soft_limit: usize,
    /// Seconds a client may stay above the soft output limit without reading.
    #[arg(long = "output-buffer-soft-seconds", env = "STRATUS_OUTPUT_BUFFER_SOFT_SECONDS", default_value_t = DEFAULT_OUTPUT_BUFFER_SOFT_SECS)]
    pub output_buffer_soft_secs: u64,
    /// Pub/Sub backlog in bytes at which a subscriber is disconnected.
    #[arg(long, env = "STRATUS_PUBSUB_OUTPUT_LIMIT", default_value_t = DEFAULT_PUBSUB_OUTPUT_LIMIT)]
    pub pubsub_output_limit: usize,
    /// Pub/Sub backlog in bytes a subscriber may keep only for the soft seconds.
    #[arg(long, env = "STRATUS_PUBSUB_OUTPUT_SOFT_LIMIT", default_value_t = DEFAULT_PUBSUB_OUTPUT_SOFT_LIMIT)]
    pub pubsub_output_soft_limit: usize,
    /// Seconds a subscriber may stay above the Pub/Sub soft limit.
    #[arg(long = "pubsub-output-soft-seconds", env = "STRATUS_PUBSUB_OUTPUT_SOFT_SECONDS", default_value_t = DEFAULT_PUBSUB_OUTPUT_SOFT_SECS)]
    pub pubsub_output_soft_secs: u64,
    /// Milliseconds a request may wait for ECPU/s admission before THROTTLED.
    #[arg(long = "throttle-max-wait", env = "STRATUS_THROTTLE_MAX_WAIT", default_value_t = DEFAULT_THROTTLE_MAX_WAIT_MS)]
    pub throttle_max_wait_ms: u64,
    /// A partition splits when it holds more bytes than this.
    #[arg(long, env = "STRATUS_SPLIT_BYTES", default_value_t = DEFAULT_SPLIT_BYTES)]
    pub split_bytes: u64,
    /// A partition splits when its load stays above this many ECPU/s.
    #[arg(long, env = "STRATUS_SPLIT_ECPU_PER_SEC", default_value_t = DEFAULT_SPLIT_ECPU_PER_SEC)]
    pub split_ecpu_per_sec: u64,
    /// Seconds the load must stay above split-ecpu-per-sec before a split.
    #[arg(long, env = "STRATUS_SPLIT_LOAD_WINDOW", default_value_t = DEFAULT_SPLIT_LOAD_WINDOW_SECS)]
    pub split_load_window: u64,
    /// Two adjacent partitions merge when together they hold fewer bytes than this.
    #[arg(long, env = "STRATUS_MERGE_BYTES", default_value_t = DEFAULT_MERGE_BYTES)]
    pub merge_bytes: u64,
    /// Seconds two partitions must stay cold and small before they merge.
    #[arg(long, env = "STRATUS_MERGE_WINDOW", default_value_t = DEFAULT_MERGE_WINDOW_SECS)]
    pub merge_window: u64,
    /// Seconds a partition must exist before it may merge.
    #[arg(long, env = "STRATUS_MERGE_DELAY", default_value_t = DEFAULT_MERGE_DELAY_SECS)]
    pub merge_delay: u64,
    /// Partitions each new cache starts with.
    #[arg(long, env = "STRATUS_INITIAL_PARTITIONS", default_value_t = DEFAULT_INITIAL_PARTITIONS)]
    pub initial_partitions: usize,
    /// Seconds to let connections finish on shutdown.
    #[arg(long, env = "STRATUS_SHUTDOWN_GRACE", default_value_t = DEFAULT_SHUTDOWN_GRACE_SECS)]
    pub shutdown_grace: u64,
    /// Milliseconds a Lua script may run before it is stopped with an error.
    #[arg(long = "script-time-limit", env = "STRATUS_SCRIPT_TIME_LIMIT", default_value_t = DEFAULT_SCRIPT_TIME_LIMIT_MS)]
    pub script_time_limit_ms: u64,
    /// Milliseconds a script may hold a partition before other commands for
    /// it are answered BUSY.
    #[arg(long = "busy-reply-threshold", env = "STRATUS_BUSY_REPLY_THRESHOLD", default_value_t = DEFAULT_BUSY_THRESHOLD_MS)]
    pub busy_threshold_ms: u64,
    /// Log format.
    #[arg(long, env = "STRATUS_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl Default for ServeConfig {
    /// The defaults, on loopback with ephemeral ports (tests).
    fn default() -> Self {
        ServeConfig {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: Port::Any,
            tls_port: Port::Off,
            memcached_port: Port::Any,
            memcached_tls: false,
            tls_cert_file: None,
            tls_key_file: None,
            tls_ca_cert_file: None,
            tls_auth_clients: AuthClients::No,
            http_tls: false,
            http_bind: IpAddr::from([127, 0, 0, 1]),
            http_port: 0,
            admin_token: None,
            token_key: None,
            default_cache: DefaultCache::Auto,
            default_cache_cluster_mode: DEFAULT_CACHE_CLUSTER_MODE,
            threads: None,
            workers: None,
            max_clients_per_cache: DEFAULT_MAX_CLIENTS_PER_CACHE,
            max_unauthenticated: DEFAULT_MAX_UNAUTHENTICATED,
            max_unauthenticated_per_ip: DEFAULT_MAX_UNAUTHENTICATED_PER_IP,
            flood_connects: DEFAULT_FLOOD_CONNECTS,
            auth_timeout_secs: DEFAULT_AUTH_TIMEOUT_SECS,
            query_buffer_limit: DEFAULT_QUERY_BUFFER_LIMIT,
            cache_client_memory: DEFAULT_CACHE_CLIENT_MEMORY,
            client_memory: DEFAULT_CLIENT_MEMORY,
            max_clients: DEFAULT_MAX_CLIENTS,
            max_bulk_len: DEFAULT_MAX_BULK_LEN,
            max_args: DEFAULT_MAX_ARGS,
            max_key_len: DEFAULT_MAX_KEY_LEN,
            output_buffer_limit: DEFAULT_OUTPUT_BUFFER_LIMIT,
            output_buffer_soft_limit: DEFAULT_OUTPUT_BUFFER_SOFT_LIMIT,
            output_buffer_soft_secs: DEFAULT_OUTPUT_BUFFER_SOFT_SECS,
            pubsub_output_limit: DEFAULT_PUBSUB_OUTPUT_LIMIT,
            pubsub_output_soft_limit: DEFAULT_PUBSUB_OUTPUT_SOFT_LIMIT,
            pubsub_output_soft_secs: DEFAULT_PUBSUB_OUTPUT_SOFT_SECS,
            throttle_max_wait_ms: DEFAULT_THROTTLE_MAX_WAIT_MS,
            split_bytes: DEFAULT_SPLIT_BYTES,
            split_ecpu_per_sec: DEFAULT_SPLIT_ECPU_PER_SEC,
            split_load_window: DEFAULT_SPLIT_LOAD_WINDOW_SECS,
            merge_bytes: DEFAULT_MERGE_BYTES,
            merge_window: DEFAULT_MERGE_WINDOW_SECS,
            merge_delay: DEFAULT_MERGE_DELAY_SECS,
            initial_partitions: DEFAULT_INITIAL_PARTITIONS,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE_SECS,
            script_time_limit_ms: DEFAULT_SCRIPT_TIME_LIMIT_MS,
            busy_threshold_ms: DEFAULT_BUSY_THRESHOLD_MS,
            log_format: LogFormat::Text,
        }
    }
}

impl ServeConfig {
    /// Rejects settings that cannot work or would be unsafe.
    pub fn validate(&self) -> Result<(), String> {
        if self.port == Port::Off && self.tls_port == Port::Off {
            return Err("port and tls-port are both 0: nothing to listen on".into());
        }
        let wants_tls = self.tls_port != Port::Off || self.http_tls || self.memcached_tls;
        if wants_tls && (self.tls_cert_file.is_none() || self.tls_key_file.is_none()) {
            return Err(
                "tls-port, http-tls and memcached-tls need tls-cert-file and tls-key-file".into(),
            );
        }
        if self.tls_auth_clients != AuthClients::No && self.tls_ca_cert_file.is_none() {
            return Err("tls-auth-clients yes|optional needs tls-ca-cert-file".into());
        }
        if self.max_args < 3 || self.max_args > 1_048_576 {
            return Err(format!(
                "max-args must be 3..=1048576 (got {})",
                self.max_args
            ));
        }
        if self.max_bulk_len < 1024 || self.max_bulk_len > 2 * 1024 * 1024 * 1024 {
            return Err(format!(
                "max-bulk-len must be 1 KiB..=2 GiB (got {})",
                self.max_bulk_len
            ));
        }
        if self.max_key_len == 0 || self.max_key_len > self.max_bulk_len {
            return Err(format!(
                "max-key-len must be 1..=max-bulk-len (got {})",
                self.max_key_len
            ));
        }
        if self.output_buffer_limit < 64 * 1024 {
            return Err(format!(
                "output-buffer-limit must be at least 65536 (got {})",
                self.output_buffer_limit
            ));
        }
        if self.throttle_max_wait_ms > 60_000 {
            return Err(format!(
                "throttle-max-wait must be at most 60000 ms (got {})",
                self.throttle_max_wait_ms
            ));
        }
        if self.split_bytes == 0 || self.split_ecpu_per_sec == 0 {
            return Err("split-bytes and split-ecpu-per-sec must be at least 1".into());
        }
        if self.merge_bytes >= self.split_bytes {
            return Err(format!(
                "merge-bytes ({}) must be below split-bytes ({}), or partitions would flap",
                self.merge_bytes, self.split_bytes
            ));
        }
        if self.split_load_window == 0 || self.merge_window == 0 {
            return Err("split-load-window and merge-window must be at least 1 second".into());
        }
        if self.split_load_window > 86_400
            || self.merge_window > 86_400
            || self.merge_delay > 86_400 * 30
        {
            return Err(
                "autoscaling windows must be at most a day (merge-delay at most 30 days)".into(),
            );
        }
        if self.initial_partitions == 0 || self.initial_partitions > 16384 {
            return Err(format!(
                "initial-partitions must be 1..=16384 (got {})",
                self.initial_partitions
            ));
        }
        if self.script_time_limit_ms == 0 || self.script_time_limit_ms > 600_000 {
            return Err(format!(
                "script-time-limit must be 1..=600000 ms (got {})",
                self.script_time_limit_ms
            ));
        }
        if self.max_clients == 0 {
            return Err("max-clients must be at least 1".into());
        }
        if self.max_clients_per_cache == 0 || self.max_unauthenticated == 0 {
            return Err("max-clients-per-cache and max-unauthenticated must be at least 1".into());
        }
        if self.auth_timeout_secs == 0 || self.auth_timeout_secs > 3600 {
            return Err(format!(
                "auth-timeout must be 1..=3600 s (got {})",
                self.auth_timeout_secs
            ));
        }
        if self.busy_threshold_ms == 0 || self.busy_threshold_ms > 600_000 {
            return Err(format!(
                "busy-reply-threshold must be 1..=600000 ms (got {})",
                self.busy_threshold_ms
            ));
        }
        // One request must fit: its largest bulk string plus framing.
        let one_request = self.max_bulk_len as u64 + 64 * 1024;
        if self.query_buffer_limit < one_request {
            return Err(format!(
                "query-buffer-limit ({}) must hold one request of max-bulk-len ({}) plus framing",
                self.query_buffer_limit, self.max_bulk_len
            ));
        }
        if self.cache_client_memory < self.query_buffer_limit
            || self.client_memory < self.cache_client_memory
        {
            return Err(
                "client memory limits must grow outwards: query-buffer-limit <= cache-client-memory <= client-memory"
                    .into(),
            );
        }
        if self.pubsub_output_soft_limit > self.pubsub_output_limit
            || self.pubsub_output_limit < 64 * 1024
            || self.pubsub_output_soft_secs == 0
        {
            return Err(
                "pubsub-output-soft-limit must be at most pubsub-output-limit (at least 64 KiB), and its seconds at least 1"
                    .into(),
            );
        }
        if self.output_buffer_soft_limit > self.output_buffer_limit
            || self.output_buffer_soft_secs == 0
        {
            return Err(
                "output-buffer-soft-limit must be at most output-buffer-limit, and its seconds at least 1"
                    .into(),
            );
        }
        if let Some(t) = self.threads
            && (t == 0 || t > 1024)
        {
            return Err(format!("threads must be 1..=1024 (got {t})"));
        }
        if let Some(t) = self.workers
            && !(2..=1024).contains(&t)
        {
            return Err(format!("workers must be 2..=1024 (got {t})"));
        }
        if let Some(t) = &self.admin_token
            && t.len() < 16
        {
            return Err("admin-token must be at least 16 characters".into());
        }
        if !self.http_bind.is_loopback() && self.admin_token.is_none() {
            return Err(format!(
                "the control API would listen on {} without an admin token: set --admin-token or bind to loopback",
                self.http_bind
            ));
        }
        if self.token_key.is_some() && self.token_key_bytes().is_none() {
            return Err("token-key must be 64 hex digits".into());
        }
        Ok(())
    }

    /// The shared token key, when one is set (and well-formed).
    pub fn token_key_bytes(&self) -> Option<[u8; 32]> {
        unhex(self.token_key.as_deref()?)
    }

    /// The TLS files, when TLS is configured.
    pub fn tls_files(&self) -> Option<TlsFiles> {
        Some(TlsFiles {
            cert: self.tls_cert_file.clone()?,
            key: self.tls_key_file.clone()?,
            ca: self.tls_ca_cert_file.clone(),
            auth_clients: self.tls_auth_clients,
        })
    }

    /// Whether the `default` cache is open (see [`DefaultCache`]).
    pub fn default_cache_open(&self) -> bool {
        match self.default_cache {
            DefaultCache::Auto => self.bind.is_loopback(),
            DefaultCache::On => true,
            DefaultCache::Off => false,
        }
    }

    /// The autoscaler's thresholds (`min_partitions` is set per cache).
    pub fn thresholds(&self) -> crate::pool::autoscaler::Thresholds {
        crate::pool::autoscaler::Thresholds {
            split_bytes: self.split_bytes,
            split_ecpu_per_sec: self.split_ecpu_per_sec,
            split_load_window: self.split_load_window as u32,
            merge_bytes: self.merge_bytes,
            merge_window: self.merge_window as u32,
            merge_delay_secs: self.merge_delay,
            min_partitions: 1,
        }
    }

    /// The framing limits for the RESP decoder.
    pub fn limits(&self) -> crate::resp::Limits {
        crate::resp::Limits {
            max_bulk_len: self.max_bulk_len,
            max_args: self.max_args,
            ..crate::resp::Limits::default()
        }
    }
}

/// A hash from 64 hex digits.
pub fn unhex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_rejects_unsafe_settings() {
        ServeConfig::default().validate().unwrap();
        let public = ServeConfig {
            http_bind: "0.0.0.0".parse().unwrap(),
            ..ServeConfig::default()
        };
        assert!(public.validate().unwrap_err().contains("admin token"));
        let bad = ServeConfig {
            max_args: 1,
            ..ServeConfig::default()
        };
        assert!(bad.validate().is_err());
        let open = ServeConfig {
            bind: "0.0.0.0".parse().unwrap(),
            ..ServeConfig::default()
        };
        assert!(!open.default_cache_open());
        assert!(ServeConfig::default().default_cache_open());
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeConfig,
    }

    #[test]
    fn default_cache_cluster_mode_is_parsed_and_checked() {
        use clap::Parser;
        let parsed =
            |args: &[&str]| Cli::try_parse_from(std::iter::once("t").chain(args.iter().copied()));
        assert_eq!(
            parsed(&[]).map(|c| c.serve.default_cache_cluster_mode).ok(),
            Some(ClusterMode::Enabled)
        );
        let disabled = parsed(&["--default-cache-cluster-mode", "disabled"]);
        assert_eq!(
            disabled.map(|c| c.serve.default_cache_cluster_mode).ok(),
            Some(ClusterMode::Disabled)
        );
        let bad = parsed(&["--default-cache-cluster-mode", "off"])
            .err()
            .map(|e| e.to_string());
        assert!(bad.is_some_and(|e| e.contains("enabled") && e.contains("disabled")));
    }

    #[test]
    fn the_memcached_port_is_parsed_and_its_tls_checked() {
        use clap::Parser;
        let parsed =
            |args: &[&str]| Cli::try_parse_from(std::iter::once("t").chain(args.iter().copied()));
        let port = |args: &[&str]| parsed(args).map(|c| c.serve.memcached_port).ok();
        assert_eq!(port(&[]), Some(Port::Fixed(DEFAULT_MEMCACHED_PORT)));
        assert_eq!(port(&["--memcached-port", "0"]), Some(Port::Off));
        assert_eq!(port(&["--memcached-port", "any"]), Some(Port::Any));
        assert_eq!(
            port(&["--memcached-port", "11311"]),
            Some(Port::Fixed(11311))
        );
        assert!(port(&["--memcached-port", "-3"]).is_none());
        let tls_without_files = ServeConfig {
            memcached_tls: true,
            ..ServeConfig::default()
        };
        assert!(tls_without_files.validate().is_err());
    }
}

/// A host (a name or an IP) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub host: std::sync::Arc<str>,
    pub port: u16,
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Address {
        Address {
            host: a.ip().to_string().into(),
            port: a.port(),
        }
    }
}

impl std::str::FromStr for Address {
    type Err = String;

    /// `host:port`, the host a name or an IP (`[v6]:port` for IPv6).
    fn from_str(s: &str) -> Result<Address, String> {
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(a.into());
        }
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?}: use host:port"))?;
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("{s:?}: bad port"))?;
        let name_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !name_ok {
            return Err(format!("{s:?}: bad host name"));
        }
        Ok(Address {
            host: host.into(),
            port,
        })
    }
}
