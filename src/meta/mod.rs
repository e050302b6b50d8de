//! Stratus's metadata store (DESIGN §13): what `stratus control`, nodes and
//! proxies share through etcd — caches, routing tables, membership on
//! leases, control's leadership.
//!
//! The logic talks to [`MetaStore`], a small key-value interface in etcd's
//! terms (revisions, leases, transactions guarded by comparisons). It has
//! two forms: [`EtcdStore`] over a real etcd, and [`MemoryStore`] in this
//! process (unit tests, and a single `stratus control` without etcd).
//! [`keys`] owns the key layout; [`lease`] keeps leased keys alive and runs
//! control's election.

pub mod conformance;
pub mod etcd;
pub mod keys;
pub mod lease;
pub mod memory;

use std::time::Duration;

pub use etcd::EtcdStore;
pub use memory::MemoryStore;

/// A lease's id in the store (etcd's).
pub type LeaseId = i64;

/// One key as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Vec<u8>,
    /// The store revision that created the key (kept until it is deleted).
    pub create_revision: i64,
    /// The store revision of its last change.
    pub mod_revision: i64,
    /// The lease it lives on (0: none).
    pub lease: LeaseId,
}

/// A condition of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    /// The key does not exist.
    Absent(String),
    /// The key exists and was created at this revision: control's fencing
    /// token is its leader key's.
    CreatedAt(String, i64),
}

/// A change in a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: String,
        value: Vec<u8>,
        /// Deleted with this lease when it expires (0: kept).
        lease: LeaseId,
    },
    Delete(String),
}

impl Op {
    pub fn put(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Op {
        Op::Put {
            key: key.into(),
            value: value.into(),
            lease: 0,
        }
    }

    fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete(key) => key,
        }
    }
}

/// Changes one transaction carries at most (etcd's default `--max-txn-ops`
/// is 128).
pub const MAX_TXN_OPS: usize = 128;

/// Why the store could not answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MetaError {
    /// Unreachable, timed out or refused: the caller retries later.
    #[error("metadata store unavailable: {0}")]
    Unavailable(String),
    /// The request itself is wrong (too many changes, a key twice).
    #[error("metadata store refused the request: {0}")]
    Invalid(String),
    /// This process no longer holds the lease or leadership the write
    /// needs: it must change nothing more.
    #[error("not the leader any more: another process holds the lease")]
    Fenced,
}

/// The metadata store: etcd's key-value model, reduced to what Stratus
/// uses.
#[async_trait::async_trait]
pub trait MetaStore: Send + Sync {
    /// The key, if it exists.
    async fn get(&self, key: &str) -> Result<Option<Entry>, MetaError>;
    /// Every key starting with `prefix`, in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<Entry>, MetaError>;
    /// Applies `then` at once if every condition of `when` holds; returns
    /// whether it did. At most [`MAX_TXN_OPS`] changes, each key once.
    async fn txn(&self, when: Vec<Cond>, then: Vec<Op>) -> Result<bool, MetaError>;
    /// A new lease that expires `ttl` after its last renewal.
    async fn grant(&self, ttl: Duration) -> Result<LeaseId, MetaError>;
    /// Renews the lease; `false` if it has expired (its keys are gone).
    async fn keep_alive(&self, lease: LeaseId) -> Result<bool, MetaError>;
    /// Ends the lease now, deleting its keys.
    async fn revoke(&self, lease: LeaseId) -> Result<(), MetaError>;
    /// Every key starting with `prefix` with its modification revision,
    /// values left out (what changed, cheaply).
    async fn revisions(&self, prefix: &str) -> Result<Vec<(String, i64)>, MetaError> {
        Ok(self
            .list(prefix)
            .await?
            .into_iter()
            .map(|e| (e.key, e.mod_revision))
            .collect())
    }
}

/// Checks a transaction's changes before it runs (both forms refuse the
/// same requests).
fn check_ops(then: &[Op]) -> Result<(), MetaError> {
    if then.len() > MAX_TXN_OPS {
        return Err(MetaError::Invalid(format!(
            "{} changes in one transaction (at most {MAX_TXN_OPS})",
            then.len()
        )));
    }
    let mut keys: Vec<&str> = then.iter().map(Op::key).collect();
    keys.sort_unstable();
    if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
        return Err(MetaError::Invalid(format!(
            "key {} changed twice in one transaction",
            w[0]
        )));
    }
    Ok(())
}

/// Opens the store `endpoints` names: etcd at those URLs, or this
/// process's memory when there are none.
pub async fn open(endpoints: &[String]) -> Result<std::sync::Arc<dyn MetaStore>, MetaError> {
    if endpoints.is_empty() {
        Ok(std::sync::Arc::new(MemoryStore::new()))
    } else {
        Ok(std::sync::Arc::new(EtcdStore::connect(endpoints).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_names_each_key_once_and_at_most_its_limit() {
        assert!(check_ops(&[Op::put("a", "1"), Op::Delete("b".into())]).is_ok());
        assert!(matches!(
            check_ops(&[Op::put("a", "1"), Op::Delete("a".into())]),
            Err(MetaError::Invalid(_))
        ));
        let many: Vec<Op> = (0..=MAX_TXN_OPS)
            .map(|i| Op::put(i.to_string(), ""))
            .collect();
        assert!(matches!(check_ops(&many), Err(MetaError::Invalid(_))));
    }
}
