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
use crate::partition::key_slot;
use crate::pool::ExecOptions;
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
                    Ok(Some(req)) => self.handle(req),
                    Ok(None) => break,
                    Err(e) => {
                        self.shared.registry.metrics.protocol_errors.increment(1);
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
                        Ok(_) => {}
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

    /// The request path, top to bottom: look up → auth → check keys → admit →
    /// route and execute → meter → reply.
    pub fn handle(&mut self, req: Request) {
        let out_before = self.wbuf.len();
        self.session.last_command = Instant::now();
        let reply = self.dispatch(&req);
        reply.encode(self.session.protocol, &mut self.wbuf);
        if let Some(cache) = &self.session.cache {
            let c = &cache.counters;
            c.net_in.fetch_add(req.wire_len as u64, Ordering::Relaxed);
            c.net_out
                .fetch_add((self.wbuf.len() - out_before) as u64, Ordering::Relaxed);
            cache.metrics.bytes_in.increment(req.wire_len as u64);
            cache
                .metrics
                .bytes_out
                .increment((self.wbuf.len() - out_before) as u64);
        }
    }

    fn dispatch(&mut self, req: &Request) -> Reply {
        let args = &req.args;
        // Look up the command and check its arity.
        let Some(spec) = cmd::lookup(&args[0]) else {
            return Reply::err_owned(reply::unknown_command(&args[0], &args[1..]));
        };
        if !spec.arity_ok(args.len()) {
            return Reply::err_owned(reply::wrong_arity(spec.name));
        }
        // Auth: a deleted cache unbinds its connections.
        if self.session.cache.as_ref().is_some_and(|c| c.is_deleted()) {
            self.session.unbind();
            return Reply::err(reply::CACHE_DELETED);
        }
        if self.session.cache.is_none() && !spec.has(flags::NO_AUTH) {
            return Reply::err(reply::NOAUTH);
        }
        // Keys: sizes and slots.
        let slot = match check_keys(spec, args, self.shared.max_key_len) {
            Ok(slot) => slot,
            Err(r) => return r,
        };
        // Admit: the ECPU/s limit goes here (metering issue).
        // Route and execute.
        let now = now_ms();
        let reply = match spec.exec {
            Exec::Conn(op) => conn_cmds::run(self, op, args, now),
            Exec::Data(_) => {
                let Some(cache) = &self.session.cache else {
                    return Reply::err(reply::NOAUTH);
                };
                let opts = ExecOptions {
                    now,
                    resp3: self.session.protocol == Protocol::Resp3,
                    max_value_len: self.shared.decoder.limits.max_bulk_len,
                };
                cache.pool.route(slot).execute(spec, args, opts).reply
            }
        };
        // Meter.
        if let Some(cache) = &self.session.cache {
            cache.metrics.commands[spec.family.index()].increment(1);
            cache
                .counters
                .commands_processed
                .fetch_add(1, Ordering::Relaxed);
        }
        reply
    }
}

/// Checks key lengths and, for atomic multi-key commands, that every key is
/// in one slot. Returns the slot of the first key (0 for keyless commands).
fn check_keys(spec: &CommandSpec, args: &[bytes::Bytes], max_key_len: usize) -> Result<u16, Reply> {
    let mut slot = None;
    for i in spec.key_positions(args) {
        let key = &args[i];
        if key.len() > max_key_len {
            return Err(Reply::err(reply::KEY_TOO_LONG));
        }
        let s = key_slot(key);
        match slot {
            None => slot = Some(s),
            Some(first) if first != s && spec.has(flags::SAME_SLOT) => {
                return Err(Reply::err(reply::CROSSSLOT));
            }
            Some(_) => {}
        }
    }
    Ok(slot.unwrap_or(0))
}
