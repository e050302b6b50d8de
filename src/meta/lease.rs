//! Leases this process holds in the metadata store, and control's election
//! on one.
//!
//! - [`Lease`]: granted with the role's `--lease-ttl`, renewed every third
//!   of it. A renewal sent at `t` keeps the lease alive in the store until
//!   at least `t + ttl`, so this process may act on it until then
//!   ([`Lease::valid`]) and never after: a node that could not renew for a
//!   whole TTL (etcd down, a network cut, a SIGSTOP) fences itself before
//!   control may give its partitions to another node.
//! - [`Leadership`]: the control process that created [`keys::LEADER`] on
//!   its lease leads. The key's creation revision is the fencing token:
//!   every write the leader makes is a transaction guarded by it
//!   ([`Leadership::write`]), so a deposed leader can change nothing.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::keys::{self, LeaderRecord};
use super::{Cond, LeaseId, MetaError, MetaStore, Op};

/// How often a standby checks whether anyone leads (at most).
const CAMPAIGN_POLL: Duration = Duration::from_millis(250);

/// The pause before another try after a renewal failed.
const RETRY: Duration = Duration::from_millis(250);

/// A lease this process keeps alive.
pub struct Lease {
    store: Arc<dyn MetaStore>,
    pub id: LeaseId,
    pub ttl: Duration,
    /// Until when the store keeps the lease alive at the least.
    valid_until: Mutex<Instant>,
    /// Cancelled once the lease is gone or could not be renewed in time.
    lost: CancellationToken,
}

impl Lease {
    /// Grants a lease of `ttl` and renews it until `stop` or until it is
    /// lost.
    pub async fn grant(
        store: Arc<dyn MetaStore>,
        ttl: Duration,
        stop: CancellationToken,
    ) -> Result<Arc<Lease>, MetaError> {
        let sent = Instant::now();
        let id = store.grant(ttl).await?;
        let lease = Arc::new(Lease {
            store,
            id,
            ttl,
            valid_until: Mutex::new(sent + ttl),
            lost: CancellationToken::new(),
        });
        tokio::spawn(lease.clone().keep(stop));
        Ok(lease)
    }

    /// Whether this process may still act on the lease.
    pub fn valid(&self) -> bool {
        !self.lost.is_cancelled() && Instant::now() < *self.valid_until.lock()
    }

    /// Cancelled when the lease is lost.
    pub fn lost(&self) -> &CancellationToken {
        &self.lost
    }

    /// Ends the lease now (a clean shutdown: its keys go at once).
    pub async fn revoke(&self) {
        self.lost.cancel();
        if let Err(e) = self.store.revoke(self.id).await {
            tracing::warn!(lease = self.id, "could not revoke the lease: {e}");
        }
    }

    async fn keep(self: Arc<Self>, stop: CancellationToken) {
        let period = self.ttl / 3;
        let mut failed = false;
        loop {
            let deadline = *self.valid_until.lock();
            // After a failed renewal, tries again soon: an outage shorter
            // than the TTL must not cost the lease.
            let pause = if failed { RETRY.min(period) } else { period };
            let wait = pause.min(deadline.saturating_duration_since(Instant::now()));
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.lost.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            let sent = Instant::now();
            if sent >= *self.valid_until.lock() {
                tracing::error!(lease = self.id, "lease not renewed for a whole TTL: lost");
                self.lost.cancel();
                return;
            }
            let left = self.valid_until.lock().saturating_duration_since(sent);
            failed = true;
            match tokio::time::timeout(left, self.store.keep_alive(self.id)).await {
                Ok(Ok(true)) => {
                    *self.valid_until.lock() = sent + self.ttl;
                    failed = false;
                }
                Ok(Ok(false)) => {
                    tracing::error!(lease = self.id, "lease expired in the store: lost");
                    self.lost.cancel();
                    return;
                }
                Ok(Err(e)) => tracing::warn!(lease = self.id, "cannot renew the lease: {e}"),
                Err(_) => tracing::warn!(lease = self.id, "lease renewal timed out"),
            }
        }
    }

    /// Puts `key` on this lease (membership: gone when the lease is).
    pub async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), MetaError> {
        let op = Op::Put {
            key: key.to_string(),
            value,
            lease: self.id,
        };
        self.store.txn(vec![], vec![op]).await.map(|_| ())
    }
}

/// Keeps `key` = `value` on a lease of `ttl` until `stop`, announcing it
/// again on a new lease whenever one is lost (a stateless member, as a
/// proxy: nothing to fence). The key goes when `stop` comes.
pub async fn announce(
    store: Arc<dyn MetaStore>,
    key: String,
    value: Vec<u8>,
    ttl: Duration,
    stop: CancellationToken,
) {
    loop {
        let held = match Lease::grant(store.clone(), ttl, stop.clone()).await {
            Ok(lease) => match lease.put(&key, value.clone()).await {
                Ok(()) => Some(lease),
                Err(e) => {
                    tracing::warn!(%key, "cannot announce (trying again): {e}");
                    lease.revoke().await;
                    None
                }
            },
            Err(e) => {
                tracing::warn!(%key, "cannot announce (trying again): {e}");
                None
            }
        };
        let lost = held.as_ref().map(|l| l.lost().clone());
        tokio::select! {
            () = stop.cancelled() => {
                if let Some(lease) = held {
                    lease.revoke().await;
                }
                return;
            }
            () = async {
                match lost {
                    Some(lost) => lost.cancelled().await,
                    None => tokio::time::sleep(ttl / 4).await,
                }
            } => {}
        }
    }
}

/// Control's leadership, won by [`Leadership::campaign`].
pub struct Leadership {
    store: Arc<dyn MetaStore>,
    lease: Arc<Lease>,
    /// The leader key's creation revision: the fencing token.
    token: i64,
}

impl Leadership {
    /// Waits until this process leads (`None` if `stop` comes first):
    /// creates [`keys::LEADER`] with `me` on a new lease once no one
    /// holds it, checking every quarter of `ttl` or [`CAMPAIGN_POLL`],
    /// whichever is shorter.
    pub async fn campaign(
        store: Arc<dyn MetaStore>,
        me: &LeaderRecord,
        ttl: Duration,
        stop: &CancellationToken,
    ) -> Option<Leadership> {
        let value = serde_json::to_vec(me).expect("a leader record serializes");
        // Checked often: a standby leads at most this long after the
        // leader's lease expired.
        let poll = (ttl / 4).min(CAMPAIGN_POLL);
        let mut announced = false;
        loop {
            match Self::try_lead(&store, &value, ttl, stop).await {
                Ok(Some(l)) => return Some(l),
                Ok(None) => {
                    if !announced {
                        let leader = leader(store.as_ref()).await.ok().flatten();
                        tracing::info!(leader = ?leader, "standing by: another control leads");
                        announced = true;
                    }
                }
                Err(e) => tracing::warn!("cannot campaign for leadership: {e}"),
            }
            tokio::select! {
                _ = stop.cancelled() => return None,
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    async fn try_lead(
        store: &Arc<dyn MetaStore>,
        value: &[u8],
        ttl: Duration,
        stop: &CancellationToken,
    ) -> Result<Option<Leadership>, MetaError> {
        if store.get(keys::LEADER).await?.is_some() {
            return Ok(None);
        }
        let lease = Lease::grant(store.clone(), ttl, stop.clone()).await?;
        let put = Op::Put {
            key: keys::LEADER.to_string(),
            value: value.to_vec(),
            lease: lease.id,
        };
        let won = store
            .txn(vec![Cond::Absent(keys::LEADER.to_string())], vec![put])
            .await;
        match won {
            Ok(true) => {}
            Ok(false) => {
                lease.revoke().await;
                return Ok(None);
            }
            Err(e) => {
                lease.revoke().await;
                return Err(e);
            }
        }
        let entry = match store.get(keys::LEADER).await {
            Ok(e) => e,
            Err(e) => {
                // Won, but the token is unknown: give it up (another try
                // comes a quarter TTL later).
                lease.revoke().await;
                return Err(e);
            }
        };
        match entry.filter(|e| e.lease == lease.id) {
            Some(e) => Ok(Some(Leadership {
                store: store.clone(),
                lease,
                token: e.create_revision,
            })),
            None => {
                lease.revoke().await;
                Ok(None)
            }
        }
    }

    /// The fencing token (the leader key's creation revision).
    pub fn token(&self) -> i64 {
        self.token
    }

    /// Whether this process still leads (its lease is valid).
    pub fn valid(&self) -> bool {
        self.lease.valid()
    }

    /// Cancelled when leadership is lost.
    pub fn lost(&self) -> &CancellationToken {
        self.lease.lost()
    }

    /// Applies `ops` only while this process leads, in transactions of at
    /// most [`MAX_TXN_OPS`] changes each guarded by the fencing token.
    /// A refused guard means another control leads: leadership is lost.
    ///
    /// [`MAX_TXN_OPS`]: super::MAX_TXN_OPS
    pub async fn write(&self, ops: Vec<Op>) -> Result<(), MetaError> {
        if !self.valid() {
            return Err(MetaError::Fenced);
        }
        let guard = Cond::CreatedAt(keys::LEADER.to_string(), self.token);
        let mut ops = ops;
        while !ops.is_empty() {
            let rest = ops.split_off(ops.len().min(super::MAX_TXN_OPS));
            if !self.store.txn(vec![guard.clone()], ops).await? {
                tracing::error!("another control leads: this one changes nothing more");
                self.lease.lost().cancel();
                return Err(MetaError::Fenced);
            }
            ops = rest;
        }
        Ok(())
    }

    /// Steps down: the leader key goes with the lease, and a standby may
    /// lead at once.
    pub async fn resign(&self) {
        self.lease.revoke().await;
    }
}

/// Who leads control now, if anyone.
pub async fn leader(store: &dyn MetaStore) -> Result<Option<LeaderRecord>, MetaError> {
    Ok(store
        .get(keys::LEADER)
        .await?
        .and_then(|e| serde_json::from_slice(&e.value).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::MemoryStore;

    fn me(id: &str) -> LeaderRecord {
        LeaderRecord {
            id: id.into(),
            http: "127.0.0.1:1".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_leader_at_a_time_and_a_deposed_one_changes_nothing() {
        let store: Arc<dyn MetaStore> = Arc::new(MemoryStore::new());
        let stop = CancellationToken::new();
        let ttl = Duration::from_secs(10);
        let a = Leadership::campaign(store.clone(), &me("a"), ttl, &stop)
            .await
            .unwrap();
        a.write(vec![Op::put("/x", "a")]).await.unwrap();
        // b waits while a renews.
        let b = tokio::spawn({
            let (store, stop) = (store.clone(), stop.clone());
            async move { Leadership::campaign(store, &me("b"), ttl, &stop).await }
        });
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!b.is_finished(), "b led while a held its lease");
        assert_eq!(leader(store.as_ref()).await.unwrap(), Some(me("a")));
        // a resigns: b leads, with a newer token; a's writes are refused.
        a.resign().await;
        let b = b.await.unwrap().unwrap();
        assert!(b.token() > a.token());
        assert!(matches!(
            a.write(vec![Op::put("/x", "stale")]).await,
            Err(MetaError::Fenced)
        ));
        b.write(vec![Op::put("/x", "b")]).await.unwrap();
        assert_eq!(store.get("/x").await.unwrap().unwrap().value, b"b");
        stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_whose_key_was_replaced_is_fenced_even_if_its_lease_lives() {
        let store: Arc<dyn MetaStore> = Arc::new(MemoryStore::new());
        let stop = CancellationToken::new();
        let a = Leadership::campaign(store.clone(), &me("a"), Duration::from_secs(10), &stop)
            .await
            .unwrap();
        // Someone deletes and recreates the key (an operator, a bug).
        store
            .txn(vec![], vec![Op::Delete(keys::LEADER.into())])
            .await
            .unwrap();
        store
            .txn(vec![], vec![Op::put(keys::LEADER, "{}")])
            .await
            .unwrap();
        assert!(matches!(
            a.write(vec![Op::put("/y", "1")]).await,
            Err(MetaError::Fenced)
        ));
        assert!(a.lost().is_cancelled());
        assert_eq!(store.get("/y").await.unwrap(), None);
        stop.cancel();
    }
}
