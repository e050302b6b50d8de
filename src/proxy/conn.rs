//! One client connection: the connection loop and the request path.
//!
//! The loop, per wake-up:
//! 1. decode every whole request in the read buffer and run each through
//!    [`Connection::handle`], appending replies to the write buffer;
//! 2. write what the socket takes now (one write for the whole batch);
//! 3. wait for more input, for the socket to drain, or for shutdown.
//!
//! Replies not yet taken by the client stay in the write buffer; the loop
//! keeps reading (as Redis does) and disconnects a client whose pending
//! replies exceed the output-buffer limit. Slow or half-open peers only ever
//! block their own task; TCP keepalive reaps dead peers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::conn_cmds;
use super::server::ProxyShared;
use super::session::Session;
use crate::cmd::{self, CommandSpec, Exec, flags};
use crate::control::Cache;
use crate::metering::{Rejection, ecpu_milli, transfer_milli, work_milli};
use crate::metrics::GlobalCounters;
use crate::partition::key_slot;
use crate::pool::{ExecOptions, Executed};
use crate::resp::{Protocol, Reply, Request, reply};

/// Read-buffer headroom kept free before each read, bytes.
const READ_CHUNK: usize = 16 * 1024;
/// Buffers larger than this are released once empty, bytes.
const KEEP_BUFFER: usize = 1024 * 1024;
/// Time allowed to flush the last replies when closing.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// TCP keepalive idle time: half-open peers are found within minutes.
const KEEPALIVE: Duration = Duration::from_secs(60);

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A connection's state outside the socket.
pub struct Connection<'a> {
    pub session: Session,
    pub shared: &'a ProxyShared,
    pub wbuf: BytesMut,
}

/// Runs one client connection to its end.
pub async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<ProxyShared>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let sock = socket2::SockRef::from(&stream);
    let _ = sock.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(KEEPALIVE));
    let local = stream.local_addr().unwrap_or(peer);
    let mut conn = Connection {
        session: Session::new(shared.next_client_id(), peer, local),
        shared: &shared,
        wbuf: BytesMut::with_capacity(READ_CHUNK),
    };
    if let Some(cache) = shared.default_cache() {
        conn.session.bind(cache);
    }
    tracing::debug!(client = conn.session.id, %peer, "connection opened");
    let reason = conn.serve(stream, &shutdown).await;
    tracing::debug!(client = conn.session.id, %peer, reason, "connection closed");
}

impl Connection<'_> {
    async fn serve(&mut self, mut stream: TcpStream, shutdown: &CancellationToken) -> &'static str {
        let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
        // When the bytes being decoded arrived: admission waits count from here.
        let mut arrived = Instant::now();
        loop {
            // 1. Run every whole request buffered.
            while !self.session.closing {
                if self.wbuf.len() > self.shared.output_buffer_limit {
                    tracing::warn!(
                        client = self.session.id,
                        pending = self.wbuf.len(),
                        "output buffer limit reached: closing"
                    );
                    return "output buffer limit";
                }
                match self.shared.decoder.decode(&mut rbuf) {
                    Ok(Some(req)) => self.handle(req, arrived).await,
                    Ok(None) => break,
                    Err(e) => {
                        GlobalCounters::bump(&self.shared.registry.metrics.global.protocol_errors);
                        Reply::err_owned(e.reply_text())
                            .encode(self.session.protocol, &mut self.wbuf);
                        self.session.closing = true;
                    }
                }
            }
            // 2. Write what the socket takes now.
            while !self.wbuf.is_empty() {
                match stream.try_write(&self.wbuf) {
                    Ok(n) => self.wbuf.advance(n),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => return "write error",
                }
            }
            if self.session.closing {
                let _ =
                    tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, stream.write_all(&self.wbuf)).await;
                return "closed by command or protocol error";
            }
            if self.wbuf.is_empty() && self.wbuf.capacity() > KEEP_BUFFER {
                self.wbuf = BytesMut::with_capacity(READ_CHUNK);
            }
            if rbuf.is_empty() && rbuf.capacity() > KEEP_BUFFER {
                rbuf = BytesMut::with_capacity(READ_CHUNK);
            }
            if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
                rbuf.reserve(READ_CHUNK);
            }
            // 3. Wait for input, drain, or shutdown.
            tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    let _ = tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, stream.write_all(&self.wbuf)).await;
                    return "server shutdown";
                }
                r = stream.readable() => {
                    if r.is_err() {
                        return "read error";
                    }
                    match stream.try_read_buf(&mut rbuf) {
                        Ok(0) => return "peer closed",
                        Ok(_) => arrived = Instant::now(),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => return "read error",
                    }
                }
                r = stream.writable(), if !self.wbuf.is_empty() => {
                    if r.is_err() {
                        return "write error";
                    }
                }
            }
        }
    }

    /// Runs one request and appends its reply; meters it on the bound cache.
    pub async fn handle(&mut self, req: Request, arrived: Instant) {
        let started = Instant::now();
        let out_before = self.wbuf.len();
        let Outcome { reply, billing } = self.dispatch(&req, arrived).await;
        reply.encode(self.session.protocol, &mut self.wbuf);
        let reply_bytes = (self.wbuf.len() - out_before) as u64;
        let wire_in = req.wire_len as u64;
        let Some(cache) = &self.session.cache else {
            return;
        };
        let usage = &cache.usage;
        usage.net_in.fetch_add(wire_in, Ordering::Relaxed);
        usage.net_out.fetch_add(reply_bytes, Ordering::Relaxed);
        match billing {
            Billing::Metered {
                spec,
                slot,
                keys,
                elements,
                upfront,
            } => {
                let ecpu = ecpu_milli(
                    transfer_milli(wire_in + reply_bytes),
                    work_milli(spec, keys, elements),
                );
                usage.meter(spec.family, ecpu);
                cache.pool.record_load(slot, ecpu);
                if let Some(limiter) = cache.limiter() {
                    limiter.add_debt(upfront, ecpu);
                }
                let histogram = if spec.has(flags::WRITE) {
                    &cache.metrics.write_duration
                } else {
                    &cache.metrics.read_duration
                };
                histogram.record(started.elapsed().as_secs_f64());
            }
            Billing::Unmetered => {
                usage.unmetered.fetch_add(1, Ordering::Relaxed);
            }
            Billing::Rejected(why) => usage.reject(why),
            Billing::Nothing => {}
        }
    }

    /// The request path, top to bottom: look up → auth → check keys → admit →
    /// make room → route and execute. Metering follows in [`Self::handle`].
    async fn dispatch(&mut self, req: &Request, arrived: Instant) -> Outcome {
        let args = &req.args;
        // Look up the command and check its arity.
        let Some(spec) = cmd::lookup(&args[0]) else {
            let reply = Reply::err_owned(reply::unknown_command(&args[0], &args[1..]));
            return Outcome::rejected(reply, Rejection::UnknownCommand);
        };
        if !spec.arity_ok(args.len()) {
            return Outcome::rejected(
                Reply::err_owned(reply::wrong_arity(spec.name)),
                Rejection::Arity,
            );
        }
        // Auth: a deleted cache unbinds its connections.
        if self.session.cache.as_ref().is_some_and(|c| c.is_deleted()) {
            self.session.unbind();
            return Outcome::nothing(Reply::err(reply::CACHE_DELETED));
        }
        let cache = self.session.cache.clone();
        if cache.is_none() && !spec.has(flags::NO_AUTH) {
            GlobalCounters::bump(&self.shared.registry.metrics.global.noauth_rejections);
            return Outcome::nothing(Reply::err(reply::NOAUTH));
        }
        // Keys: sizes and slots.
        let (slot, keys) = match check_keys(spec, args, self.shared.max_key_len) {
            Ok(k) => k,
            Err((reply, why)) => return Outcome::rejected(reply, why),
        };
        let metered = !spec.has(flags::UNMETERED);
        // Admit: the cache's ECPU/s limit, charged what is known upfront. The
        // wait allowed counts from the request's arrival, so requests queued
        // in a pipeline behind throttled ones do not each wait afresh.
        let upfront = ecpu_milli(transfer_milli(req.wire_len as u64), 0);
        let max_wait = self
            .shared
            .throttle_max_wait
            .saturating_sub(arrived.elapsed());
        if let Some(cache) = cache.as_ref().filter(|_| metered)
            && let Some(limiter) = cache.limiter()
            && limiter.admit(upfront, max_wait).await.is_err()
        {
            let reply = Reply::err_owned(reply::throttled(&cache.name, limiter.max_ecpu_per_sec));
            return Outcome::rejected(reply, Rejection::Throttled);
        }
        let now = now_ms();
        // Make room: writes that grow data respect the storage maximum.
        if let Some(cache) = &cache
            && spec.has(flags::DENY_OOM)
            && !make_room(cache, req.wire_len as u64, now)
        {
            return Outcome::rejected(Reply::err(reply::OOM), Rejection::Oom);
        }
        // Route and execute.
        let executed = match (spec.exec, &cache) {
            (Exec::Conn(op), _) => conn_cmds::run(self, op, args, now),
            (Exec::Data(_), Some(cache)) => {
                let opts = ExecOptions {
                    now,
                    resp3: self.session.protocol == Protocol::Resp3,
                    max_value_len: self.shared.decoder.limits.max_bulk_len,
                    script_time_limit: self.shared.script_time_limit,
                };
                match super::scripting::prepare(cache, spec, args) {
                    Ok(args) => cache.pool.execute(spec, &args, slot, opts),
                    Err(reply) => Executed { reply, work: 0 },
                }
            }
            (Exec::Data(_), None) => return Outcome::nothing(Reply::err(reply::NOAUTH)),
        };
        let billing = if metered {
            Billing::Metered {
                spec,
                slot,
                keys,
                elements: executed.work,
                upfront,
            }
        } else {
            Billing::Unmetered
        };
        Outcome {
            reply: executed.reply,
            billing,
        }
    }
}

/// A reply and how the request is accounted.
struct Outcome {
    reply: Reply,
    billing: Billing,
}

enum Billing {
    /// Ran and is billed: ECPU from its wire bytes and work.
    Metered {
        spec: &'static CommandSpec,
        /// Slot of the first key: where the load is counted.
        slot: u16,
        keys: u64,
        elements: u64,
        upfront: u64,
    },
    /// Ran, not billed (AUTH, HELLO, PING, QUIT).
    Unmetered,
    /// Refused before running, not billed.
    Rejected(Rejection),
    /// Not attributable to a cache.
    Nothing,
}

impl Outcome {
    fn rejected(reply: Reply, why: Rejection) -> Outcome {
        Outcome {
            reply,
            billing: Billing::Rejected(why),
        }
    }

    fn nothing(reply: Reply) -> Outcome {
        Outcome {
            reply,
            billing: Billing::Nothing,
        }
    }
}

/// Most keys one write may evict before it is refused.
const MAX_EVICTIONS_PER_WRITE: usize = 4096;

/// Evicts volatile keys until a write of about `incoming` bytes fits under
/// the cache's storage maximum. If nothing more can be evicted, the write is
/// still allowed while usage is within the maximum (it may be an overwrite;
/// Redis checks the same way), and refused once usage is over it.
fn make_room(cache: &Cache, incoming: u64, now: u64) -> bool {
    let max = cache.limits().max_storage_bytes();
    if max == 0 {
        return true;
    }
    for _ in 0..MAX_EVICTIONS_PER_WRITE {
        if cache.pool.used_bytes() + incoming <= max {
            return true;
        }
        if cache.pool.evict_one(now).is_none() {
            break;
        }
    }
    cache.pool.used_bytes() <= max
}

/// Checks key lengths and that every key is in one slot, unless the command
/// fans out per key (`FANOUT`). Returns the slot of the first key (0 for keyless commands)
/// and the number of keys.
fn check_keys(
    spec: &CommandSpec,
    args: &[bytes::Bytes],
    max_key_len: usize,
) -> Result<(u16, u64), (Reply, Rejection)> {
    let mut slot = None;
    let mut keys = 0;
    for i in spec.key_positions(args) {
        let key = &args[i];
        keys += 1;
        if key.len() > max_key_len {
            return Err((Reply::err(reply::KEY_TOO_LONG), Rejection::KeyTooLong));
        }
        let s = key_slot(key);
        match slot {
            None => slot = Some(s),
            Some(first) if first != s && !spec.has(flags::FANOUT) => {
                return Err((Reply::err(reply::CROSSSLOT), Rejection::CrossSlot));
            }
            Some(_) => {}
        }
    }
    Ok((slot.unwrap_or(0), keys))
}
