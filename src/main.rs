//! The `stratus` binary: `stratus serve` runs every role in one process;
//! apart, `stratus node` hosts partitions, `stratus proxy` serves clients
//! and `stratus control` holds the caches and places them on nodes.

use clap::{Parser, Subcommand};
use stratus::config::{
    ControlConfig, DrainConfig, LogFormat, NodeConfig, ProxyConfig, ServeConfig,
};

#[derive(Parser)]
#[command(
    name = "stratus",
    version,
    about = "A Redis-compatible, multi-tenant, autoscaling serverless cache"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy, the control API and an in-process partition pool.
    Serve(Box<ServeConfig>),
    /// Host partitions of any caches for proxies (the data-plane port).
    Node(NodeConfig),
    /// Serve clients (RESP, Memcached) for the caches control lists,
    /// their partitions on nodes.
    Proxy(Box<ProxyConfig>),
    /// The control API: caches and their limits, placed on nodes.
    Control(Box<ControlConfig>),
    /// Move every partition off a node and wait until it is empty (a
    /// node's pre-stop step).
    Drain(DrainConfig),
}

/// Small blocks from glibc, large ones from mimalloc (see `allocator`).
#[global_allocator]
static GLOBAL: stratus::allocator::SplitAllocator = stratus::allocator::SplitAllocator;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let (log_format, threads, checked) = match &cli.command {
        Command::Serve(c) => (c.log_format, c.threads, c.validate()),
        Command::Node(c) => (c.log_format, c.threads, c.validate()),
        Command::Proxy(c) => (c.serve.log_format, c.serve.threads, c.validate()),
        Command::Control(c) => (c.serve.log_format, c.serve.threads, c.validate()),
        Command::Drain(c) => (LogFormat::Text, Some(1), c.validate()),
    };
    init_logging(log_format);
    if let Err(e) = stratus::allocator::spawn_purger() {
        tracing::warn!("no allocator purger thread: {e}");
    }
    if let Err(e) = checked {
        tracing::error!("invalid configuration: {e}");
        eprintln!("stratus: invalid configuration: {e}");
        return std::process::ExitCode::from(2);
    }
    let threads =
        threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("stratus: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Serve(config) => runtime
            .block_on(until_signal(stratus::server::start(*config), |r| {
                r.shutdown()
            })),
        Command::Proxy(config) => runtime
            .block_on(until_signal(stratus::server::start_proxy(*config), |r| {
                r.shutdown()
            })),
        Command::Control(config) => runtime
            .block_on(until_signal(stratus::server::start_control(*config), |s| {
                s.shutdown()
            })),
        Command::Node(config) => runtime.block_on(node(config)),
        Command::Drain(config) => match runtime.block_on(stratus::control::drain::run(&config)) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("drain failed: {e}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}

/// `stratus node`: serves proxies until SIGINT or SIGTERM — or, with
/// etcd, until it loses its membership lease (it fences itself and exits
/// with an error: control gives its partitions to other nodes).
async fn node(config: NodeConfig) -> std::process::ExitCode {
    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let port = config.port.bind().unwrap_or(0);
    let listener = match tokio::net::TcpListener::bind((config.bind, port)).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("cannot listen on {}:{port}: {e}", config.bind);
            return std::process::ExitCode::FAILURE;
        }
    };
    let node_addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("no local address: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let node = stratus::node::Node::new(config.token_key_bytes());
    let mut http_addr = None;
    if let Some(port) = config.http_port {
        match tokio::net::TcpListener::bind((config.http_bind, port)).await {
            Ok(l) => {
                http_addr = l.local_addr().ok();
                tokio::spawn(stratus::node::http::serve(
                    l,
                    node.clone(),
                    shutdown.clone(),
                ));
            }
            Err(e) => {
                tracing::error!("cannot listen on {}:{port}: {e}", config.http_bind);
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let id = config
        .id
        .clone()
        .unwrap_or_else(|| default_node_id(node_addr));
    let lease = if config.meta.etcd.is_empty() {
        None
    } else {
        let advertised = match config.advertised(node_addr) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!("{e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        match stratus::node::join(&config.meta, &id, advertised, shutdown.clone()).await {
            Ok(lease) => {
                node.hold(lease.clone());
                Some(lease)
            }
            Err(e) => {
                tracing::error!("cannot join through etcd: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    };
    let serving = tokio::spawn(node.serve(listener, shutdown.clone()));
    let http = http_addr.map_or_else(|| "none".to_string(), |a| a.to_string());
    tracing::info!(%node_addr, http_addr = %http, id, "stratus node serving");
    let lost = lease.as_ref().map(|l| l.lost().clone()).unwrap_or_default();
    let failed = loop {
        tokio::select! {
            signal = signals.wait() => match signal {
                "SIGHUP" => {}
                signal => {
                    tracing::info!(signal, "shutting down");
                    break false;
                }
            },
            () = lost.cancelled() => {
                tracing::error!("the node lost its lease: it serves nothing more and stops");
                break true;
            }
        }
    };
    shutdown.cancel();
    let _ = serving.await;
    if let Some(lease) = lease.filter(|_| !failed) {
        // Gone at once, not a TTL later.
        lease.revoke().await;
    }
    tracing::info!("shutdown complete");
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}

/// A node's name when `--id` is not given: the host's name and the port.
fn default_node_id(addr: std::net::SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String = host
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(50)
        .collect();
    let host = if host.is_empty() {
        "node".to_string()
    } else {
        host
    };
    format!("{host}-{}", addr.port())
}

/// Starts a role and serves until SIGINT or SIGTERM (SIGHUP reloads the
/// TLS files), then shuts it down.
async fn until_signal<S, F>(
    start: impl std::future::Future<Output = Result<S, String>>,
    shutdown: impl FnOnce(S) -> F,
) -> std::process::ExitCode
where
    S: AsRef<stratus::server::Serving>,
    F: std::future::Future<Output = ()>,
{
    // Handlers first: a signal that arrives once serving is announced
    // must already mean a graceful shutdown.
    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let running = match start.await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let failed = running.as_ref().failed().clone();
    let signal = loop {
        let signal = tokio::select! {
            s = signals.wait() => s,
            () = failed.cancelled() => break None,
        };
        match signal {
            "SIGHUP" => match running.as_ref().reload_tls() {
                Ok(()) => tracing::info!("SIGHUP: TLS files reloaded"),
                Err(e) => {
                    tracing::error!("SIGHUP: TLS files not reloaded, the old ones stay: {e}")
                }
            },
            other => break Some(other),
        }
    };
    match signal {
        Some(signal) => tracing::info!(signal, "shutting down"),
        None => tracing::error!("this role cannot go on: shutting down"),
    }
    shutdown(running).await;
    tracing::info!("shutdown complete");
    match signal {
        Some(_) => std::process::ExitCode::SUCCESS,
        None => std::process::ExitCode::FAILURE,
    }
}

/// SIGINT and SIGTERM (shut down) and SIGHUP (reload the TLS files),
/// caught from start-up on.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    async fn wait(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
            _ = self.hup.recv() => "SIGHUP",
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STRATUS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
