//! A process's connections to nodes (a proxy's, or control's): [`Nodes`],
//! one [`NodeClient`] per node address, each speaking [`crate::wire`] over
//! one TCP connection, requests numbered and their responses matched as
//! they come. The node's side is [`crate::node`]; the two share only the
//! wire format.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::wire::{self, Envelope, Request, Response};

/// A process's connections to nodes, one per address (a proxy's, or
/// control's), made on first use.
pub struct Nodes {
    key: Option<[u8; 32]>,
    clients: Mutex<HashMap<std::net::SocketAddr, Arc<NodeClient>>>,
    /// This process to the nodes' feeds: a number no other has (never 0,
    /// the nodes' own).
    origin: u64,
}

impl Nodes {
    /// Connections that prove the deployment's shared `key`.
    pub fn new(key: Option<[u8; 32]>) -> Arc<Nodes> {
        Arc::new(Nodes {
            key,
            clients: Mutex::new(HashMap::new()),
            origin: rand::random::<u64>().max(1),
        })
    }

    /// This process's number in the nodes' feeds ([`crate::pool::feed`]).
    pub fn origin(&self) -> u64 {
        self.origin
    }

    /// The connection to the node at `addr`.
    pub fn client(&self, addr: std::net::SocketAddr) -> Arc<NodeClient> {
        self.clients
            .lock()
            .entry(addr)
            .or_insert_with(|| NodeClient::new(addr, self.key))
            .clone()
    }
}

/// Why a node could not answer a request.
#[derive(Debug, Clone, thiserror::Error)]
#[error("node {addr}: {why}")]
pub struct NodeError {
    pub addr: std::net::SocketAddr,
    pub why: String,
}

/// How long a proxy waits for a node to accept its connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a proxy waits for a node's answer (a script may run its 5 s
/// limit, a worker-pool command wait its turn): past it the request fails
/// with `CLUSTERDOWN`, and a late answer is dropped.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a connection with requests waiting may hear nothing from its
/// node before it is taken for dead (a frozen process, a network cut):
/// its waiting requests fail then, and the next request connects again.
/// A node answers a [`Request::Ping`] the link sends after each second
/// of silence, so a slow request (a script) never trips it; any bytes
/// arriving count as heard (a big answer coming slowly), and while an
/// admin request waits (the node answers nothing else meanwhile) the link
/// waits with it.
const LINK_SILENCE: Duration = Duration::from_secs(3);

/// How often a connection checks that its node is heard.
const SILENCE_CHECK: Duration = Duration::from_secs(1);

/// The id of the link's own pings (no caller waits for their answers).
const PING_ID: u64 = u64::MAX;

/// Admin requests: attempts while the node cannot be reached, and the
/// pause between them.
const ADMIN_ATTEMPTS: usize = 60;
const ADMIN_RETRY: Duration = Duration::from_secs(1);

/// A proxy's connection to one node: requests from any task, numbered and
/// sent in order, their responses matched by number as they come. It
/// connects on first use, and again on the next request after the
/// connection is lost (requests waiting then fail: the caller decides).
pub struct NodeClient {
    addr: std::net::SocketAddr,
    /// The `Hello` every connection starts with.
    proof: [u8; 32],
    next_id: AtomicU64,
    link: Mutex<Option<Arc<Link>>>,
    /// Held while connecting: one connection at a time (callers that
    /// arrive meanwhile wait for it rather than each opening their own).
    connecting: tokio::sync::Mutex<()>,
    /// Admin requests, sent one after another ([`Self::admin`]).
    admin: Mutex<Option<mpsc::UnboundedSender<Request>>>,
}

/// One TCP connection to the node.
struct Link {
    /// Requests waiting for their response; `None` once the connection
    /// ended (every waiting request was failed then).
    pending: Pending,
    outgoing: mpsc::Sender<Envelope<Request>>,
    /// Admin requests waiting (the node runs them before reading more, so
    /// it answers no ping meanwhile: the watchdog waits for them).
    admin: Arc<std::sync::atomic::AtomicUsize>,
}

/// Counts one admin request waiting on a link while it lives.
struct AdminWaiting(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for AdminWaiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A node connection's read half that notes when bytes last came (a big
/// answer arriving slowly is not silence).
struct Heard<R> {
    inner: R,
    opened: std::time::Instant,
    heard: Arc<AtomicU64>,
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Heard<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            let at = self.opened.elapsed().as_millis() as u64;
            self.heard.store(at, Ordering::Relaxed);
        }
        polled
    }
}

impl Link {
    fn alive(&self) -> bool {
        self.pending.lock().is_some() && !self.outgoing.is_closed()
    }
}

impl NodeClient {
    /// A client for the node at `addr`, proving it holds `key` (it
    /// connects on first use).
    pub fn new(addr: std::net::SocketAddr, key: Option<[u8; 32]>) -> Arc<NodeClient> {
        Arc::new(NodeClient {
            addr,
            proof: wire::hello_proof(key.as_ref()),
            next_id: AtomicU64::new(1),
            link: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            admin: Mutex::new(None),
        })
    }

    /// Sends an admin request (Host, Unhost) in the order given, after
    /// those before it, retried while the node cannot be reached (a
    /// refusal is logged and dropped).
    pub fn admin(self: &Arc<Self>, request: Request) {
        let mut admin = self.admin.lock();
        if admin.as_ref().is_none_or(|tx| tx.is_closed()) {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            let (tx, mut rx) = mpsc::unbounded_channel::<Request>();
            let client = Arc::downgrade(self);
            runtime.spawn(async move {
                while let Some(request) = rx.recv().await {
                    for attempt in 0..ADMIN_ATTEMPTS {
                        let Some(client) = client.upgrade() else {
                            return;
                        };
                        match client.call(request.clone()).await {
                            Ok(Response::Failed(why)) => {
                                tracing::error!(node = %client.addr, ?request, "refused: {why}");
                                break;
                            }
                            Ok(_) => break,
                            Err(e) if attempt + 1 == ADMIN_ATTEMPTS => {
                                tracing::error!(?request, "given up: {e}");
                            }
                            Err(_) => tokio::time::sleep(ADMIN_RETRY).await,
                        }
                    }
                }
            });
            *admin = Some(tx);
        }
        if let Some(tx) = admin.as_ref() {
            let _ = tx.send(request);
        }
    }

    /// A client connected now to the node at `addr`, which needs no key.
    pub async fn connect(addr: std::net::SocketAddr) -> Result<Arc<NodeClient>, NodeError> {
        let client = NodeClient::new(addr, None);
        client.link().await?;
        Ok(client)
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Whether the node answered the last time it was asked (a live
    /// connection to it).
    pub fn up(&self) -> bool {
        self.link.lock().as_ref().is_some_and(|l| l.alive())
    }

    /// The live connection, made if there is none.
    async fn link(&self) -> Result<Arc<Link>, NodeError> {
        if let Some(link) = self.link.lock().as_ref().filter(|l| l.alive()) {
            return Ok(link.clone());
        }
        let _connecting = self.connecting.lock().await;
        if let Some(link) = self.link.lock().as_ref().filter(|l| l.alive()) {
            return Ok(link.clone());
        }
        let failed = |why: String| NodeError {
            addr: self.addr,
            why,
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(self.addr))
            .await
            .map_err(|_| failed("connect timed out".into()))?
            .map_err(|e| failed(e.to_string()))?;
        stream
            .set_nodelay(true)
            .map_err(|e| failed(e.to_string()))?;
        keepalive(&stream);
        let link = Arc::new(open(stream, self.proof));
        *self.link.lock() = Some(link.clone());
        Ok(link)
    }

    /// Sends `request` and waits for its response: at most
    /// [`CALL_TIMEOUT`], except a blocked client's `Await`, which waits
    /// for a write (its client's own timeout ends it).
    pub async fn call(&self, request: Request) -> Result<Response, NodeError> {
        let link = self.link().await?;
        let failed = |why: &str| NodeError {
            addr: self.addr,
            why: why.to_string(),
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        match link.pending.lock().as_mut() {
            Some(pending) => pending.insert(id, tx),
            None => return Err(failed("connection lost")),
        };
        // Whatever ends this call early (a timeout, the caller giving up)
        // takes its place in the pending map with it.
        let _pending = Forget {
            pending: &link.pending,
            id,
        };
        let waits = matches!(request, Request::Await { .. });
        let _admin = request.is_admin().then(|| {
            link.admin.fetch_add(1, Ordering::Relaxed);
            AdminWaiting(link.admin.clone())
        });
        let exchange = async {
            if link
                .outgoing
                .send(Envelope { id, body: request })
                .await
                .is_err()
            {
                return Err(failed("connection lost"));
            }
            rx.await.map_err(|_| failed("connection lost"))
        };
        if waits {
            return exchange.await;
        }
        tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| failed("no answer in time"))?
    }
}

/// Removes a call's entry from the pending map when the call ends.
struct Forget<'a> {
    pending: &'a Pending,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.pending.lock().as_mut() {
            p.remove(&self.id);
        }
    }
}

/// TCP keepalive on a data-plane connection: a peer that vanished
/// without closing (a cut cable, a frozen host) is found within minutes.
pub(crate) fn keepalive(stream: &TcpStream) {
    let probe = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(10));
    let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&probe);
}

type Pending = Arc<Mutex<Option<HashMap<u64, oneshot::Sender<Response>>>>>;

/// Starts the writer and reader tasks of a new connection, its `Hello`
/// first (requests queued behind it; a node that refuses it closes the
/// connection, and they fail).
fn open(stream: TcpStream, proof: [u8; 32]) -> Link {
    let (read, write) = stream.into_split();
    let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
    let (outgoing, mut queue) = mpsc::channel::<Envelope<Request>>(wire::SEND_QUEUE);
    let mut frames = FramedWrite::new(write, wire::ProxyCodec::default());
    let hello = Envelope {
        id: 0,
        body: Request::Hello { proof },
    };
    let fail_all = {
        let pending = pending.clone();
        // Dropping the senders fails every waiting request.
        move || drop(pending.lock().take())
    };
    let on_write_end = fail_all.clone();
    let writer_pending = pending.clone();
    let writer = tokio::spawn(async move {
        if frames.feed(hello).await.is_err() {
            on_write_end();
            return;
        }
        while let Some(request) = queue.recv().await {
            let id = request.id;
            match frames.feed(request).await {
                Ok(()) => {}
                // Only this request fails: the link carries the others.
                Err(wire::WireError::TooBig(bytes)) => {
                    let waiter = writer_pending.lock().as_mut().and_then(|p| p.remove(&id));
                    if let Some(waiter) = waiter {
                        let _ = waiter.send(Response::Failed(wire::too_big(bytes)));
                    }
                }
                Err(_) => break,
            }
            if queue.is_empty() && frames.flush().await.is_err() {
                break;
            }
        }
        on_write_end();
    });
    let waiting = pending.clone();
    // Milliseconds since `opened` when the node was last heard.
    let opened = std::time::Instant::now();
    let since = move || opened.elapsed().as_millis() as u64;
    let heard = Arc::new(AtomicU64::new(0));
    let read = Heard {
        inner: read,
        opened,
        heard: heard.clone(),
    };
    let mut responses = FramedRead::new(read, wire::ProxyCodec::default());
    let admin = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let admin_waiting = admin.clone();
    let on_read_end = fail_all.clone();
    let last = heard.clone();
    let reader = tokio::spawn(async move {
        while let Some(Ok(response)) = responses.next().await {
            last.store(since(), Ordering::Relaxed);
            if response.id == 0 {
                if let Response::Failed(why) = &response.body {
                    tracing::error!("node refused this proxy: {why}");
                }
                continue;
            }
            let sender = waiting.lock().as_mut().and_then(|p| p.remove(&response.id));
            if let Some(sender) = sender {
                let _ = sender.send(response.body);
            }
        }
        on_read_end();
    });
    // The watchdog: a node silent past LINK_SILENCE while requests wait
    // is dropped, and they fail.
    let watched = pending.clone();
    let pings = outgoing.downgrade();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SILENCE_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was_waiting = false;
        loop {
            tick.tick().await;
            let waiting = match watched.lock().as_ref() {
                None => return,
                Some(p) => !p.is_empty(),
            };
            let Some(pings) = pings.upgrade() else {
                return;
            };
            if !std::mem::replace(&mut was_waiting, waiting) {
                // Silence counts from when requests started waiting.
                heard.fetch_max(since(), Ordering::Relaxed);
            }
            if !waiting || admin_waiting.load(Ordering::Relaxed) > 0 {
                heard.fetch_max(since(), Ordering::Relaxed);
                continue;
            }
            let silent =
                Duration::from_millis(since().saturating_sub(heard.load(Ordering::Relaxed)));
            if silent >= LINK_SILENCE {
                tracing::warn!(
                    ?silent,
                    "node silent with requests waiting: connection dropped"
                );
                fail_all();
                reader.abort();
                writer.abort();
                return;
            }
            if silent >= SILENCE_CHECK {
                let ping = Envelope {
                    id: PING_ID,
                    body: Request::Ping,
                };
                let _ = pings.try_send(ping);
            }
        }
    });
    Link {
        pending,
        outgoing,
        admin,
    }
}
