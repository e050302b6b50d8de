//! [`MemoryStore`]: the metadata store in this process's memory, with
//! etcd's semantics (revisions, leases that expire, guarded transactions)
//! — for unit tests and a lone `stratus control` without etcd.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::{Cond, Entry, LeaseId, MetaError, MetaStore, Op, check_ops};

/// The store's state: keys, the revision counter, live leases.
#[derive(Default)]
struct State {
    keys: BTreeMap<String, Entry>,
    revision: i64,
    next_lease: LeaseId,
    /// Live leases: their time to live and when they expire.
    leases: HashMap<LeaseId, (Duration, Instant)>,
}

impl State {
    /// Drops expired leases and their keys.
    fn expire(&mut self) {
        let now = Instant::now();
        let expired: Vec<LeaseId> = self
            .leases
            .iter()
            .filter(|(_, (_, deadline))| *deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.end(id);
        }
    }

    fn end(&mut self, lease: LeaseId) {
        if self.leases.remove(&lease).is_some() {
            self.keys.retain(|_, e| e.lease != lease);
            self.revision += 1;
        }
    }

    fn holds(&self, cond: &Cond) -> bool {
        match cond {
            Cond::Absent(key) => !self.keys.contains_key(key),
            Cond::CreatedAt(key, rev) => self
                .keys
                .get(key)
                .is_some_and(|e| e.create_revision == *rev),
        }
    }
}

/// The metadata store in memory.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

#[async_trait::async_trait]
impl MetaStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Entry>, MetaError> {
        let mut s = self.state.lock();
        s.expire();
        Ok(s.keys.get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Entry>, MetaError> {
        let mut s = self.state.lock();
        s.expire();
        Ok(s.keys
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn txn(&self, when: Vec<Cond>, then: Vec<Op>) -> Result<bool, MetaError> {
        check_ops(&then)?;
        let mut s = self.state.lock();
        s.expire();
        if !when.iter().all(|c| s.holds(c)) {
            return Ok(false);
        }
        if let Some(lease) = then.iter().find_map(|op| match op {
            Op::Put { lease, .. } if *lease != 0 && !s.leases.contains_key(lease) => Some(*lease),
            _ => None,
        }) {
            return Err(MetaError::Invalid(format!("lease {lease} not found")));
        }
        s.revision += 1;
        let revision = s.revision;
        for op in then {
            match op {
                Op::Put { key, value, lease } => {
                    let create_revision = s.keys.get(&key).map_or(revision, |e| e.create_revision);
                    s.keys.insert(
                        key.clone(),
                        Entry {
                            key,
                            value,
                            create_revision,
                            mod_revision: revision,
                            lease,
                        },
                    );
                }
                Op::Delete(key) => {
                    s.keys.remove(&key);
                }
            }
        }
        Ok(true)
    }

    async fn grant(&self, ttl: Duration) -> Result<LeaseId, MetaError> {
        let mut s = self.state.lock();
        s.next_lease += 1;
        let id = s.next_lease;
        s.leases.insert(id, (ttl, Instant::now() + ttl));
        Ok(id)
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<bool, MetaError> {
        let mut s = self.state.lock();
        s.expire();
        Ok(match s.leases.get_mut(&lease) {
            Some((ttl, deadline)) => {
                *deadline = Instant::now() + *ttl;
                true
            }
            None => false,
        })
    }

    async fn revoke(&self, lease: LeaseId) -> Result<(), MetaError> {
        self.state.lock().end(lease);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_memory_store_keeps_the_contract() {
        super::super::conformance::check(&MemoryStore::new())
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_not_renewed_takes_its_keys_with_it() {
        let store = MemoryStore::new();
        let lease = store.grant(Duration::from_secs(10)).await.unwrap();
        let put = Op::Put {
            key: "k".into(),
            value: b"v".to_vec(),
            lease,
        };
        assert!(store.txn(vec![], vec![put]).await.unwrap());
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(store.keep_alive(lease).await.unwrap());
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(store.get("k").await.unwrap().is_some(), "renewed at 9 s");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(store.get("k").await.unwrap(), None);
        assert!(!store.keep_alive(lease).await.unwrap());
    }
}
