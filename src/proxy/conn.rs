//! One client connection: the connection loop and the request path.
//!
//! The loop, per wake-up:
//! 1. decode every whole request in the read buffer (up to 16 ahead, their
//!    keys prefetched together) and run them, appending replies to the
//!    write buffer: a run of plain data commands that one partition owns as
//!    one batch (`run_batch`: each admitted without waiting, then one hold
//!    of the partition's lock, each request still answered, billed and
//!    counted alone), any other request through [`Connection::handle`] —
//!    while
//!    the replies waiting for the client stay under the output-buffer limit
//!    (past it, the client must read before more of its requests run, and
//!    nothing more is read from it: backpressure, not buffering);
//! 2. write what the socket takes now (one write for the whole batch);
//! 3. grow the read buffer if needed — with the bytes that arrived, never on
//!    a header's promise, charged to the connection's, its cache's and the
//!    server's client memory before it is allocated;
//! 4. wait for more input, for the socket to drain, for the authentication
//!    deadline (unauthenticated connections), or for shutdown.
//!
//! A client above the soft output limit that reads nothing for the soft
//! limit's time is disconnected; one large reply (a 500 MiB GET) to a client
//! that reads is fine. Slow or half-open peers only ever block their own
//! task; TCP keepalive reaps dead peers.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;

use bytes::{Buf, BytesMut};
use tokio_util::sync::CancellationToken;

use super::conn_cmds;
use super::memory::{
    ClientMemory, KEEP_BUFFER, READ_CHUNK, READ_MAX, grow, grown_capacity, make_room,
    output_stalled, release, send_ready,
};
use super::session::{Admission, Connection, Queueing, ReplyMode, Session};
use super::shared::ProxyShared;
use super::transaction;
use super::turns::{self, end_of_round, end_of_slice_at, in_turns, slice_over, yield_turn};
use crate::acl;
use crate::attention;
use crate::cmd::{self, CommandSpec, ConnOp, Exec, flags};
use crate::control::Cache;
use crate::metering::usage::{Access, Tally};
use crate::metering::{Rejection, ecpu_milli, transfer_milli, work_milli};
use crate::metrics::GlobalCounters;
use crate::partition::{ClusterMode, key_slot};
use crate::pool::{ExecOptions, Executed, NotRun, Unserved};
use crate::resp::codec::Args;
use crate::resp::{Reply, Request, reply};
use crate::tls::Transport;

/// Commands Redis runs while a script is busy (its `allow-busy` flag).
const ALLOWED_WHILE_BUSY: &[&str] = &[
    "auth", "discard", "hello", "multi", "quit", "reset", "shutdown", "unwatch", "watch",
];

/// Requests decoded and prefetched together (see `decode_ahead`).
const AHEAD: usize = 16;
/// Reply bytes after which a pipeline's batch stops (see `run_batch`):
/// copying them under the partition's lock takes some 25 µs, half a turn.
const BATCH_REPLY_BYTES: usize = 256 * 1024;
/// A request decoded ahead, with its command (`None`: unknown), or the
/// protocol error that ends the connection after the requests before it.
type Decoded = Result<(Request, Option<&'static CommandSpec>), crate::resp::ProtocolError>;
/// Time allowed to flush the last replies when closing.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

use crate::partition::now_ms;

/// Runs one client connection to its end. `preauth` is its place among
/// unauthenticated sockets (released when it binds to a cache).
pub async fn run(
    mut stream: Transport,
    peer: SocketAddr,
    local: SocketAddr,
    shared: Arc<ProxyShared>,
    shutdown: CancellationToken,
    preauth: Option<super::shared::PreAuth>,
) {
    let mut conn = Connection {
        session: Session::new(shared.next_client_id(), peer, local),
        shared: &shared,
        wbuf: BytesMut::new(),
        shutdown: shutdown.clone(),
        memory: ClientMemory::default(),
        prepaid: 0,
        billed_early: 0,
        delivered: 0,
        admission: Admission::Undecided,
        tally: Tally::default(),
        last_command: None,
        last_spec: None,
    };
    conn.session.preauth = preauth;
    if let Some(cache) = shared.default_cache()
        && !conn.session.join_default(cache, &shared)
    {
        let _ = stream.try_write(format!("-{}\r\n", reply::MAX_CLIENTS).as_bytes());
        return;
    }
    tracing::debug!(client = conn.session.id, %peer, "connection opened");
    // Told of shutdown through its attention (a shutdown that began
    // before it joined is seen here).
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
        conn.serve(stream, &shutdown, &mut rbuf),
    )
    .await;
    conn.flush_usage();
    release(rbuf);
    release(std::mem::take(&mut conn.wbuf));
    let _ = conn.account(0);
    tracing::debug!(client = conn.session.id, %peer, reason, "connection closed");
}

impl Connection<'_> {
    async fn serve(
        &mut self,
        mut stream: Transport,
        shutdown: &CancellationToken,
        rbuf: &mut BytesMut,
    ) -> &'static str {
        // When the bytes being decoded arrived: admission waits count from here.
        let mut arrived = Instant::now();
        let mut clock = arrived;
        // When replies above the soft limit, waiting for a client that reads
        // nothing, end the connection.
        let mut stall_deadline: Option<tokio::time::Instant> = None;
        // (Made once: a timer built per wait costs every request.)
        let auth_deadline = tokio::time::sleep(self.shared.auth_timeout);
        tokio::pin!(auth_deadline);
        let attention = self.session.handle.attention.clone();
        // Fires at most once per BUFFER_CHECK while requests come, and once
        // more when an idle connection's buffer is due to go; reset only
        // when it fires, so requests pay no timer work (and 10,000 idle
        // sockets wake twice each, not every BUFFER_CHECK).
        let idle_timer = tokio::time::sleep(BUFFER_CHECK);
        tokio::pin!(idle_timer);
        // The read buffer's allocation (`BytesMut::capacity` shrinks as
        // requests are consumed from its front), what CLIENT LIST shows of
        // it, and the most it held since the idle timer last fired.
        let mut allocated = rbuf.capacity();
        // Requests decoded but not yet run (see `decode_ahead`).
        let mut ahead = VecDeque::with_capacity(AHEAD);
        let mut shown = 0;
        let mut peak = 0;
        loop {
            // What CLIENT LIST shows of the read buffer is current before
            // any reply to the bytes just read goes out.
            if allocated != shown {
                shown = allocated;
                self.session.handle.view.lock().read_buffer = shown as u64;
            }
            // 1. Run every whole request buffered, while the replies waiting
            //    for the client stay under the output limit (past it, the
            //    client must read before more of its requests run).
            let mut drained = false;
            let mut answered = 0;
            while !self.session.closing && self.wbuf.len() < self.shared.output_buffer_limit {
                if ahead.is_empty() {
                    self.decode_ahead(rbuf, &mut ahead);
                }
                // (Each request leaves `ahead` as it is answered.)
                let waiting = ahead.len();
                // One clock reading per request or batch: its end is the
                // next one's start.
                let batch = self.run_batch(&mut ahead, clock).await;
                let ran = match batch {
                    Some(done) => Ok(Some(done)),
                    None => match ahead.pop_front().transpose() {
                        Ok(Some((req, spec))) => {
                            Ok(Some(self.handle(req, spec, arrived, clock, &stream).await))
                        }
                        Ok(None) => Ok(None),
                        Err(e) => Err(e),
                    },
                };
                match ran {
                    Ok(Some(done)) => {
                        answered += waiting - ahead.len();
                        clock = done;
                        if slice_over(clock) {
                            // The replies ready go out before the other
                            // connections' turns, not after them.
                            self.flush_usage();
                            send_ready(&mut stream, &mut self.wbuf);
                            clock = yield_turn().await;
                        }
                    }
                    Ok(None) => {
                        drained = true;
                        break;
                    }
                    Err(e) => {
                        GlobalCounters::bump(&self.shared.registry.metrics.global.protocol_errors);
                        Reply::err_owned(e.reply_text())
                            .encode(self.session.protocol, &mut self.wbuf);
                        self.session.closing = true;
                    }
                }
            }
            // Messages for this subscriber join the output (a subscriber
            // over its Pub/Sub limits is disconnected).
            if self.drain_mailbox().is_err() {
                return "pubsub output buffer limit";
            }
            // 2. Write what the socket takes now (the usage of the requests
            //    answered counted first).
            if answered > 0 && !self.wbuf.is_empty() {
                end_of_round(answered).await;
            }
            self.flush_usage();
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
                return "closed by command or protocol error";
            }
            if let Some(subs) = &self.session.pubsub {
                subs.mailbox.set_pending(self.wbuf.len());
            }
            // A client above the soft output limit must make progress.
            if output_stalled(self.shared, &mut stall_deadline, pending, self.wbuf.len()) {
                tracing::warn!(
                    client = self.session.id,
                    pending = self.wbuf.len(),
                    "output buffer soft limit: client reads nothing; closing"
                );
                return "output buffer limit";
            }
            if self.wbuf.is_empty() && self.wbuf.capacity() > KEEP_BUFFER {
                release(std::mem::replace(
                    &mut self.wbuf,
                    BytesMut::with_capacity(READ_CHUNK),
                ));
            }
            // (Requests decoded ahead still hold the buffer's memory: it
            // stays charged until they have run.)
            if rbuf.is_empty() && ahead.is_empty() && rbuf.capacity() > KEEP_BUFFER {
                release(std::mem::replace(rbuf, BytesMut::with_capacity(READ_CHUNK)));
                allocated = READ_CHUNK;
            }
            // Room to read into, grown with what has arrived (never on a
            // header's promise) and charged before it is allocated. An idle
            // connection holds none until its next bytes come.
            if let Some(grown) = grown_capacity(rbuf) {
                if let Err(why) = self.account(grown as u64 + self.queued_memory()) {
                    let _ = stream.try_write(format!("-{why}\r\n").as_bytes());
                    return "client memory limit";
                }
                grow(rbuf, grown).await;
                allocated = rbuf.capacity();
            }
            // Requests decoded ahead and not yet run hold their bytes too.
            let ahead_bytes: usize = ahead.iter().flatten().map(|(r, _)| r.wire_len).sum();
            self.account((rbuf.capacity() + ahead_bytes) as u64 + self.queued_memory())
                .ok();
            // A big request is admitted as its bytes arrive: a cache over its
            // ECPU/s limit uploads no faster than the limit allows.
            if drained && !self.session.closing && !self.prepay(rbuf, shutdown).await {
                return "server shutdown";
            }
            let output_full = self.wbuf.len() >= self.shared.output_buffer_limit;
            // Requests left buffered behind the output limit run as soon as
            // the client has taken the replies before them.
            if !drained && !output_full && !self.session.closing {
                clock = turns::now();
                continue;
            }
            let unauthenticated = self.session.cache.is_none();
            let mailbox = self.session.pubsub.as_ref().map(|s| s.mailbox.clone());
            let news = async {
                match &mailbox {
                    Some(m) => m.wait().await,
                    None => std::future::pending().await,
                }
            };
            // 3. Wait for input (unless replies wait for the client), drain,
            //    the authentication deadline, the user's disconnection, or
            //    shutdown.
            tokio::select! {
                biased;
                raised = attention.wait() => {
                    if raised & attention::SHUTDOWN != 0 {
                        let _ = tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, stream.write_all(&self.wbuf)).await;
                        return "server shutdown";
                    }
                    if raised & attention::REVOKED != 0 {
                        return "user disconnected";
                    }
                    return "killed by CLIENT KILL";
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
                        if let Err(why) = self.account(READ_CHUNK as u64 + self.queued_memory()) {
                            let _ = stream.try_write(format!("-{why}\r\n").as_bytes());
                            return "client memory limit";
                        }
                        rbuf.reserve(READ_CHUNK);
                        allocated = READ_CHUNK;
                    }
                    match stream.try_read_buf(rbuf, READ_MAX) {
                        Ok(0) => return "peer closed",
                        Ok(_) => {
                            peak = peak.max(rbuf.len());
                            arrived = Instant::now();
                            clock = end_of_slice_at(arrived).await;
                        }
                        // Woken with nothing to read (a new socket's first
                        // readiness can be): a buffer just taken goes back.
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            if fresh {
                                *rbuf = BytesMut::new();
                                allocated = 0;
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
                () = &mut idle_timer, if allocated > 0 => {
                    // Nothing buffered: an idle connection's read buffer
                    // goes, and a busy one's shrinks back to a chunk if its
                    // requests since the last check used under half of it
                    // (as Redis resizes query buffers).
                    if rbuf.is_empty() && arrived.elapsed() >= IDLE_BUFFER_AFTER {
                        release(std::mem::take(rbuf));
                        allocated = 0;
                    } else if rbuf.is_empty() && allocated > 2 * READ_CHUNK && peak < allocated / 2 {
                        release(std::mem::replace(rbuf, BytesMut::with_capacity(READ_CHUNK)));
                        allocated = READ_CHUNK;
                    }
                    // Nothing read since the last check: come back when the
                    // buffer is due to go; else check again soon.
                    let now = tokio::time::Instant::now();
                    let next = if peak == 0 {
                        tokio::time::Instant::from_std(arrived) + IDLE_BUFFER_AFTER
                    } else {
                        now + BUFFER_CHECK
                    };
                    peak = 0;
                    idle_timer.as_mut().reset(next.max(now + BUFFER_CHECK));
                }
                () = sleep_until_some(stall_deadline), if stall_deadline.is_some() => {}
                () = news => {}
            }
        }
    }

    /// Decodes up to [`AHEAD`] whole requests from `rbuf` (stopping after a
    /// protocol error), then prefetches the keys they name
    /// ([`crate::pool::CachePool::prefetch`]): a pipeline's lookups wait
    /// for memory together, not one after another.
    fn decode_ahead(&mut self, rbuf: &mut BytesMut, ahead: &mut VecDeque<Decoded>) {
        while ahead.len() < AHEAD {
            match self.shared.decoder.decode(rbuf) {
                Ok(Some(req)) => {
                    let name = &req.args[0];
                    let spec = match self.last_spec {
                        Some(last) if name.eq_ignore_ascii_case(last.name.as_bytes()) => Some(last),
                        _ => {
                            let found = cmd::lookup(name);
                            self.last_spec = found.or(self.last_spec);
                            found
                        }
                    };
                    ahead.push_back(Ok((req, spec)));
                }
                Ok(None) => break,
                Err(e) => {
                    ahead.push_back(Err(e));
                    break;
                }
            }
        }
        if ahead.len() < 2 {
            return;
        }
        let Some(cache) = &self.session.cache else {
            return;
        };
        let mut keys: smallvec::SmallVec<[(u16, &[u8]); AHEAD]> = smallvec::SmallVec::new();
        for (req, spec) in ahead.iter().flatten() {
            if let Some(i) = spec.and_then(|s| s.key_positions(&req.args).next()) {
                let key = &req.args[i][..];
                keys.push((key_slot(key), key));
            }
        }
        cache.pool.prefetch(&keys);
    }

    /// Runs the plain data commands at the front of `ahead` that one
    /// partition of this process owns as one batch
    /// ([`crate::pool::CachePool::execute_run`]): each checked as
    /// [`Self::dispatch`] would and admitted by the cache's limiter without
    /// waiting, then run under one hold of the partition's lock, then each
    /// answered, billed and counted alone ([`Self::answer`]: its own time
    /// in the partition plus a share of the batch's). `None` (nothing
    /// taken) unless the first request is such a command.
    ///
    /// Plain: a keyed data command that is bounded, blocks for nothing, is
    /// no script, Pub/Sub or multi-key fan-out, and passes the checks that
    /// would refuse it; the connection is in no transaction, tracks
    /// nothing, subscribes to nothing, answers every reply, and its cache
    /// has no monitor, no pause, and room for the batch's bytes. The batch
    /// ends before a request the limiter refuses now (it takes the request
    /// path, owing what it was refused: [`Admission::Owed`]), and its
    /// partition stops it once its replies pass [`BATCH_REPLY_BYTES`] or
    /// the output-buffer limit (the requests not run go back, admitted:
    /// [`Admission::Paid`]). Everything else takes the request path one
    /// request at a time.
    async fn run_batch(
        &mut self,
        ahead: &mut VecDeque<Decoded>,
        started: Instant,
    ) -> Option<Instant> {
        // (At pipeline 1 every other call finds nothing decoded: the
        // loop's last look at a drained buffer.)
        if !matches!(ahead.front(), Some(Ok((_, Some(_)))))
            || matches!(self.admission, Admission::Owed(..))
        {
            return None;
        }
        let cache = self.session.cache.clone()?;
        if !self.batches(&cache) {
            return None;
        }
        let mode = cache.pool.cluster_mode();
        let limiter = cache.limiter();
        let max = cache.memory_limit();
        let mut room = match max {
            0 => u64::MAX,
            max => max.saturating_sub(cache.pool.used_bytes()),
        };
        let mut range = None;
        let mut checked: smallvec::SmallVec<[(u64, u64); AHEAD]> = smallvec::SmallVec::new();
        // What the partition runs, filled in place (a collected 400-byte
        // vector was copied out on every request).
        let mut cmds: smallvec::SmallVec<[(&'static CommandSpec, &[Bytes]); AHEAD]> =
            smallvec::SmallVec::new();
        let mut slots: smallvec::SmallVec<[u16; AHEAD]> = smallvec::SmallVec::new();
        for decoded in ahead.iter() {
            let Ok((req, Some(spec))) = decoded else {
                break;
            };
            if !self.plain(spec, &req.args) {
                break;
            }
            let Ok((slot, keys)) = check_keys(spec, &req.args, self.shared.max_key_len, mode)
            else {
                break;
            };
            let &mut (low, high) = match &mut range {
                Some(r) => r,
                None => range.insert(cache.pool.local_range(slot)?),
            };
            // Room: a cache at its memory limit evicts before each write.
            let bytes = req.wire_len as u64;
            if !(low..=high).contains(&slot) || bytes > room {
                break;
            }
            room -= bytes;
            let upfront = ecpu_milli(transfer_milli(bytes), 0);
            match self.admission.take_next() {
                Admission::Paid(..) => {}
                // Refused before (behind requests a batch left out): it
                // takes the request path, owing still.
                owed @ Admission::Owed(..) => {
                    self.admission = owed;
                    break;
                }
                Admission::Undecided => {
                    if let Some(Err((charge, wait))) =
                        limiter.as_ref().map(|l| l.try_admit(upfront))
                    {
                        self.admission = Admission::Owed(charge, wait);
                        break;
                    }
                }
            }
            checked.push((keys, upfront));
            cmds.push((*spec, &req.args[..]));
            slots.push(slot);
        }
        let n = checked.len();
        if n == 0 {
            return None;
        }
        // The batch runs from `ahead` as it is; each request leaves it as
        // it is answered, and those the reply budget left out stay there.
        let mut opts = self.exec_options(now_ms());
        opts.reply_budget = BATCH_REPLY_BYTES.min(
            self.shared
                .output_buffer_limit
                .saturating_sub(self.wbuf.len()),
        );
        let executed = cache.pool.execute_run(&cmds, &slots, &opts).await;
        drop(cmds);
        let finished = Instant::now();
        // Requests the reply budget left out stay, admitted already, before
        // those admitted earlier or the one refused, if any.
        let ran = executed.len().min(n);
        if ran < n {
            self.admission = match self.admission {
                Admission::Paid(left, then) => Admission::Paid(n - ran + left, then),
                Admission::Owed(charge, wait) => Admission::Paid(n - ran, Some((charge, wait))),
                Admission::Undecided => Admission::Paid(n - ran, None),
            };
        }
        // Each is counted its own time in the partition plus a share of
        // the rest (checks, routing, the lock, its reply); the last ends
        // at `finished`, so one alone needs no share.
        let share = if ran > 1 {
            let total = finished.saturating_duration_since(started);
            let inside: Duration = executed.iter().map(|e| e.took).sum();
            total.saturating_sub(inside) / ran as u32
        } else {
            Duration::ZERO
        };
        let mut at = started;
        for (i, done) in executed.into_iter().take(ran).enumerate() {
            // (The first `n` are such requests: checked above.)
            let Some(Ok((req, Some(spec)))) = ahead.pop_front() else {
                break;
            };
            let ((keys, upfront), slot) = (checked[i], slots[i]);
            let end = if i + 1 == ran {
                finished
            } else {
                at + done.took + share
            };
            let outcome = if done.unserved == Some(Unserved::Busy) {
                Outcome::rejected(done.reply, Rejection::Busy)
            } else {
                Outcome {
                    reply: done.reply,
                    billing: Billing::Metered {
                        spec,
                        slot,
                        keys,
                        elements: done.work,
                        upfront,
                        queued_wire: std::mem::take(&mut self.delivered),
                    },
                }
            };
            self.session.request_len = req.wire_len as u64;
            let out_before = self.wbuf.len();
            self.answer(
                &req,
                Some(spec),
                outcome,
                ReplyMode::On,
                out_before,
                at,
                end,
            );
            at = end;
        }
        Some(finished)
    }

    /// Whether this connection's requests may run in batches now (see
    /// [`Self::run_batch`]).
    fn batches(&self, cache: &Cache) -> bool {
        !cache.is_deleted()
            && self.session.multi.is_none()
            && self.session.reply_mode == ReplyMode::On
            && !self.session.tracking
            && !self.session.caching_given
            && !super::pubsub::subscribed(&self.session)
            && self.prepaid == 0
            && !cache.pool.monitors().active()
            && !cache.server.pausing()
    }

    /// Whether `args` of `spec` is a plain data command (see
    /// [`Self::run_batch`]) this connection's user may run.
    fn plain(&self, spec: &'static CommandSpec, args: &[Bytes]) -> bool {
        matches!(spec.exec, Exec::Data(_))
            && spec.names_keys()
            && spec.arity_ok(args.len())
            && !matches!(
                spec.family,
                cmd::Family::Scripting | cmd::Family::PubSub | cmd::Family::Memcached
            )
            && !spec.has(flags::BLOCKING)
            && !spec.has(flags::UNMETERED)
            && !spec.runs_on_workers()
            && (spec.fan_in().is_none() || spec.key_positions(args).nth(1).is_none())
            && self
                .session
                .user
                .as_ref()
                .is_none_or(|u| spec.has(flags::NO_AUTH) || u.access().check(spec, args).is_ok())
    }

    /// Bills the transfer of the buffered bytes of an unfinished request
    /// (`rbuf`) past [`PREPAY_ABOVE`] and charges the cache's limiter for
    /// them, then waits until the limit admits them (nothing more is read
    /// meanwhile). False on shutdown.
    async fn prepay(&mut self, rbuf: &[u8], shutdown: &CancellationToken) -> bool {
        let buffered = rbuf.len() as u64;
        if buffered == 0 {
            self.prepaid = 0;
        }
        let unpaid = buffered.saturating_sub(self.prepaid);
        if unpaid < PREPAY_ABOVE {
            return true;
        }
        let Some(cache) = self.session.cache.clone() else {
            return true;
        };
        // Billed now: a client that never finishes its request still pays
        // for the bytes it sent.
        let family = crate::resp::codec::command_name(rbuf)
            .and_then(cmd::lookup)
            .map_or(cmd::Family::Connection, |spec| spec.family);
        cache.usage.meter_transfer(family, transfer_milli(unpaid));
        self.prepaid = buffered;
        let Some(limiter) = cache.limiter() else {
            return true;
        };
        limiter.add_debt(0, transfer_milli(unpaid));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return false,
                r = limiter.admit(0, PREPAY_WAIT) => {
                    if r.is_ok() {
                        return true;
                    }
                }
            }
            tokio::time::sleep(PREPAY_WAIT).await;
        }
    }

    /// Moves the messages waiting in this subscriber's mailbox into the
    /// output, while the output holds less than [`MAILBOX_CHUNK`] (a slow
    /// reader's backlog stays in the mailbox, where its limits apply).
    /// `Err` once the subscriber went over its Pub/Sub limits.
    fn drain_mailbox(&mut self) -> Result<(), crate::pubsub::Dropped> {
        let Some(subs) = &self.session.pubsub else {
            return Ok(());
        };
        let room = self.wbuf.len() < MAILBOX_CHUNK;
        let news = subs.mailbox.take(self.wbuf.len(), room)?;
        if !news.is_empty() {
            self.wbuf.extend_from_slice(&news);
        }
        Ok(())
    }

    /// Runs one request and appends its reply; meters it on the bound cache.
    /// Runs one request that arrived at `arrived` and starts at `started`;
    /// returns when it finished.
    pub async fn handle(
        &mut self,
        req: Request,
        spec: Option<&'static CommandSpec>,
        arrived: Instant,
        started: Instant,
        stream: &Transport,
    ) -> Instant {
        let out_before = self.wbuf.len();
        let mode_before = self.session.reply_mode;
        self.session.request_len = req.wire_len as u64;
        // MONITOR: scripts show before the commands they call, an EXEC's
        // commands when it runs them (see `feed_monitors`).
        let monitored = self.monitor_before(&req.args);
        // A command that names no key may read the usage (INFO) or change
        // the cache it is counted against (AUTH): what is tallied goes
        // first.
        if !spec.is_some_and(|s| matches!(s.exec, Exec::Data(_)) && s.names_keys()) {
            self.flush_usage();
        }
        let Outcome { reply, billing } = self.dispatch(&req, spec, arrived, stream).await;
        // (AUTH may have just bound the connection to a monitored cache.)
        let monitored = monitored.or_else(|| {
            let cache = self.session.cache.as_ref()?;
            cache.pool.monitors().active().then(MonitorBefore::default)
        });
        if let Some(before) = monitored {
            self.feed_monitors(&req.args, before, &reply, &billing);
        }
        let finished = Instant::now();
        let outcome = Outcome { reply, billing };
        self.answer(
            &req,
            spec,
            outcome,
            mode_before,
            out_before,
            started,
            finished,
        );
        finished
    }

    /// After a request ran (from `started` to `finished`): its statistics,
    /// its reply (as the reply mode before it, `mode_before`, and after it
    /// say) appended to the output after the `out_before` bytes there, and
    /// its metering on the bound cache.
    #[allow(clippy::too_many_arguments)]
    fn answer(
        &mut self,
        req: &Request,
        spec: Option<&'static CommandSpec>,
        outcome: Outcome,
        mode_before: ReplyMode,
        out_before: usize,
        started: Instant,
        finished: Instant,
    ) {
        let Outcome { reply, billing } = outcome;
        let elapsed = finished.saturating_duration_since(started);
        // Every client of a cache has a mailbox once it has run a command:
        // it may be named as another client's tracking REDIRECT target.
        if self.session.pubsub.is_none()
            && !self.session.closing
            && let Some(cache) = self.session.cache.clone()
        {
            super::pubsub::ensure_mailbox(self, &cache);
        }
        // CLIENT REPLY OFF | SKIP: the reply is dropped.
        let mode_after = self.session.reply_mode;
        // (CLIENT REPLY ON right after SKIP is answered, as in Redis.)
        // Pub/Sub confirmations are pushed whatever the reply mode (Redis).
        let suppress = ((mode_before == ReplyMode::SkipThis && mode_after == ReplyMode::SkipThis)
            || matches!(mode_after, ReplyMode::Off | ReplyMode::Skip))
            && !is_push(&reply);
        if mode_after == ReplyMode::Skip {
            self.session.reply_mode = ReplyMode::SkipThis;
        } else if mode_after == ReplyMode::SkipThis {
            self.session.reply_mode = ReplyMode::On;
        }
        self.record_stats(req, spec, &reply, &billing, started, elapsed);
        // Messages this command caused for this very connection (a PUBLISH
        // to itself, a keyspace event of its write) go before its reply,
        // as in Redis.
        if self.drain_mailbox().is_err() {
            self.session.closing = true;
        }
        if !suppress {
            reply.encode(self.session.protocol, &mut self.wbuf);
        }
        if let Some(subs) = &self.session.pubsub {
            let after = subs.mailbox.take_deferred();
            self.wbuf.extend_from_slice(&after);
        }
        let reply_bytes = (self.wbuf.len() - out_before) as u64;
        let wire_in = req.wire_len as u64;
        let billed_early = std::mem::take(&mut self.billed_early);
        let Some(cache) = &self.session.cache else {
            return;
        };
        let usage = &cache.usage;
        self.tally.transfer(wire_in, reply_bytes);
        match billing {
            Billing::Metered {
                spec,
                slot,
                keys,
                elements,
                upfront,
                queued_wire,
            } => {
                // Keyspace events' fan-out is paid by the cache's next
                // request to finish (normally the write that caused them).
                let queued_wire = queued_wire + cache.pool.take_fanout();
                let ecpu = ecpu_milli(
                    transfer_milli(wire_in + reply_bytes + queued_wire),
                    work_milli(spec, keys, elements),
                );
                self.tally
                    .meter(spec.family, ecpu.saturating_sub(billed_early));
                cache.pool.record_load(slot, ecpu);
                cache.with_limiter(|l| l.add_debt(upfront, ecpu));
                let access = if spec.has(flags::WRITE) {
                    Access::Write
                } else {
                    Access::Read
                };
                self.tally.duration(access, elapsed);
            }
            Billing::Queued {
                spec,
                slot,
                keys,
                upfront,
            } => {
                // Queued in MULTI: its bytes and keys now, its walks at EXEC.
                let ecpu = ecpu_milli(
                    transfer_milli(wire_in + reply_bytes),
                    work_milli(spec, keys, 0),
                );
                self.tally
                    .meter_transfer(spec.family, ecpu.saturating_sub(billed_early));
                cache.pool.record_load(slot, ecpu);
                cache.with_limiter(|l| l.add_debt(upfront, ecpu));
            }
            Billing::Unmetered => {
                usage.unmetered.fetch_add(1, Ordering::Relaxed);
            }
            Billing::Rejected(why) => usage.reject(why),
            Billing::Nothing => {}
        }
    }

    /// What MONITOR needs before `args` runs, if the cache has monitors:
    /// a script is shown now (before the commands it calls, as Redis);
    /// an EXEC's queued commands are kept to be shown when it runs them.
    fn monitor_before(&self, args: &[Bytes]) -> Option<MonitorBefore> {
        let cache = self.session.cache.as_ref()?;
        if !cache.pool.monitors().active() {
            return None;
        }
        let spec = cmd::lookup(&args[0])?;
        let mut before = MonitorBefore::default();
        if spec.family == cmd::Family::Scripting
            && matches!(spec.exec, Exec::Data(_))
            && self.session.multi.is_none()
            && spec.arity_ok(args.len())
        {
            let who = self.session.peer.to_string();
            let bytes = cache.pool.monitors().feed(&who, args);
            if bytes > 0 {
                cache
                    .usage
                    .meter_transfer(spec.family, transfer_milli(bytes));
            }
            before.fed = true;
        }
        if spec.name == "exec"
            && let Some(tx) = &self.session.multi
            && !tx.failed
        {
            before.queued = tx.queued.iter().map(|(_, r)| r.args.to_vec()).collect();
        }
        Some(before)
    }

    /// Shows a command that ran to the cache's monitors (admin commands
    /// and refused ones are not shown, secrets are redacted, as Redis);
    /// the bytes delivered are billed to the cache as transfer.
    fn feed_monitors(
        &self,
        args: &[Bytes],
        before: MonitorBefore,
        reply: &Reply,
        billing: &Billing,
    ) {
        let Some(cache) = &self.session.cache else {
            return;
        };
        let Some(spec) = cmd::lookup(&args[0]) else {
            return;
        };
        if before.fed || !matches!(billing, Billing::Metered { .. } | Billing::Unmetered) {
            return;
        }
        let sub = args.get(1).map(|a| &a[..]);
        if cmd::table::acl_flags(spec, sub) & flags::ADMIN != 0 {
            return;
        }
        let who = self.session.peer.to_string();
        let monitors = cache.pool.monitors();
        let mut bytes = 0;
        // An EXEC that ran its queue (not aborted, no WATCH failure).
        if spec.name == "exec" && matches!(reply, Reply::Array(_)) {
            for queued in &before.queued {
                bytes += monitors.feed(&who, &super::pubsub::monitor_args(queued));
            }
        }
        bytes += monitors.feed(&who, &super::pubsub::monitor_args(args));
        if bytes > 0 {
            cache
                .usage
                .meter_transfer(spec.family, transfer_milli(bytes));
        }
    }

    /// Statistics of a command run or refused: INFO commandstats and
    /// errorstats, the slow log, latency events, and what CLIENT LIST shows.
    fn record_stats(
        &mut self,
        req: &Request,
        spec: Option<&'static CommandSpec>,
        reply: &Reply,
        billing: &Billing,
        started: Instant,
        elapsed: Duration,
    ) {
        let Some(cache) = &self.session.cache else {
            return;
        };
        let server = &cache.server;
        if let Reply::Error(e) = reply {
            server.record_error(e);
        }
        let Some(spec) = spec else {
            return;
        };
        // A container's subcommand (`client|list`), unless it is unknown.
        let sub = cmd::stat_sub(spec, &req.args, reply);
        let name = match &sub {
            Some(sub) => std::borrow::Cow::Owned(format!("{}|{sub}", spec.name)),
            None => std::borrow::Cow::Borrowed(spec.name),
        };
        match billing {
            Billing::Rejected(_) => server.record_rejected(spec, sub.as_deref()),
            Billing::Queued { .. } => {}
            _ => {
                let micros = elapsed.as_micros() as u64;
                server.record_call(spec, sub.as_deref(), micros, reply.is_error());
                if !matches!(spec.name, "auth" | "hello" | "exec") {
                    let client_name = self.session.name.as_deref().unwrap_or(b"");
                    server.maybe_log_slow(&req.args, micros, &self.session.peer, client_name);
                }
            }
        }
        self.last_command = Some((name, started));
    }

    /// The request path, top to bottom: look up → auth → check keys → admit →
    /// make room → route and execute. Metering follows in [`Self::handle`].
    /// The NOPERM reply if the logged-in user may not run this (recorded
    /// in the cache's `ACL LOG`); `None` for the default user.
    fn denied(&self, spec: &CommandSpec, args: &[Bytes]) -> Option<Reply> {
        let user = self.session.user.as_ref()?;
        if spec.has(flags::NO_AUTH) {
            return None;
        }
        let denied = user.access().check(spec, args).err()?;
        let (reason, object, text) = match denied {
            acl::Denied::Command(name) => {
                let text = reply::noperm_command(&user.name, &name);
                (acl::log::Reason::Command, name, text)
            }
            acl::Denied::Key(i) => (
                acl::log::Reason::Key,
                String::from_utf8_lossy(&args[i]).into_owned(),
                reply::NOPERM_KEY.to_string(),
            ),
            acl::Denied::Channel(i) => (
                acl::log::Reason::Channel,
                String::from_utf8_lossy(&args[i]).into_owned(),
                reply::NOPERM_CHANNEL.to_string(),
            ),
        };
        if let Some(cache) = &self.session.cache {
            let entry = conn_cmds::acl_entry(self, reason, object, &user.name);
            cache.acl_log.record(entry, now_ms());
        }
        Some(Reply::err_owned(text))
    }

    async fn dispatch(
        &mut self,
        req: &Request,
        spec: Option<&'static CommandSpec>,
        arrived: Instant,
        stream: &Transport,
    ) -> Outcome {
        let args = &req.args;
        // What a batch before it left decided for it (see `run_batch`).
        let admission = self.admission.take_next();
        // The command (looked up by `handle`) and its arity (a refusal
        // inside MULTI also dooms the transaction, as Redis does).
        let Some(spec) = spec else {
            self.fail_transaction();
            let reply = Reply::err_owned(reply::unknown_command(&args[0], &args[1..]));
            return Outcome::rejected(reply, Rejection::UnknownCommand);
        };
        if !spec.arity_ok(args.len()) {
            self.fail_transaction();
            let reply = Reply::err_owned(reply::wrong_arity(spec.name));
            return Outcome::rejected(reply, Rejection::Arity);
        }
        // Auth: a deleted cache unbinds its connections.
        if self.session.cache.as_ref().is_some_and(|c| c.is_deleted()) {
            self.session.unbind();
            return Outcome::nothing(Reply::err(reply::CACHE_DELETED));
        }
        let cache = self.session.cache.clone();
        if cache.is_none() && !spec.has(flags::NO_AUTH) {
            // Turned away from the full default cache: only AUTH is heard.
            if self.session.turned_away {
                self.session.closing = true;
                return Outcome::nothing(Reply::err(reply::MAX_CLIENTS));
            }
            GlobalCounters::bump(&self.shared.registry.metrics.global.noauth_rejections);
            return Outcome::nothing(Reply::err(reply::NOAUTH));
        }
        // A RESP2 subscriber runs only the subscribe family, PING, QUIT, RESET.
        if let Some(why) = super::pubsub::refused_in_context(&self.session, spec.name, args) {
            self.fail_transaction();
            return Outcome::rejected(Reply::err_owned(why), Rejection::UnknownCommand);
        }
        // Keys: sizes, and slots as the cache's cluster mode allows.
        let mode = cache
            .as_ref()
            .map_or(ClusterMode::Enabled, |c| c.pool.cluster_mode());
        let (slot, keys) = match check_keys(spec, args, self.shared.max_key_len, mode) {
            Ok(k) => k,
            Err((reply, why)) => {
                self.fail_transaction();
                return Outcome::rejected(reply, why);
            }
        };
        // The user's access string: the command, then its keys.
        if let Some(reply) = self.denied(spec, args) {
            self.fail_transaction();
            return Outcome::rejected(reply, Rejection::NoPerm);
        }
        let metered = !spec.has(flags::UNMETERED);
        let queueing = self.session.multi.is_some() && !spec.has(flags::TX_CONTROL);
        // Admit: the cache's ECPU/s limit, charged what is known upfront. The
        // wait allowed counts from the request's arrival, so requests queued
        // in a pipeline behind throttled ones do not each wait afresh. A
        // command queued in MULTI pays now what it would pay alone for
        // its bytes and keys (EXEC adds what it walks): a huge transaction
        // is held to the limit while it is being queued.
        // Bytes admitted while the request arrived are not admitted again.
        let prepaid = self.prepaid.min(req.wire_len as u64);
        self.prepaid -= prepaid;
        self.billed_early = transfer_milli(prepaid);
        let upfront = ecpu_milli(
            transfer_milli(req.wire_len as u64 - prepaid),
            if queueing {
                work_milli(spec, keys, 0)
            } else {
                0
            },
        );
        let throttle_max_wait = self.shared.throttle_max_wait;
        if let Some(cache) = cache.as_ref().filter(|_| metered)
            && let Some(Err(pending)) = match admission {
                Admission::Undecided => cache.with_limiter(|l| l.try_admit(upfront)),
                Admission::Paid(..) => None,
                Admission::Owed(charge, wait) => Some(Err((charge, wait))),
            }
            && let Some(limiter) = cache.limiter()
            && limiter
                .wait_admitted(pending, throttle_max_wait.saturating_sub(arrived.elapsed()))
                .await
                .is_err()
            && prepaid == 0
        {
            let reply = Reply::err_owned(reply::throttled(&cache.name, limiter.max_ecpu_per_sec));
            self.fail_transaction();
            return Outcome::rejected(reply, Rejection::Throttled);
        }
        // What the limiter has been charged for this request so far.
        let upfront = upfront + transfer_milli(prepaid);
        // Inside MULTI: queue (EXEC runs it and meters its work).
        // A cache with cluster mode disabled is one Redis: while a script
        // holds its partition, every command but those Redis allows while
        // busy gets BUSY, keyless ones (PING, INFO...) too.
        if let Some(cache) = &cache
            && cache.pool.cluster_mode().spans_slots()
            && !ALLOWED_WHILE_BUSY.contains(&spec.name)
            && !matches!(spec.exec, Exec::Data(_))
            && !(spec.name == "script" || spec.name == "function")
            && cache.pool.script_busy(slot, self.busy_threshold())
        {
            let busy = cache.pool.busy_reply();
            if spec.name == "exec" && self.session.multi.take().is_some() {
                // EXEC refused: the transaction is discarded, saying why.
                self.session.unwatch();
                let why = match &busy {
                    Reply::Error(e) => e.to_string(),
                    _ => reply::BUSY.to_string(),
                };
                let text = reply::execabort_because(&why);
                return Outcome::rejected(Reply::err_owned(text), Rejection::Busy);
            }
            self.fail_transaction();
            return Outcome::rejected(busy, Rejection::Busy);
        }
        if queueing {
            // A data command arriving while a script holds its partition is
            // refused with BUSY and dooms the transaction, as in Redis.
            if let Some(cache) = &cache
                && matches!(spec.exec, Exec::Data(_))
                && cache.pool.script_busy(slot, self.busy_threshold())
            {
                self.fail_transaction();
                return Outcome::rejected(Reply::err(reply::BUSY), Rejection::Busy);
            }
            return self.queue(spec, req, slot, keys, upfront);
        }
        // CLIENT PAUSE: wait for its end (writes only, or every command),
        // except the CLIENT commands that end it. Writes are what Redis
        // holds under `WRITE`: write commands, scripts that may write,
        // commands that may change or propagate something (PFCOUNT,
        // PUBLISH), and an EXEC with such a command queued. A paused client
        // counts as blocked.
        if let Some(cache) = &cache
            && cache.server.pausing()
            && !matches!(spec.exec, Exec::Conn(cmd::ConnOp::Client))
        {
            let pausable = |spec: &CommandSpec, args: &[Bytes]| {
                matches!(spec.name, "pfcount" | "publish" | "spublish")
                    || if spec.family == cmd::Family::Scripting {
                        super::scripting::may_write(cache, spec, args)
                    } else {
                        spec.has(flags::WRITE)
                    }
            };
            let writes = pausable(spec, args)
                || (spec.name == "exec"
                    && self
                        .session
                        .multi
                        .as_ref()
                        .is_some_and(|t| t.queued.iter().any(|(s, r)| pausable(s, &r.args))));
            let me = self.session.handle.clone();
            while let Some(p) = cache.server.paused(writes) {
                me.blocked.store(true, Ordering::Release);
                // Checked again at least every PAUSE_POLL: an UNPAUSE that
                // lands between the check and the wait is not missed.
                let wake = p.until.min(tokio::time::Instant::now() + PAUSE_POLL);
                tokio::select! {
                    () = tokio::time::sleep_until(wake) => {}
                    () = cache.server.unpaused.notified() => {}
                    () = self.shutdown.cancelled() => break,
                }
            }
            me.blocked.store(false, Ordering::Release);
        }
        let now = now_ms();
        // Make room: a cache over its memory limit evicts before any
        // command (as Redis does), and writes that grow data need room.
        if let Some(cache) = &cache {
            let write =
                spec.has(flags::DENY_OOM) && super::scripting::denies_oom(cache, spec, args);
            let incoming = if write { req.wire_len as u64 } else { 0 };
            if !make_room(cache, incoming, now).await && write {
                return Outcome::rejected(Reply::err(reply::OOM), Rejection::Oom);
            }
        }
        // Route and execute (a blocking command waits for its keys).
        let executed = match (spec.exec, &cache) {
            (Exec::Conn(op), _) => {
                let done = conn_cmds::run(self, op, args, now).await;
                // A subscriber, a tracking client or a notification
                // setting new here: the cache's nodes know it before the
                // client hears back.
                if may_change_feed_needs(op, args)
                    && let Some(cache) = &self.session.cache
                {
                    cache.pool.want_feed().await;
                }
                done
            }
            (Exec::Tx(op), _) => transaction::run_op(self, op, args, now).await,
            (Exec::Data(_), Some(cache)) => {
                let mut opts = self.exec_options(now);
                // What a script calls counts in the cache's command stats.
                if spec.family == cmd::Family::Scripting {
                    let cache = cache.clone();
                    opts.calls = Some(cmd::script::CallRecorder(Arc::new(
                        move |call: cmd::script::InnerCall<'_>| {
                            let server = &cache.server;
                            let (spec, sub) = (call.spec, call.sub);
                            server.record_calls(spec, sub, call.calls, call.failed, call.micros);
                        },
                    )));
                }
                let limits = super::scripting::limits(self);
                super::scripting::fetch_missing(cache, spec, args, limits, self.shared.meta())
                    .await;
                match super::scripting::prepare(cache, spec, args) {
                    Err(reply) => Executed::new(reply, 0),
                    Ok(args) => match cmd::blocking_timeout(spec, &args) {
                        Ok(Some(timeout)) => {
                            self.block(cache, spec, &args, slot, timeout, &opts, stream)
                                .await
                        }
                        _ => cache.pool.execute(spec, &args, slot, &opts).await,
                    },
                }
            }
            (Exec::Data(_), None) => return Outcome::nothing(Reply::err(reply::NOAUTH)),
        };
        if executed.unserved == Some(Unserved::Busy) {
            return Outcome::rejected(executed.reply, Rejection::Busy);
        }
        // Client-side caching: a tracking client's reads are remembered.
        if self.session.tracking || self.session.caching_given {
            super::pubsub::after_command(self, spec, args);
        }
        let billing = if metered {
            Billing::Metered {
                spec,
                slot,
                keys,
                elements: executed.work,
                upfront,
                // PUBLISH pays the bytes its fan-out delivered.
                queued_wire: std::mem::take(&mut self.delivered),
            }
        } else {
            Billing::Unmetered
        };
        Outcome {
            reply: executed.reply,
            billing,
        }
    }

    /// Adds the usage tallied since the last flush to the cache's counters.
    fn flush_usage(&mut self) {
        if let Some(cache) = &self.session.cache {
            self.tally.flush(&cache.usage);
        }
        if let Some((name, at)) = self.last_command.take() {
            super::introspect::sync_view(self, &name, at);
        }
    }

    /// Inside MULTI, a refused command makes EXEC answer EXECABORT.
    fn fail_transaction(&mut self) {
        if let Some(tx) = &mut self.session.multi {
            tx.failed = true;
        }
    }

    /// Queues a command of an open MULTI (admitted already; its bytes are
    /// metered now). Every key of a transaction must be in one slot (unless
    /// the cache's cluster mode is disabled): it runs atomically in the
    /// partition that owns it. The queue is a compact copy
    /// (it does not pin read buffers) counted as the connection's client
    /// memory, so its limits cap it.
    fn queue(
        &mut self,
        spec: &'static CommandSpec,
        req: &Request,
        slot: u16,
        keys: u64,
        upfront: u64,
    ) -> Outcome {
        let queued = Billing::Queued {
            spec,
            slot,
            keys,
            upfront,
        };
        let outcome = self.enqueue(spec, req);
        Outcome {
            billing: match outcome.billing {
                Billing::Nothing => queued,
                other => other,
            },
            ..outcome
        }
    }

    fn enqueue(&mut self, spec: &'static CommandSpec, req: &Request) -> Outcome {
        let slots: Vec<u16> = spec
            .key_positions(&req.args)
            .map(|i| key_slot(&req.args[i]))
            .collect();
        let mode = self
            .session
            .cache
            .as_ref()
            .map_or(ClusterMode::Enabled, |c| c.pool.cluster_mode());
        let Some(tx) = &mut self.session.multi else {
            return Outcome::nothing(Reply::err(reply::EXEC_WITHOUT_MULTI));
        };
        match tx.admit(&slots, mode) {
            Queueing::CrossSlot => {
                return Outcome::rejected(Reply::err(reply::CROSSSLOT), Rejection::CrossSlot);
            }
            // A doomed transaction keeps answering QUEUED (as Redis) but
            // stores nothing more: EXEC will only answer EXECABORT.
            Queueing::Doomed => return Outcome::nothing(Reply::status(reply::QUEUED)),
            Queueing::Take => {}
        }
        tx.wire += req.wire_len as u64;
        // EVALSHA queues the script body it names (resolved now, as EVAL).
        let args = match &self.session.cache {
            Some(cache) => match super::scripting::prepare(cache, spec, &req.args) {
                Ok(args) => args,
                Err(reply) => {
                    self.fail_transaction();
                    return Outcome::nothing(reply);
                }
            },
            None => std::borrow::Cow::Borrowed(&req.args[..]),
        };
        // A compact copy: queued arguments must not pin read buffers.
        let args: Args = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
        let memory = QUEUED_OVERHEAD
            + args
                .iter()
                .map(|a| a.len() as u64 + ARG_OVERHEAD)
                .sum::<u64>();
        if let Err(why) = self.account(self.memory.charged + memory) {
            // Out of client memory: the queue goes (EXEC answers EXECABORT)
            // rather than the connection.
            if let Some(tx) = &mut self.session.multi {
                let freed = std::mem::take(&mut tx.memory);
                tx.queued = Vec::new();
                tx.failed = true;
                let _ = self.account(self.memory.charged.saturating_sub(freed));
            }
            return Outcome::rejected(Reply::err(why), Rejection::ClientMemory);
        }
        let Some(tx) = &mut self.session.multi else {
            return Outcome::nothing(Reply::err(reply::EXEC_WITHOUT_MULTI));
        };
        tx.memory += memory;
        tx.queued.push((
            spec,
            Request {
                args,
                wire_len: req.wire_len,
            },
        ));
        Outcome::nothing(Reply::status(reply::QUEUED))
    }

    /// A blocking command: try it; while it finds nothing, wait for a write
    /// of one of its keys (or the timeout, the peer closing, or shutdown)
    /// and try again. XREAD's `$` is resolved once, before the first try
    /// (by the inline first look of a stream read, when it finds nothing).
    #[allow(clippy::too_many_arguments)]
    async fn block(
        &self,
        cache: &Arc<Cache>,
        spec: &'static CommandSpec,
        args: &[Bytes],
        slot: u16,
        timeout: Option<Duration>,
        opts: &ExecOptions,
        stream: &Transport,
    ) -> Executed {
        let keys: Vec<Bytes> = spec.key_positions(args).map(|i| args[i].clone()).collect();
        // In line on every key before the first attempt (first come, first
        // served: see `pool`'s module doc), where the keys' partition is.
        let mut blocked = match cache.pool.block(slot, &keys, cmd::takes(spec)).await {
            Ok(b) => b,
            Err(NotRun::Unavailable(why)) => {
                return Executed::new(Reply::err_owned(why), 0);
            }
            Err(_) => {
                return Executed::unserved(Reply::err(reply::TRYAGAIN), Unserved::InTransit);
            }
        };
        // A stream read looks first, inline: its `$` resolved as it arrives
        // and, finding nothing, it blocks then, as Redis would, rather than
        // after a trip to the worker pool that later commands of other
        // clients could overtake. Else the first attempt runs in full.
        let stream_read = matches!(spec.name, "xread" | "xreadgroup");
        let looked = stream_read
            .then(|| {
                cache.pool.peek_inline(slot, |ks| {
                    cmd::stream::blocked_read_start(ks, args, opts.now)
                })
            })
            .flatten()
            .flatten();
        // Else `$` is resolved by the first attempt, when it finds nothing
        // (the partition answers the arguments to retry with).
        let (mut args, mut skip_attempt) = looked.unwrap_or_else(|| (args.to_vec(), false));
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let me = &self.session.handle;
        let mut peer_may_close = true;
        let mut empty_wakes = 0u32;
        let mut attempts = 0u32;
        let done = loop {
            attempts += 1;
            if !std::mem::take(&mut skip_attempt) {
                let now = ExecOptions {
                    now: now_ms(),
                    // Its place in line (new if it had to get in line again).
                    ticket: Some(blocked.ticket()),
                    retry: attempts > 1,
                    ..opts.clone()
                };
                let mut done = cache.pool.execute(spec, &args, slot, &now).await;
                // Keys in transit between nodes: still blocked, in line
                // again where they land.
                let in_transit = done.unserved == Some(Unserved::InTransit);
                if !done.waits && !in_transit {
                    break done;
                }
                if let Some(resume) = done.resume.take() {
                    args = resume;
                }
            }
            // Its keys moved to another node: in line there.
            if !cache.pool.in_line_here(&blocked, slot)
                && let Ok(again) = cache.pool.block(slot, &keys, cmd::takes(spec)).await
            {
                blocked = again;
            }
            // Many wakes that found nothing: pace the retries (a safety net
            // against a writer that keeps touching the key without serving).
            empty_wakes += 1;
            if empty_wakes > 100 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // Blocked (INFO's blocked_clients, CLIENT UNBLOCK) once an
            // attempt found nothing, as Redis counts it.
            me.blocked.store(true, Ordering::Release);
            let expired = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let mut probe = [0u8; 1];
            tokio::select! {
                () = blocked.woken(attempts == 1) => continue,
                () = expired => break Executed::new(Reply::NilArray, 0),
                () = self.shutdown.cancelled() => break Executed::new(Reply::NilArray, 0),
                () = me.unblock.notified() => {
                    // CLIENT UNBLOCK: as a timeout, or with Redis's error.
                    let reply = if me.unblock_error.swap(false, Ordering::AcqRel) {
                        Reply::err(reply::UNBLOCKED)
                    } else {
                        Reply::NilArray
                    };
                    break Executed::new(reply, 0);
                }
                r = stream.peek(&mut probe), if peer_may_close => match r {
                    // Closed while blocked: stop waiting (the reply goes nowhere).
                    Ok(0) | Err(_) => break Executed::new(Reply::NilArray, 0),
                    // More commands pipelined behind the blocked one: they wait.
                    Ok(_) => peer_may_close = false,
                },
            }
        };
        drop(blocked);
        me.blocked.store(false, Ordering::Release);
        done
    }
}

/// Whether `reply` is out-of-band data (Pub/Sub confirmations), which
/// CLIENT REPLY OFF | SKIP does not hold back.
fn is_push(reply: &Reply) -> bool {
    match reply {
        Reply::Push(_) => true,
        Reply::Frames(frames) => !frames.is_empty() && frames.iter().all(is_push),
        _ => false,
    }
}

/// Whether a proxy command may change what this proxy needs of the nodes'
/// feeds: a subscription, CLIENT TRACKING, CONFIG SET (PUBLISH, PUBSUB
/// and the other CLIENT and CONFIG subcommands do not, and skip the check).
fn may_change_feed_needs(op: ConnOp, args: &[Bytes]) -> bool {
    let sub = |name: &str| {
        args.get(1)
            .is_some_and(|a| a.eq_ignore_ascii_case(name.as_bytes()))
    };
    match op {
        ConnOp::PubSub => [&b"subscribe"[..], b"psubscribe", b"ssubscribe"]
            .iter()
            .any(|name| args[0].eq_ignore_ascii_case(name)),
        ConnOp::Client => sub("tracking"),
        ConnOp::Config => sub("set"),
        _ => false,
    }
}

/// Sleeps until `deadline` (forever if `None`).
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// What MONITOR noted before a command ran.
#[derive(Default)]
struct MonitorBefore {
    /// Shown already (a script).
    fed: bool,
    /// An EXEC's queued commands.
    queued: Vec<Vec<Bytes>>,
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
        /// Wire bytes of the commands an EXEC ran (queued earlier).
        queued_wire: u64,
    },
    /// Queued in MULTI: billed its transfer and keys now (walks at EXEC).
    Queued {
        spec: &'static CommandSpec,
        slot: u16,
        keys: u64,
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

/// Longest a paused command waits before checking the pause again.
const PAUSE_POLL: Duration = Duration::from_millis(50);

/// Buffered bytes of an unfinished request beyond which its transfer is
/// admitted as it arrives (64 KiB: 64 ECPU).
const PREPAY_ABOVE: u64 = 64 * 1024;
/// How long a prepaying connection waits between admission attempts.
const PREPAY_WAIT: Duration = Duration::from_millis(50);

/// Output bytes below which a subscriber's connection takes more messages
/// from its mailbox.
const MAILBOX_CHUNK: usize = 256 * 1024;

/// Memory a queued MULTI command holds besides its arguments, bytes: its
/// entry in the queue (with the handles of up to three arguments inline)
/// and a share of the queue's growth.
const QUEUED_OVERHEAD: u64 = 2 * std::mem::size_of::<(&CommandSpec, Request)>() as u64;
/// Memory per queued argument besides its bytes (a `Bytes` handle).
const ARG_OVERHEAD: u64 = 32;

/// How long a connection with nothing buffered keeps its read buffer
/// (Redis frees an idle client's query buffer after 2 s).
const IDLE_BUFFER_AFTER: Duration = Duration::from_secs(2);

/// How often a busy connection checks whether its read buffer is too big
/// for what its requests use (Redis checks each client about once a second).
const BUFFER_CHECK: Duration = Duration::from_millis(500);

/// Checks key lengths and that the cache's cluster mode lets one command
/// combine the keys' slots (one slot when it is enabled), unless the command
/// fans out per key (`FANOUT`). Returns the slot of the first key (0 for
/// keyless commands) and the number of keys.
fn check_keys(
    spec: &CommandSpec,
    args: &[bytes::Bytes],
    max_key_len: usize,
    mode: ClusterMode,
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
            Some(first) if !mode.together(first, s) && !spec.has(flags::FANOUT) => {
                return Err((Reply::err(reply::CROSSSLOT), Rejection::CrossSlot));
            }
            Some(_) => {}
        }
    }
    Ok((slot.unwrap_or(0), keys))
}
