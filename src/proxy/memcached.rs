//! One Memcached connection: the loop and the request path.
//!
//! The loop, per wake-up (as the RESP connection's, `proxy::conn`):
//! 1. drop data bytes a refused store left to swallow, then decode and run
//!    every whole request buffered while the replies waiting for the client
//!    stay under the output-buffer limit (past it, nothing more runs or is
//!    read until the client reads);
//! 2. write what the socket takes now (one write for the batch);
//! 3. grow the read buffer with what arrived, charged as client memory
//!    (connection, cache and server limits) before it is allocated;
//! 4. wait for input, for the socket to drain, for the authentication
//!    deadline, for a revoked user or shutdown.
//!
//! The request path, top to bottom in [`McConn::handle`]: authenticate (the
//! text-protocol `set` before anything else) → admit (the cache's ECPU/s
//! limit, charged the request's bytes; past `throttle_max_wait`,
//! `SERVER_ERROR throttled, retry later`) → make room (writes evict as the
//! cache's policy says: allkeys-lru) → execute (each key through
//! `CachePool::execute` with its `Family::Memcached` row) → reply
//! (memcached's text) → meter (ECPU = max(transfer KiB, work), as RESP).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::sync::CancellationToken;

use super::memory::{
    ClientMemory, KEEP_BUFFER, READ_CHUNK, READ_MAX, grow, grown_capacity, make_room,
    output_stalled, release, send_ready, write_room,
};
use super::session::Session;
use super::shared::{PreAuth, ProxyShared, Wire};
use super::turns::{
    self, end_of_round, end_of_slice, end_of_slice_at, in_turns, slice_over, yield_turn,
};
use crate::cmd::memcached::{self as items, ArithOp, DONE, DeleteOp, Found, GetOp, Mode, StoreOp};
use crate::cmd::{CommandSpec, flags, table::memcached_op};
use crate::control::Cache;
use crate::control::registry::Engine;
use crate::memcached::proto::{self, Decoded, Meta, Request};
use crate::memcached::{MemcachedStats as Stats, *};
use crate::metering::usage::Access;
use crate::metering::{Rejection, ecpu_milli, transfer_milli, work_milli};
use crate::metrics::GlobalCounters;
use crate::partition::key_slot;
use crate::partition::now_ms;
use crate::pool::ExecOptions;
use crate::resp::Reply;
use crate::tls::Transport;

const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// An idle connection gives its read buffer back after this (as Redis
/// frees an idle client's query buffer, and the RESP connection does).
const IDLE_BUFFER_AFTER: Duration = Duration::from_secs(2);
/// Buffered bytes of an unfinished request beyond which its transfer is
/// admitted as it arrives (64 KiB: 64 ECPU), as the RESP connection does.
const PREPAY_ABOVE: u64 = 64 * 1024;
/// How long a prepaying connection waits between admission attempts.
const PREPAY_WAIT: Duration = Duration::from_millis(50);

struct McConn<'a> {
    session: Session,
    shared: &'a ProxyShared,
    wbuf: BytesMut,
    memory: ClientMemory,
    /// Data bytes of a refused store still to drop as they arrive.
    swallow: usize,
    /// Bytes at the front of the read buffer whose transfer the cache's
    /// limiter admitted (and the cache was billed) while they arrived.
    prepaid: u64,
    shutdown: CancellationToken,
    /// Bound to the open default cache and nothing run yet: a first `set`
    /// whose data names another Memcached cache and its token logs in
    /// there, as AUTH leaves a RESP connection's default cache.
    may_switch: bool,
}

/// Runs one Memcached connection to its end.
pub async fn run(
    mut stream: Transport,
    peer: SocketAddr,
    local: SocketAddr,
    shared: Arc<ProxyShared>,
    shutdown: CancellationToken,
    preauth: Option<PreAuth>,
) {
    let mut conn = McConn {
        session: Session::new(shared.next_client_id(), peer, local),
        shared: &shared,
        wbuf: BytesMut::new(),
        memory: ClientMemory::default(),
        swallow: 0,
        prepaid: 0,
        shutdown: shutdown.clone(),
        may_switch: false,
    };
    conn.session.preauth = preauth;
    if let Some(cache) = shared.default_for(Wire::Memcached) {
        // Full, it may still log in to another cache, unbound meanwhile.
        if !conn.session.join_default(cache, &shared) {
            let _ = stream.try_write(format!("{MAX_CLIENTS}\r\n").as_bytes());
            return;
        }
        conn.may_switch = !conn.session.turned_away;
    }
    // Told of shutdown as a RESP connection is.
    let _member = (shared.connections).member(conn.session.id, &conn.session.handle.attention);
    if shutdown.is_cancelled() {
        return;
    }
    // No buffers until the client sends: a socket that never does (a
    // burst of unauthenticated ones) costs no memory and no idle-buffer
    // timer, whose wake-ups would otherwise come in a burst too.
    let mut rbuf = BytesMut::new();
    let reason = in_turns(
        conn.session.lane.clone(),
        conn.serve(&mut stream, &mut rbuf),
    )
    .await;
    tracing::debug!(client = conn.session.id, %peer, reason, "memcached connection closed");
    release(rbuf);
    release(std::mem::take(&mut conn.wbuf));
    let _ = conn.memory.set(&shared, None, 0);
}

impl McConn<'_> {
    async fn serve(&mut self, stream: &mut Transport, rbuf: &mut BytesMut) -> &'static str {
        let mut arrived = Instant::now();
        let mut clock = arrived;
        // (Made once: a timer built per wait costs every request.)
        let auth_deadline = tokio::time::sleep(self.shared.auth_timeout);
        tokio::pin!(auth_deadline);
        let attention = self.session.handle.attention.clone();
        let shutdown = self.shutdown.clone();
        // When replies above the soft limit, waiting for a client that reads
        // nothing, end the connection.
        let mut stall_deadline: Option<tokio::time::Instant> = None;
        // An idle connection gives its read buffer back (checked at most
        // once per IDLE_BUFFER_AFTER).
        let idle_timer = tokio::time::sleep(IDLE_BUFFER_AFTER);
        tokio::pin!(idle_timer);
        loop {
            // 1. Run every whole request buffered (swallowing refused data).
            let mut drained = false;
            let mut answered = 0;
            while !self.session.closing && self.wbuf.len() < self.shared.output_buffer_limit {
                if self.swallow > 0 {
                    let n = self.swallow.min(rbuf.len());
                    rbuf.advance(n);
                    self.swallow -= n;
                    if self.swallow > 0 {
                        drained = true;
                        break;
                    }
                }
                let before = rbuf.len();
                let decoded = match &self.session.cache {
                    None => proto::decode_auth(rbuf),
                    Some(cache) => {
                        let item_max = cache.settings.read().item_size_max as usize;
                        proto::decode(rbuf, item_max)
                    }
                };
                match decoded {
                    Decoded::Incomplete => {
                        drained = true;
                        break;
                    }
                    Decoded::Close => {
                        GlobalCounters::bump(&self.shared.registry.metrics.global.protocol_errors);
                        return "line too long";
                    }
                    Decoded::Request(req) => {
                        answered += 1;
                        let wire_in = (before - rbuf.len()) as u64;
                        // One clock reading per request: its end is the
                        // next one's start.
                        clock = self.handle(req, wire_in, arrived, clock).await;
                        if slice_over(clock) {
                            // Replies ready go out before the others' turns.
                            send_ready(stream, &mut self.wbuf);
                            clock = yield_turn().await;
                        }
                    }
                }
            }
            // 2. Write what the socket takes now, once the other ready
            //    connections have run (see `end_of_round`).
            if answered > 0 && !self.wbuf.is_empty() {
                end_of_round(answered).await;
            }
            let pending = self.wbuf.len();
            while !self.wbuf.is_empty() || stream.pending_output() {
                match stream.try_write(&self.wbuf) {
                    Ok(0) if self.wbuf.is_empty() => break,
                    Ok(n) => self.wbuf.advance(n),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => return "write error",
                }
            }
            if self.session.closing {
                let _ =
                    tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, stream.write_all(&self.wbuf)).await;
                return "closed";
            }
            // A client above the soft output limit must make progress.
            if output_stalled(self.shared, &mut stall_deadline, pending, self.wbuf.len()) {
                return "output buffer limit";
            }
            // Big buffers are freed off the reactor (lazyfree).
            if self.wbuf.is_empty() && self.wbuf.capacity() > KEEP_BUFFER {
                release(std::mem::replace(
                    &mut self.wbuf,
                    BytesMut::with_capacity(READ_CHUNK),
                ));
            }
            if rbuf.is_empty() && rbuf.capacity() > KEEP_BUFFER {
                release(std::mem::replace(rbuf, BytesMut::with_capacity(READ_CHUNK)));
            }
            // 3. Room to read into, charged before it is allocated (an idle
            //    connection holds none until its next bytes come).
            if let Some(grown) = grown_capacity(rbuf) {
                let cache = self.session.cache.as_ref();
                if self.memory.set(self.shared, cache, grown as u64).is_err() {
                    let _ = stream.try_write(b"SERVER_ERROR out of memory reading request\r\n");
                    return "client memory limit";
                }
                // A 128 MB item's buffer is remapped, or copied in pieces
                // within the time slices: it must not stall other
                // connections (see `grow`).
                grow(rbuf, grown).await;
            }
            let cache = self.session.cache.as_ref();
            let _ = self.memory.set(self.shared, cache, rbuf.capacity() as u64);
            // A big store is admitted as its bytes arrive: a cache over its
            // ECPU/s limit uploads no faster than the limit allows.
            if drained && !self.prepay(rbuf, &shutdown).await {
                return "server shutdown";
            }
            let output_full = self.wbuf.len() >= self.shared.output_buffer_limit;
            if !drained && !output_full && !self.session.closing {
                clock = turns::now();
                continue;
            }
            let unauthenticated = self.session.cache.is_none();
            // 4. Wait.
            tokio::select! {
                biased;
                raised = attention.wait() => {
                    if raised & crate::attention::SHUTDOWN != 0 {
                        let _ = tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, stream.write_all(&self.wbuf)).await;
                        return "server shutdown";
                    }
                    if raised & crate::attention::REVOKED != 0 {
                        return "user disconnected";
                    }
                    return "killed";
                }
                () = &mut auth_deadline, if unauthenticated => {
                    return "not authenticated in time";
                }
                r = stream.readable(), if !output_full => {
                    if r.is_err() {
                        return "read error";
                    }
                    let fresh = rbuf.capacity() == 0;
                    if fresh {
                        let cache = self.session.cache.as_ref();
                        if self.memory.set(self.shared, cache, READ_CHUNK as u64).is_err() {
                            return "client memory limit";
                        }
                        rbuf.reserve(READ_CHUNK);
                    }
                    match stream.try_read_buf(rbuf, READ_MAX) {
                        Ok(0) => return "peer closed",
                        Ok(_) => {
                            arrived = Instant::now();
                            clock = end_of_slice_at(arrived).await;
                        }
                        // Woken with nothing to read (a new socket's first
                        // readiness can be): a buffer just taken goes back.
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            if fresh {
                                *rbuf = BytesMut::new();
                                let cache = self.session.cache.as_ref();
                                let _ = self.memory.set(self.shared, cache, 0);
                            }
                        }
                        Err(_) => return "read error",
                    }
                }
                r = stream.writable(), if !self.wbuf.is_empty() || stream.pending_output() => {
                    if r.is_err() {
                        return "write error";
                    }
                }
                () = &mut idle_timer, if rbuf.capacity() > 0 => {
                    if rbuf.is_empty() && arrived.elapsed() >= IDLE_BUFFER_AFTER {
                        release(std::mem::take(rbuf));
                        let cache = self.session.cache.as_ref();
                        let _ = self.memory.set(self.shared, cache, 0);
                    }
                    idle_timer.as_mut().reset(tokio::time::Instant::now() + IDLE_BUFFER_AFTER);
                }
                () = sleep_until_some(stall_deadline), if stall_deadline.is_some() => {}
            }
        }
    }

    /// Bills and admits the transfer of the buffered bytes of an unfinished
    /// request past [`PREPAY_ABOVE`] (a big store's data), waiting until
    /// the cache's limit admits them; false on shutdown.
    async fn prepay(&mut self, rbuf: &[u8], shutdown: &CancellationToken) -> bool {
        let buffered = rbuf.len() as u64;
        if buffered == 0 {
            self.prepaid = 0;
        }
        let unpaid = buffered.saturating_sub(self.prepaid);
        if unpaid < PREPAY_ABOVE || self.swallow > 0 {
            return true;
        }
        let Some(cache) = self.session.cache.clone() else {
            return true;
        };
        cache
            .usage
            .meter_transfer(crate::cmd::Family::Memcached, transfer_milli(unpaid));
        self.prepaid = buffered;
        let Some(limiter) = cache.limiter() else {
            return true;
        };
        limiter.add_debt(0, transfer_milli(unpaid));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return false,
                r = limiter.admit(0, PREPAY_WAIT) => if r.is_ok() {
                    return true;
                },
            }
            tokio::time::sleep(PREPAY_WAIT).await;
        }
    }

    fn line(&mut self, text: &str) {
        self.wbuf.extend_from_slice(text.as_bytes());
        self.wbuf.extend_from_slice(b"\r\n");
    }

    /// Runs one request that arrived at `arrived` and starts at `started`,
    /// appending its reply; returns when it finished.
    async fn handle(
        &mut self,
        req: Request,
        wire_in: u64,
        arrived: Instant,
        started: Instant,
    ) -> Instant {
        let ran = self.run_request(req, wire_in, arrived).await;
        let finished = Instant::now();
        if let (Some(write), Some(cache)) = (ran, &self.session.cache) {
            let access = if write { Access::Write } else { Access::Read };
            cache
                .usage
                .duration(access, finished.saturating_duration_since(started));
        }
        finished
    }

    /// Runs one request and appends its reply (the path in the module doc);
    /// `Some(whether it writes)` when it ran as a metered command.
    async fn run_request(&mut self, req: Request, wire_in: u64, arrived: Instant) -> Option<bool> {
        let Some(cache) = self.session.cache.clone() else {
            self.unauthenticated(req).await;
            return None;
        };
        if std::mem::take(&mut self.may_switch)
            && let Request::Store { data, .. } = &req
            && let Some((user, pass)) = self.other_cache_login(data, &cache)
        {
            let logged_in = self.login(&user, &pass).await;
            self.line(if logged_in { "STORED" } else { AUTH_FAILED });
            return None;
        }
        if cache.is_deleted() {
            self.line(CACHE_DELETED);
            self.session.closing = true;
            return None;
        }
        let out_before = self.wbuf.len();
        let usage = &cache.usage;
        // Requests answered by the connection alone (not metered).
        match &req {
            Request::Fail {
                line,
                noreply,
                swallow,
                unlink,
            } => {
                self.swallow = *swallow;
                if *line == proto::TOO_LARGE {
                    Stats::bump(&cache.memcached.store_too_large);
                }
                if let Some(key) = unlink {
                    // A refused store leaves no stale item behind.
                    let args = DeleteOp::default().encode(key.clone());
                    let spec = memcached_op("mc_delete");
                    let opts = ExecOptions::new(now_ms());
                    cache.pool.execute(spec, &args, key_slot(key), &opts).await;
                }
                if !noreply {
                    self.line(line);
                }
                usage.reject(Rejection::UnknownCommand);
                self.count_bytes(&cache, wire_in, out_before);
                return None;
            }
            Request::Quit => {
                self.session.closing = true;
                usage.unmetered.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            Request::Version => {
                self.line(VERSION);
                {
                    self.unmetered(&cache, wire_in, out_before);
                    return None;
                }
            }
            Request::Verbosity { noreply } => {
                if !noreply {
                    self.line("OK");
                }
                {
                    self.unmetered(&cache, wire_in, out_before);
                    return None;
                }
            }
            Request::Mn => {
                self.line("MN");
                {
                    self.unmetered(&cache, wire_in, out_before);
                    return None;
                }
            }
            Request::Auth { .. } => {
                // Already authenticated: an ordinary command now (never here:
                // the authenticated decoder does not produce it).
                self.line(proto::ERROR);
                return None;
            }
            _ => {}
        }
        let spec = primary_spec(&req);
        let keys = match &req {
            Request::Get { keys, .. } => keys.len() as u64,
            Request::Stats { .. } | Request::FlushAll { .. } => 0,
            _ => 1,
        };
        let slot = match &req {
            Request::Get { keys, .. } => keys.first().map_or(0, |k| key_slot(k)),
            Request::Store { key, .. }
            | Request::Touch { key, .. }
            | Request::Arith { key, .. }
            | Request::Delete { key, .. } => key_slot(key),
            Request::Meta(m) => key_slot(&m.key),
            _ => 0,
        };
        // A named user's access string: the operation's categories (@read,
        // @write, @fast...) and each key.
        if let Some(user) = &self.session.user {
            let keys: Vec<Bytes> = match &req {
                Request::Get { keys, .. } => keys.clone(),
                Request::Store { key, .. }
                | Request::Touch { key, .. }
                | Request::Arith { key, .. }
                | Request::Delete { key, .. } => vec![key.clone()],
                Request::Meta(m) => vec![m.key.clone()],
                _ => Vec::new(),
            };
            let name = Bytes::from_static(spec.name.as_bytes());
            let denied = if keys.is_empty() {
                user.access().check(spec, &[name]).is_err()
            } else {
                keys.into_iter()
                    .any(|k| user.access().check(spec, &[name.clone(), k]).is_err())
            };
            if denied {
                self.line(NOPERM);
                usage.reject(Rejection::NoPerm);
                self.count_bytes(&cache, wire_in, out_before);
                return None;
            }
        }
        // Admit: the cache's ECPU/s limit, charged the request's bytes
        // (those admitted as they arrived are not admitted again).
        let prepaid = std::mem::take(&mut self.prepaid).min(wire_in);
        let billed_early = transfer_milli(prepaid);
        let upfront = transfer_milli(wire_in - prepaid);
        let throttle_max_wait = self.shared.throttle_max_wait;
        if let Some(Err(pending)) = cache.with_limiter(|l| l.try_admit(upfront))
            && let Some(limiter) = cache.limiter()
            && limiter
                .wait_admitted(pending, throttle_max_wait.saturating_sub(arrived.elapsed()))
                .await
                .is_err()
            && prepaid == 0
        {
            self.line(THROTTLED);
            usage.reject(Rejection::Throttled);
            self.count_bytes(&cache, wire_in, out_before);
            return None;
        }
        let now = now_ms();
        // Make room: writes that may grow memory evict first.
        if spec.has(flags::DENY_OOM) && !make_room(&cache, wire_in, now).await {
            let quiet = matches!(&req, Request::Store { noreply: true, .. });
            if !quiet {
                self.line(match &req {
                    Request::Arith { .. } => ARITH_OUT_OF_MEMORY,
                    _ => OUT_OF_MEMORY,
                });
            }
            Stats::bump(&cache.memcached.store_no_memory);
            usage.reject(Rejection::Oom);
            self.count_bytes(&cache, wire_in, out_before);
            return None;
        }
        let opts = ExecOptions {
            room: write_room(&cache),
            client: self.session.id,
            ..ExecOptions::new(now)
        };
        let work = self.execute(&cache, req, &opts).await;
        // Meter: ECPU = max(transfer, work), as a RESP command.
        let reply_bytes = (self.wbuf.len() - out_before) as u64;
        usage.net_in.fetch_add(wire_in, Ordering::Relaxed);
        usage.net_out.fetch_add(reply_bytes, Ordering::Relaxed);
        let ecpu = ecpu_milli(
            transfer_milli(wire_in + reply_bytes),
            work_milli(spec, keys, work),
        );
        usage.meter(spec.family, ecpu.saturating_sub(billed_early));
        cache.pool.record_load(slot, ecpu);
        cache.with_limiter(|l| l.add_debt(upfront + billed_early, ecpu));
        Some(spec.has(flags::WRITE))
    }

    fn count_bytes(&self, cache: &Cache, wire_in: u64, out_before: usize) {
        let out = (self.wbuf.len() - out_before) as u64;
        cache.usage.net_in.fetch_add(wire_in, Ordering::Relaxed);
        cache.usage.net_out.fetch_add(out, Ordering::Relaxed);
    }

    fn unmetered(&mut self, cache: &Cache, wire_in: u64, out_before: usize) {
        cache.usage.unmetered.fetch_add(1, Ordering::Relaxed);
        self.count_bytes(cache, wire_in, out_before);
    }

    /// Before authentication: the `set` carrying credentials, or refusals.
    async fn unauthenticated(&mut self, req: Request) {
        // Turned away from the full default cache: only a login is heard.
        if self.session.turned_away && !matches!(req, Request::Auth { .. }) {
            self.line(MAX_CLIENTS);
            self.session.closing = true;
            return;
        }
        match req {
            Request::Auth { user, pass } => {
                if self.login(&user, &pass).await {
                    self.line("STORED");
                } else {
                    self.line(AUTH_FAILED);
                }
            }
            Request::Fail { line, swallow, .. } => {
                self.swallow = swallow;
                GlobalCounters::bump(&self.shared.registry.metrics.global.noauth_rejections);
                self.line(line);
            }
            _ => self.line(UNAUTHENTICATED),
        }
    }

    /// The credentials in a first `set`'s data, if they name a Memcached
    /// cache other than `bound` (`<cache> <token>` or `<cache>.<user>
    /// <password>`): data of an ordinary item does not.
    fn other_cache_login(&self, data: &Bytes, bound: &Cache) -> Option<(Bytes, Bytes)> {
        let (user, pass) = proto::auth_words(data)?;
        let login = std::str::from_utf8(&user).ok()?;
        let name = login.split_once('.').map_or(login, |(c, _)| c);
        let target = self.shared.registry.get(name)?;
        (target.engine == Engine::Memcached && target.name != bound.name).then_some((user, pass))
    }

    /// Memcached's text authentication: `user` is a memcached-engine cache's
    /// name (`pass` its token) or `<cache>.<user>` (a named user of it).
    /// Failures go through the same slow-down as RESP logins.
    async fn login(&mut self, user: &[u8], pass: &[u8]) -> bool {
        let login = String::from_utf8_lossy(user).into_owned();
        let (cache_name, user_name) = match login.split_once('.') {
            Some((c, u)) => (c.to_string(), Some(u.to_string())),
            None => (login.clone(), None),
        };
        let registry = &self.shared.registry;
        let ip = self.session.peer.ip();
        let guard_key = if registry.get(&cache_name).is_some() {
            cache_name.clone()
        } else {
            String::new()
        };
        let wait = self.shared.auth_guard.delay(&guard_key, ip, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let cache = registry
            .get(&cache_name)
            .filter(|c| c.engine == Engine::Memcached && !c.is_deleted());
        let found = cache.clone().and_then(|cache| match &user_name {
            Some(u) => {
                let user = cache.user(u)?;
                user.access()
                    .check_password(pass)
                    .then_some((cache, Some(user)))
            }
            None if cache.open || cache.check_token(pass) => Some((cache, None)),
            None => None,
        });
        let Some((cache, user)) = found else {
            self.shared
                .auth_guard
                .failed(&guard_key, ip, Instant::now());
            match &cache {
                Some(c) => {
                    c.usage.auth_failures.fetch_add(1, Ordering::Relaxed);
                    Stats::bump(&c.memcached.auth_cmds);
                    Stats::bump(&c.memcached.auth_errors);
                }
                None => GlobalCounters::bump(&registry.metrics.global.auth_failures),
            }
            let shown: String = login.chars().take(64).collect();
            tracing::warn!(login = %shown, peer = %self.session.peer, "memcached login refused");
            return false;
        };
        if !self
            .session
            .bind(cache.clone(), self.shared.max_clients_per_cache)
        {
            return false;
        }
        Stats::bump(&cache.memcached.auth_cmds);
        self.session.login(user);
        self.shared.auth_guard.succeeded(&guard_key, ip);
        true
    }

    /// Runs a data request's operations and writes memcached's reply;
    /// returns the work counted by the handlers.
    async fn execute(&mut self, cache: &Arc<Cache>, req: Request, opts: &ExecOptions) -> u64 {
        let stats = &cache.memcached;
        let mut work = 0;
        let mut run = async |spec: &'static CommandSpec, args: Vec<Bytes>| {
            let slot = key_slot(&args[1]);
            let done = cache.pool.execute(spec, &args, slot, opts).await;
            work += done.work;
            done.reply
        };
        match req {
            Request::Get { keys, cas, touch } => {
                let op = GetOp {
                    value: true,
                    touch,
                    ..GetOp::default()
                };
                let name = if touch.is_some() { "mc_gat" } else { "mc_get" };
                for key in keys {
                    // Other connections run between the keys of a long get.
                    end_of_slice().await;
                    let reply = run(memcached_op(name), op.encode(name, key.clone())).await;
                    if touch.is_some() {
                        Stats::bump(&stats.cmd_touch);
                    }
                    Stats::bump(&stats.cmd_get);
                    match Found::from_reply(&reply) {
                        Some(f) => {
                            Stats::bump(&stats.get_hits);
                            let data = f.data.unwrap_or_default();
                            let w = &mut self.wbuf;
                            w.extend_from_slice(b"VALUE ");
                            w.extend_from_slice(&key);
                            put_num(w, u64::from(f.flags));
                            put_num(w, data.len() as u64);
                            if cas {
                                put_num(w, f.cas);
                            }
                            w.extend_from_slice(b"\r\n");
                            w.extend_from_slice(&data);
                            w.extend_from_slice(b"\r\n");
                        }
                        None => Stats::bump(&stats.get_misses),
                    }
                }
                self.wbuf.extend_from_slice(b"END\r\n");
            }
            Request::Store {
                mode,
                key,
                flags,
                exptime,
                cas,
                data,
                noreply,
            } => {
                Stats::bump(&stats.cmd_set);
                let op = StoreOp {
                    mode,
                    flags,
                    exptime,
                    compare: cas,
                    explicit: 0,
                    invalidate: false,
                    vivify: None,
                };
                let reply = run(memcached_op("mc_store"), op.encode(key, data)).await;
                let line = store_outcome(&reply, stats, mode);
                if !noreply {
                    self.line(line);
                }
            }
            Request::Touch {
                key,
                exptime,
                noreply,
            } => {
                Stats::bump(&stats.cmd_touch);
                let op = GetOp {
                    touch: Some(exptime),
                    ..GetOp::default()
                };
                let reply = run(memcached_op("mc_gat"), op.encode("mc_gat", key)).await;
                let line = if Found::from_reply(&reply).is_some() {
                    Stats::bump(&stats.touch_hits);
                    "TOUCHED"
                } else {
                    Stats::bump(&stats.touch_misses);
                    items::NOT_FOUND
                };
                if !noreply {
                    self.line(line);
                }
            }
            Request::Arith {
                key,
                incr,
                delta,
                noreply,
            } => {
                let op = ArithOp {
                    incr,
                    delta,
                    ..ArithOp::default()
                };
                let reply = run(memcached_op("mc_arith"), op.encode(key)).await;
                let (hits, misses) = if incr {
                    (&stats.incr_hits, &stats.incr_misses)
                } else {
                    (&stats.decr_hits, &stats.decr_misses)
                };
                let text = match &reply {
                    Reply::Error(e) if items::is_oom(&reply) => {
                        let _ = e;
                        ARITH_OUT_OF_MEMORY.to_string()
                    }
                    Reply::Error(e) => e.to_string(),
                    Reply::Array(parts) => match (&parts[0], &parts[1]) {
                        (Reply::Status(s), Reply::Bulk(v)) if s == DONE => {
                            Stats::bump(hits);
                            String::from_utf8_lossy(v).into_owned()
                        }
                        _ => {
                            Stats::bump(misses);
                            items::NOT_FOUND.to_string()
                        }
                    },
                    _ => items::NOT_FOUND.to_string(),
                };
                if !noreply {
                    self.line(&text);
                }
            }
            Request::Delete { key, noreply } => {
                let reply = run(memcached_op("mc_delete"), DeleteOp::default().encode(key)).await;
                let line = match &reply {
                    Reply::Status(s) if s == items::DELETED => {
                        Stats::bump(&stats.delete_hits);
                        items::DELETED
                    }
                    _ => {
                        Stats::bump(&stats.delete_misses);
                        items::NOT_FOUND
                    }
                };
                if !noreply {
                    self.line(line);
                }
            }
            Request::FlushAll { delay, noreply } => {
                Stats::bump(&stats.cmd_flush);
                self.flush_all(cache, delay).await;
                if !noreply {
                    self.line("OK");
                }
            }
            Request::Stats { args } => {
                let text = stats_text(self.shared, cache, &args);
                self.wbuf.extend_from_slice(text.as_bytes());
            }
            Request::Meta(meta) => {
                Stats::bump(&stats.cmd_meta);
                work += self.meta(cache, meta, opts).await;
            }
            _ => {}
        }
        work
    }

    /// `flush_all [delay]`: every item goes now, or after `delay` seconds
    /// (memcached's exptime reading: up to 30 days relative, else a Unix
    /// time).
    async fn flush_all(&mut self, cache: &Arc<Cache>, delay: i64) {
        if delay <= 0 {
            cache.pool.next_cas();
            let _ = cache
                .pool
                .flush(self.shared.busy_threshold, self.session.id)
                .await;
            return;
        }
        let now = now_ms();
        let at = items::deadline(delay, now);
        let wait = Duration::from_millis(at.saturating_sub(now));
        let cache = cache.clone();
        let busy = self.shared.busy_threshold;
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if !cache.is_deleted() {
                cache.pool.next_cas();
                let _ = cache.pool.flush(busy, 0).await;
            }
        });
    }

    /// A meta command (`mg ms md ma me`): runs it and writes its reply.
    async fn meta(&mut self, cache: &Arc<Cache>, m: Box<Meta>, opts: &ExecOptions) -> u64 {
        let f = &m.flags;
        let key_out = |w: &mut BytesMut, key: &[u8]| {
            w.extend_from_slice(b" k");
            if f.base64 {
                w.extend_from_slice(&proto::base64_encode(key));
                w.extend_from_slice(b" b");
            } else {
                w.extend_from_slice(key);
            }
        };
        // The opaque and key flags every meta reply carries back.
        let echo = |w: &mut BytesMut| {
            for t in &f.tokens {
                match t[0] {
                    b'O' => {
                        w.put_u8(b' ');
                        w.extend_from_slice(t);
                    }
                    b'k' => key_out(w, &m.key),
                    _ => {}
                }
            }
        };
        let slot = key_slot(&m.key);
        match m.cmd {
            b'g' | b'e' => {
                let touches = f.ttl.is_some() || f.vivify.is_some();
                let name = if touches { "mc_gat" } else { "mc_get" };
                let op = GetOp {
                    value: f.value,
                    touch: f.ttl,
                    vivify: f.vivify,
                    recache: f.recache,
                    no_bump: f.no_update || m.cmd == b'e',
                    vivify_last: vivify_last(f),
                };
                let args = op.encode(name, m.key.clone());
                let done = cache
                    .pool
                    .execute(memcached_op(name), &args, slot, opts)
                    .await;
                let found = Found::from_reply(&done.reply);
                let w = &mut self.wbuf;
                if m.cmd == b'e' {
                    match found {
                        Some(x) => {
                            w.extend_from_slice(b"ME ");
                            if f.base64 {
                                w.extend_from_slice(&proto::base64_encode(&m.key));
                            } else {
                                w.extend_from_slice(&m.key);
                            }
                            let exp = if x.ttl < 0 { -1 } else { -x.ttl };
                            let size = 48 + m.key.len() + 1 + x.size + 2 + 8;
                            let fetch = if x.fetched { "yes" } else { "no" };
                            w.extend_from_slice(
                                format!(
                                    " exp={exp} la={} cas={} fetch={fetch} cls=1 size={size}\r\n",
                                    x.last_access, x.cas
                                )
                                .as_bytes(),
                            );
                        }
                        None => w.extend_from_slice(b"EN\r\n"),
                    }
                    return done.work;
                }
                let Some(x) = found else {
                    if !f.quiet {
                        w.extend_from_slice(b"EN");
                        echo(w);
                        w.extend_from_slice(b"\r\n");
                    }
                    return done.work;
                };
                // `C` with `v` (1.6.27+): the value only if the item changed.
                let value = f.value && f.compare != Some(x.cas);
                if value {
                    w.extend_from_slice(b"VA ");
                    w.extend_from_slice(x.size.to_string().as_bytes());
                } else {
                    w.extend_from_slice(b"HD");
                }
                // `t` shows the TTL as of its place among `T` and `N` (the
                // flags act in order, as memcached's loop over them).
                let mut ttl_now = x.ttl_before;
                for t in &f.tokens {
                    match t[0] {
                        b'T' => ttl_now = x.ttl_touch,
                        b'N' if x.created => ttl_now = x.ttl_vivify,
                        b's' => put_flag(w, b's', &x.size.to_string()),
                        b't' => put_flag(w, b't', &ttl_now.to_string()),
                        b'c' => put_flag(w, b'c', &x.cas.to_string()),
                        b'f' => put_flag(w, b'f', &x.flags.to_string()),
                        b'l' => put_flag(w, b'l', &x.last_access.to_string()),
                        b'h' => put_flag(w, b'h', if x.fetched { "1" } else { "0" }),
                        b'O' => {
                            w.put_u8(b' ');
                            w.extend_from_slice(t);
                        }
                        b'k' => key_out(w, &m.key),
                        _ => {}
                    }
                }
                if x.token_sent {
                    w.extend_from_slice(b" Z");
                }
                if x.stale {
                    w.extend_from_slice(b" X");
                }
                if x.won {
                    w.extend_from_slice(b" W");
                }
                w.extend_from_slice(b"\r\n");
                if let Some(data) = x.data.as_ref().filter(|_| value) {
                    w.extend_from_slice(data);
                    w.extend_from_slice(b"\r\n");
                }
                done.work
            }
            b's' => {
                let mut mode = match f.mode {
                    Some(b'E') => Mode::Add,
                    Some(b'A') => Mode::Append,
                    Some(b'P') => Mode::Prepend,
                    Some(b'R') => Mode::Replace,
                    _ => Mode::Set,
                };
                if f.compare.is_some() && matches!(mode, Mode::Set | Mode::Replace) {
                    mode = Mode::Cas;
                }
                let op = StoreOp {
                    mode,
                    flags: f.client_flags,
                    exptime: f.ttl.unwrap_or(0),
                    compare: f.compare.unwrap_or(0),
                    explicit: f.explicit.unwrap_or(0),
                    invalidate: f.invalidate && mode == Mode::Cas,
                    vivify: matches!(mode, Mode::Append | Mode::Prepend)
                        .then_some(f.vivify)
                        .flatten(),
                };
                Stats::bump(&cache.memcached.cmd_set);
                let args = op.encode(m.key.clone(), m.data.clone());
                let done = cache
                    .pool
                    .execute(memcached_op("mc_store"), &args, slot, opts)
                    .await;
                let w = &mut self.wbuf;
                if items::is_oom(&done.reply) {
                    w.extend_from_slice(OUT_OF_MEMORY.as_bytes());
                    w.extend_from_slice(b"\r\n");
                    return done.work;
                }
                let word = store_outcome(&done.reply, &cache.memcached, mode);
                let int = |i: usize| match &done.reply {
                    Reply::Array(p) => match p.get(i) {
                        Some(Reply::Int(c)) => *c,
                        _ => 0,
                    },
                    _ => 0,
                };
                let (cas, size) = (int(1), int(2));
                let code = match word {
                    items::STORED => "HD",
                    items::NOT_STORED => "NS",
                    items::EXISTS => "EX",
                    _ => "NF",
                };
                if code == "HD" && f.quiet {
                    return done.work;
                }
                w.extend_from_slice(code.as_bytes());
                for t in &f.tokens {
                    match t[0] {
                        b'O' => {
                            w.put_u8(b' ');
                            w.extend_from_slice(t);
                        }
                        b'k' => key_out(w, &m.key),
                        b'c' => put_flag(w, b'c', &cas.to_string()),
                        // The stored item's size (1.6.27+; HD only).
                        b's' if code == "HD" => put_flag(w, b's', &size.to_string()),
                        _ => {}
                    }
                }
                w.extend_from_slice(b"\r\n");
                done.work
            }
            b'd' => {
                let op = DeleteOp {
                    compare: f.compare.unwrap_or(0),
                    invalidate: f.invalidate,
                    ttl: f.ttl,
                    explicit: f.explicit.unwrap_or(0),
                    remove_value: f.remove_value,
                    flags: f.client_flags,
                };
                let done = cache
                    .pool
                    .execute(
                        memcached_op("mc_delete"),
                        &op.encode(m.key.clone()),
                        slot,
                        opts,
                    )
                    .await;
                let code = match &done.reply {
                    Reply::Status(s) if s == items::DELETED => "HD",
                    Reply::Status(s) if s == items::EXISTS => "EX",
                    _ => "NF",
                };
                if code == "HD" && f.quiet {
                    return done.work;
                }
                let w = &mut self.wbuf;
                w.extend_from_slice(code.as_bytes());
                echo(w);
                w.extend_from_slice(b"\r\n");
                done.work
            }
            b'a' => {
                let has_delta = f.tokens.iter().any(|t| t[0] == b'D');
                let op = ArithOp {
                    incr: !matches!(f.mode, Some(b'D' | b'-')),
                    delta: if has_delta { f.delta } else { 1 },
                    compare: f.compare.unwrap_or(0),
                    vivify: f.vivify,
                    initial: f.initial,
                    touch: f.ttl,
                    explicit: f.explicit.unwrap_or(0),
                    vivify_last: vivify_last(f),
                };
                let done = cache
                    .pool
                    .execute(
                        memcached_op("mc_arith"),
                        &op.encode(m.key.clone()),
                        slot,
                        opts,
                    )
                    .await;
                let w = &mut self.wbuf;
                let parts = match &done.reply {
                    Reply::Error(_) if items::is_oom(&done.reply) => {
                        w.extend_from_slice(ARITH_OUT_OF_MEMORY.as_bytes());
                        w.extend_from_slice(b"\r\n");
                        return done.work;
                    }
                    Reply::Error(e) => {
                        w.extend_from_slice(e.as_bytes());
                        w.extend_from_slice(b"\r\n");
                        return done.work;
                    }
                    Reply::Array(p) => p,
                    _ => return done.work,
                };
                let status = match &parts[0] {
                    Reply::Status(s) => s.to_string(),
                    _ => String::new(),
                };
                if status != DONE {
                    w.extend_from_slice(if status == items::EXISTS {
                        b"EX"
                    } else {
                        b"NF"
                    });
                    echo(w);
                    w.extend_from_slice(b"\r\n");
                    return done.work;
                }
                if f.quiet {
                    return done.work;
                }
                let value = match &parts[1] {
                    Reply::Bulk(v) => v.clone(),
                    _ => Bytes::new(),
                };
                let int = |i: usize| match parts.get(i) {
                    Some(Reply::Int(n)) => *n,
                    _ => 0,
                };
                if f.value {
                    w.extend_from_slice(b"VA ");
                    w.extend_from_slice(value.len().to_string().as_bytes());
                } else {
                    w.extend_from_slice(b"HD");
                }
                // `t` as of its place among `T` and `N` (see mg).
                let mut ttl_now = int(4);
                for t in &f.tokens {
                    match t[0] {
                        b'T' => ttl_now = int(6),
                        b'N' if int(5) == 1 => ttl_now = int(7),
                        b'c' => put_flag(w, b'c', &int(2).to_string()),
                        b't' => put_flag(w, b't', &ttl_now.to_string()),
                        b'O' => {
                            w.put_u8(b' ');
                            w.extend_from_slice(t);
                        }
                        b'k' => key_out(w, &m.key),
                        _ => {}
                    }
                }
                w.extend_from_slice(b"\r\n");
                if f.value {
                    w.extend_from_slice(&value);
                    w.extend_from_slice(b"\r\n");
                }
                done.work
            }
            _ => 0,
        }
    }
}

/// Whether `N` comes after `T` among a meta command's flags (memcached
/// applies them in order: the later one sets a created item's TTL).
fn vivify_last(f: &proto::MetaFlags) -> bool {
    let at = |c: u8| f.tokens.iter().position(|t| t[0] == c);
    matches!((at(b'N'), at(b'T')), (Some(n), Some(t)) if n > t)
}

/// The row a request is admitted, made room for and metered as.
fn primary_spec(req: &Request) -> &'static CommandSpec {
    memcached_op(match req {
        Request::Get { touch: Some(_), .. } | Request::Touch { .. } => "mc_gat",
        Request::Get { .. } => "mc_get",
        Request::Store { .. } => "mc_store",
        Request::Arith { .. } => "mc_arith",
        Request::Delete { .. } => "mc_delete",
        Request::FlushAll { .. } => "mc_flush_all",
        Request::Meta(m) => match m.cmd {
            b's' => "mc_store",
            b'd' => "mc_delete",
            b'a' => "mc_arith",
            b'g' if m.flags.ttl.is_some() || m.flags.vivify.is_some() => "mc_gat",
            _ => "mc_get",
        },
        _ => "mc_stats",
    })
}

/// The text word of a store's outcome, counting CAS outcomes.
fn store_outcome(reply: &Reply, stats: &Stats, mode: Mode) -> &'static str {
    if items::is_oom(reply) {
        Stats::bump(&stats.store_no_memory);
        return OUT_OF_MEMORY;
    }
    let word = match reply {
        Reply::Array(p) => match p.first() {
            Some(Reply::Status(s)) => match &s[..] {
                items::STORED => items::STORED,
                items::NOT_STORED => items::NOT_STORED,
                items::EXISTS => items::EXISTS,
                _ => items::NOT_FOUND,
            },
            _ => items::NOT_FOUND,
        },
        _ => items::NOT_FOUND,
    };
    if mode == Mode::Cas {
        Stats::bump(match word {
            items::STORED => &stats.cas_hits,
            items::EXISTS => &stats.cas_badval,
            _ => &stats.cas_misses,
        });
    }
    if word == items::STORED {
        Stats::bump(&stats.total_items);
    }
    word
}

fn put_num(w: &mut BytesMut, n: u64) {
    w.put_u8(b' ');
    let mut buf = itoa::Buffer::new();
    w.extend_from_slice(buf.format(n).as_bytes());
}

fn put_flag(w: &mut BytesMut, flag: u8, value: &str) {
    w.put_u8(b' ');
    w.put_u8(flag);
    w.extend_from_slice(value.as_bytes());
}

async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// `stats [items|slabs|settings]`: this cache's figures under memcached's
/// names (what clients and exporters read); `END`-terminated.
fn stats_text(shared: &ProxyShared, cache: &Cache, args: &[Bytes]) -> String {
    let totals = cache.pool.totals();
    let limit = cache.memory_limit();
    let item_max = cache.settings.read().item_size_max;
    let s = &cache.memcached;
    let g = Stats::get;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let uptime = shared.started.elapsed().as_secs();
    let mut out = String::new();
    let mut stat = |name: &str, value: String| {
        out.push_str("STAT ");
        out.push_str(name);
        out.push(' ');
        out.push_str(&value);
        out.push_str("\r\n");
    };
    let sub = args
        .first()
        .map(|a| String::from_utf8_lossy(a).into_owned());
    match sub.as_deref() {
        None => {
            let u = &cache.usage;
            stat("pid", std::process::id().to_string());
            stat("uptime", uptime.to_string());
            stat("time", now.to_string());
            stat("version", VERSION["VERSION ".len()..].to_string());
            stat("libevent", "stratus".into());
            stat("pointer_size", "64".into());
            stat("rusage_user", "0.000000".into());
            stat("rusage_system", "0.000000".into());
            stat("max_connections", shared.max_clients_per_cache.to_string());
            stat(
                "curr_connections",
                u.connected.load(Ordering::Relaxed).to_string(),
            );
            stat(
                "total_connections",
                u.connections_received.load(Ordering::Relaxed).to_string(),
            );
            stat("rejected_connections", "0".into());
            stat(
                "connection_structures",
                u.connected.load(Ordering::Relaxed).to_string(),
            );
            stat("cmd_get", g(&s.cmd_get).to_string());
            stat("cmd_set", g(&s.cmd_set).to_string());
            stat("cmd_flush", g(&s.cmd_flush).to_string());
            stat("cmd_touch", g(&s.cmd_touch).to_string());
            stat("cmd_meta", g(&s.cmd_meta).to_string());
            stat("get_hits", g(&s.get_hits).to_string());
            stat("get_misses", g(&s.get_misses).to_string());
            stat("get_expired", "0".into());
            stat("get_flushed", "0".into());
            stat("delete_misses", g(&s.delete_misses).to_string());
            stat("delete_hits", g(&s.delete_hits).to_string());
            stat("incr_misses", g(&s.incr_misses).to_string());
            stat("incr_hits", g(&s.incr_hits).to_string());
            stat("decr_misses", g(&s.decr_misses).to_string());
            stat("decr_hits", g(&s.decr_hits).to_string());
            stat("cas_misses", g(&s.cas_misses).to_string());
            stat("cas_hits", g(&s.cas_hits).to_string());
            stat("cas_badval", g(&s.cas_badval).to_string());
            stat("touch_hits", g(&s.touch_hits).to_string());
            stat("touch_misses", g(&s.touch_misses).to_string());
            stat("store_too_large", g(&s.store_too_large).to_string());
            stat("store_no_memory", g(&s.store_no_memory).to_string());
            stat("auth_cmds", g(&s.auth_cmds).to_string());
            stat("auth_errors", g(&s.auth_errors).to_string());
            stat("bytes_read", u.net_in.load(Ordering::Relaxed).to_string());
            stat(
                "bytes_written",
                u.net_out.load(Ordering::Relaxed).to_string(),
            );
            stat("limit_maxbytes", limit.to_string());
            stat("accepting_conns", "1".into());
            stat(
                "threads",
                crate::pool::workers::per_cache_permits().to_string(),
            );
            stat("conn_yields", "0".into());
            stat("bytes", totals.used_bytes.to_string());
            stat("curr_items", totals.keys.to_string());
            stat("total_items", g(&s.total_items).to_string());
            stat("expired_unfetched", "0".into());
            stat("evicted_unfetched", "0".into());
            stat("evictions", totals.events.evicted.to_string());
            stat("reclaimed", totals.events.expired.to_string());
        }
        Some("settings") => {
            stat("maxbytes", limit.to_string());
            stat("maxconns", shared.max_clients_per_cache.to_string());
            stat("tcpport", shared.memcached_port.to_string());
            stat("evictions", "on".into());
            stat("cas_enabled", "yes".into());
            stat("item_size_max", item_max.to_string());
            stat("flush_enabled", "yes".into());
            stat(
                "eviction_policy",
                cache.server.config.eviction().name().to_string(),
            );
        }
        Some("items") => {
            if totals.keys > 0 {
                stat("items:1:number", totals.keys.to_string());
                stat("items:1:age", "0".into());
                stat("items:1:evicted", totals.events.evicted.to_string());
                stat("items:1:outofmemory", g(&s.store_no_memory).to_string());
                stat("items:1:reclaimed", totals.events.expired.to_string());
            }
        }
        Some("slabs") => {
            if totals.keys > 0 {
                stat("1:chunk_size", item_max.to_string());
                stat("1:used_chunks", totals.keys.to_string());
                stat("1:get_hits", g(&s.get_hits).to_string());
                stat("1:cmd_set", g(&s.cmd_set).to_string());
            }
            stat("active_slabs", u64::from(totals.keys > 0).to_string());
            stat("total_malloced", totals.used_bytes.to_string());
        }
        Some("reset") => {
            s.reset();
            return "RESET\r\n".into();
        }
        Some("detail") => {
            return match args.get(1).map(|a| &a[..]) {
                Some(b"on" | b"off") => "OK\r\n".into(),
                Some(b"dump") => "END\r\n".into(),
                _ => "CLIENT_ERROR usage: stats detail on|off|dump\r\n".into(),
            };
        }
        Some(_) => return "ERROR\r\n".into(),
    }
    out.push_str("END\r\n");
    out
}
