//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! Between MULTI and EXEC the request path queues commands (see
//! `Connection::queue`); every key of a transaction must be in one slot, so
//! it runs atomically in the one partition that owns it — unless the cache's
//! cluster mode is disabled ([`ClusterMode`]): its one partition owns every
//! slot, and a transaction may use any keys, as in standalone Redis. A refused command
//! while queueing (unknown, wrong arity, CROSSSLOT...) dooms the
//! transaction. WATCH registers keys with the cache's [`KeyEvents`]; every
//! successful write of a key moves its version on.
//!
//! EXEC, in phases:
//! 1. no MULTI → error; a doomed transaction → EXECABORT;
//! 2. watched keys must be in the transaction's slot (else CROSSSLOT: the
//!    check could not be atomic with the writes), as the cluster mode asks;
//! 3. the queued data commands run in order under one hold of the
//!    partition's lock, after checking no watched version moved (a null
//!    reply if one did: nothing runs);
//! 4. queued proxy commands (PING, ECHO, TIME, INFO...) run after, and the
//!    replies come back in queue order.
//!
//! [`KeyEvents`]: crate::pool::KeyEvents
//! [`ClusterMode`]: crate::partition::ClusterMode

use bytes::Bytes;

use super::conn_cmds;
use super::session::Connection;
use super::session::{Transaction, Watched};
use crate::cmd::{CommandSpec, Exec, OpError, TxOp};
use crate::metering::work_milli;
use crate::partition::key_slot;
use crate::pool::{Executed, NotRun};
use crate::resp::{Reply, reply};

/// Runs one of the transaction's own commands.
pub async fn run_op(conn: &mut Connection<'_>, op: TxOp, args: &[Bytes], now: u64) -> Executed {
    let reply = match op {
        TxOp::Exec => {
            return exec(conn, now)
                .await
                .unwrap_or_else(|e| Executed::new(e.reply(), 0));
        }
        TxOp::Multi => multi(conn),
        TxOp::Discard => discard(conn),
        TxOp::Watch => watch(conn, args).await,
        TxOp::Unwatch => unwatch(conn),
    };
    Executed::new(reply.unwrap_or_else(|e| e.reply()), 0)
}

fn multi(conn: &mut Connection<'_>) -> Result<Reply, OpError> {
    if conn.session.multi.is_some() {
        return Err(OpError::Static(reply::MULTI_NESTED));
    }
    conn.session.multi = Some(Transaction::default());
    Ok(Reply::ok())
}

fn discard(conn: &mut Connection<'_>) -> Result<Reply, OpError> {
    if conn.session.multi.take().is_none() {
        return Err(OpError::Static(reply::DISCARD_WITHOUT_MULTI));
    }
    conn.session.unwatch();
    Ok(Reply::ok())
}

/// WATCH key [key ...] (the request path already checked one slot).
async fn watch(conn: &mut Connection<'_>, args: &[Bytes]) -> Result<Reply, OpError> {
    if conn.session.multi.is_some() {
        return Err(OpError::Static(reply::WATCH_IN_MULTI));
    }
    let Some(cache) = conn.session.cache.clone() else {
        return Err(OpError::Static(reply::NOAUTH));
    };
    let mut fresh: Vec<Bytes> = Vec::new();
    for key in &args[1..] {
        if conn.session.watched_keys.insert(key[..].into()) {
            fresh.push(key.clone());
        }
    }
    let Some(first) = fresh.first() else {
        return Ok(Reply::ok());
    };
    // Counted where the keys' partition is (one slot: checked before).
    let slot = key_slot(first);
    let versions = match cache.pool.watch(slot, &fresh).await {
        Ok(v) => v,
        Err(not_run) => {
            for key in &fresh {
                conn.session.watched_keys.remove(&key[..]);
            }
            return Err(match not_run {
                NotRun::Unavailable(why) => OpError::Text(why),
                NotRun::Busy => OpError::Static(reply::BUSY),
                NotRun::Moved(_) => OpError::Static(reply::TRYAGAIN),
            });
        }
    };
    for (key, version) in fresh.into_iter().zip(versions) {
        conn.session.watched.push(Watched {
            slot: key_slot(&key),
            key: key[..].into(),
            version,
        });
    }
    Ok(Reply::ok())
}

fn unwatch(conn: &mut Connection<'_>) -> Result<Reply, OpError> {
    conn.session.unwatch();
    Ok(Reply::ok())
}

/// EXEC: the phases in the module doc. `work` is in milli-work units (the
/// table's EXEC row charges 1 milli per unit), summed over what ran.
async fn exec(conn: &mut Connection<'_>, now: u64) -> Result<Executed, OpError> {
    let Some(tx) = conn.session.multi.take() else {
        return Err(OpError::Static(reply::EXEC_WITHOUT_MULTI));
    };
    let result = run(conn, tx, now).await;
    conn.session.unwatch();
    result
}

async fn run(conn: &mut Connection<'_>, tx: Transaction, now: u64) -> Result<Executed, OpError> {
    // 0. EXEC itself refused while a script holds the transaction's
    //    partition: discarded, saying why (before "previous errors").
    if let Some(cache) = &conn.session.cache {
        let slot = tx
            .slot
            .or(conn.session.watched.first().map(|w| w.slot))
            .unwrap_or(0);
        if cache.pool.script_busy(slot, conn.busy_threshold()) {
            return Err(OpError::Text(reply::execabort_because(reply::BUSY)));
        }
    }
    // 1. Doomed while queueing.
    if tx.failed {
        return Err(OpError::Static(reply::EXECABORT));
    }
    let Some(cache) = conn.session.cache.clone() else {
        return Err(OpError::Static(reply::NOAUTH));
    };
    // 2. Watched keys in the transaction's slot (any slot, with cluster
    //    mode disabled: the cache's one partition runs them all).
    let slot = tx
        .slot
        .or(conn.session.watched.first().map(|w| w.slot))
        .unwrap_or(0);
    let mode = cache.pool.cluster_mode();
    if conn
        .session
        .watched
        .iter()
        .any(|w| !mode.together(slot, w.slot))
    {
        return Err(OpError::Static(reply::CROSSSLOT));
    }
    let versions: Vec<(Box<[u8]>, u64)> = conn
        .session
        .watched
        .iter()
        .map(|w| (w.key.clone(), w.version))
        .collect();
    // 3. Data commands under one lock.
    let data: Vec<(&'static CommandSpec, &[Bytes])> = tx
        .queued
        .iter()
        .filter(|(spec, _)| matches!(spec.exec, Exec::Data(_)))
        .map(|(spec, req)| (*spec, &req.args[..]))
        .collect();
    let opts = conn.exec_options(now);
    let ran = match cache
        .pool
        .execute_batch(&data, slot, &versions, &opts)
        .await
    {
        Ok(Some(ran)) => ran,
        Ok(None) => {
            return Ok(Executed::new(Reply::NilArray, 0));
        }
        // EXEC refused while a script runs: the transaction is discarded,
        // saying why, as Redis's execCommandAbort.
        Err(NotRun::Busy) => {
            return Err(OpError::Text(reply::execabort_because(reply::BUSY)));
        }
        Err(NotRun::Moved(_)) => return Err(OpError::Static(reply::TRYAGAIN)),
        Err(NotRun::Unavailable(why)) => return Err(OpError::Text(why)),
    };
    // 4. Proxy commands, then the replies in queue order.
    let mut ran = ran.into_iter();
    let mut replies = Vec::with_capacity(tx.queued.len());
    let mut work = 0;
    for (spec, req) in &tx.queued {
        let done = match spec.exec {
            Exec::Data(_) => ran.next().unwrap_or(Executed::new(Reply::Nil, 0)),
            Exec::Conn(op) => conn_cmds::run(conn, op, &req.args, now).await,
            // Never queued: they run at once inside MULTI.
            Exec::Tx(_) => Executed::new(Reply::err(reply::EXEC_WITHOUT_MULTI), 0),
        };
        // Its keys were charged when it was queued; here what it walked.
        work += work_milli(spec, 0, done.work);
        // Client-side caching remembers what the transaction read.
        if matches!(spec.exec, Exec::Data(_)) && !done.reply.is_error() {
            super::pubsub::remember_read(conn, spec, &req.args, conn.session.caching_given);
        }
        cache
            .server
            .record_inner_call(spec, &req.args, 0, &done.reply);
        replies.push(done.reply);
    }
    Ok(Executed::new(Reply::Array(replies), work))
}
