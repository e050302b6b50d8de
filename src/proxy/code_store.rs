//! A cache's scripts and function libraries shared between proxies
//! through the metadata store (with `--etcd`; without it each proxy keeps
//! its own, as each Redis Cluster node does).
//!
//! - `SCRIPT LOAD` writes `/stratus/v1/scripts/<cache>/<sha>`; an
//!   `EVALSHA` (or `SCRIPT EXISTS`) a proxy does not know reads it there;
//!   `SCRIPT FLUSH` deletes the cache's. Scripts `EVAL` caches stay with
//!   the proxy (Redis evicts those too).
//! - Every change of a cache's libraries (`FUNCTION LOAD`, `DELETE`,
//!   `FLUSH`, `RESTORE`) writes its whole `FUNCTION DUMP` payload to
//!   `/stratus/v1/functions/<cache>`; each proxy reads the revisions every
//!   [`FOLLOW_EVERY`] and takes a changed payload as its own
//!   ([`changed_functions`]).
//!
//! The store answering or not never fails a command: a write that did
//! not reach it is logged, and the proxy goes on with its own copy.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;

use crate::meta::{MetaStore, Op, keys};

/// How often a proxy looks for libraries changed through other proxies.
pub const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// Largest script or payload shared (etcd's request limit is 1.5 MiB).
pub const MAX_SHARED: usize = 1024 * 1024;

/// Shares a script `SCRIPT LOAD` added.
pub async fn put_script(store: &dyn MetaStore, cache: &str, sha: &str, body: &Bytes) {
    if body.len() > MAX_SHARED {
        return;
    }
    let op = Op::put(keys::script(cache, sha), body.to_vec());
    if let Err(e) = store.txn(vec![], vec![op]).await {
        tracing::warn!(%cache, "script not shared with other proxies: {e}");
    }
}

/// A script another proxy loaded, if any.
pub async fn get_script(store: &dyn MetaStore, cache: &str, sha: &[u8]) -> Option<Bytes> {
    let sha = std::str::from_utf8(sha).ok()?.to_ascii_lowercase();
    if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    match store.get(&keys::script(cache, &sha)).await {
        Ok(found) => found.map(|e| Bytes::from(e.value)),
        Err(e) => {
            tracing::warn!(%cache, "cannot read shared scripts: {e}");
            None
        }
    }
}

/// Deletes every shared script of `cache` (`SCRIPT FLUSH`, a deleted
/// cache).
pub async fn forget_scripts(store: &dyn MetaStore, cache: &str) {
    let gone = match store.list(&keys::scripts(cache)).await {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(%cache, "shared scripts not flushed: {e}");
            return;
        }
    };
    let ops: Vec<Op> = gone.into_iter().map(|e| Op::Delete(e.key)).collect();
    for chunk in ops.chunks(crate::meta::MAX_TXN_OPS) {
        if let Err(e) = store.txn(vec![], chunk.to_vec()).await {
            tracing::warn!(%cache, "shared scripts not flushed: {e}");
        }
    }
}

/// Shares `cache`'s libraries as they are now (`dump`: its `FUNCTION
/// DUMP` payload; none left deletes the key).
pub async fn put_functions(store: &dyn MetaStore, cache: &str, dump: Option<Vec<u8>>) {
    let key = keys::functions(cache);
    let op = match dump {
        Some(d) if d.len() > MAX_SHARED => {
            tracing::warn!(%cache, "libraries too large to share with other proxies");
            return;
        }
        Some(d) => Op::put(key, d),
        None => Op::Delete(key),
    };
    if let Err(e) = store.txn(vec![], vec![op]).await {
        tracing::warn!(%cache, "libraries not shared with other proxies: {e}");
    }
}

/// The caches whose shared libraries changed since `seen` (cache →
/// revision, kept by the caller): each with its payload, or `None` when
/// they were deleted.
pub async fn changed_functions(
    store: &dyn MetaStore,
    seen: &mut HashMap<String, i64>,
) -> Vec<(String, Option<Vec<u8>>)> {
    let revisions = match store.revisions(keys::FUNCTIONS).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!("cannot read shared libraries: {e}");
            return Vec::new();
        }
    };
    let mut now: HashMap<String, i64> = HashMap::new();
    for (key, rev) in revisions {
        if let Some(name) = keys::name_of(keys::FUNCTIONS, &key) {
            now.insert(name.to_string(), rev);
        }
    }
    let mut changed = Vec::new();
    for (name, rev) in &now {
        if seen.get(name) == Some(rev) {
            continue;
        }
        match store.get(&keys::functions(name)).await {
            Ok(Some(e)) => changed.push((name.clone(), Some(e.value))),
            Ok(None) => changed.push((name.clone(), None)),
            Err(_) => continue,
        }
        seen.insert(name.clone(), *rev);
    }
    let deleted: Vec<String> = seen
        .keys()
        .filter(|n| !now.contains_key(*n))
        .cloned()
        .collect();
    for name in deleted {
        seen.remove(&name);
        changed.push((name, None));
    }
    changed
}
