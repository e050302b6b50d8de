//! [`EtcdStore`]: the metadata store on etcd (v3 API over gRPC, the
//! `etcd-client` crate). Every call has a deadline: a store that does not
//! answer is [`MetaError::Unavailable`], never a hang.

use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, KeyValue, PutOptions, Txn, TxnOp,
};

use super::{Cond, Entry, LeaseId, MetaError, MetaStore, Op, check_ops};

/// How long one call to etcd may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// The metadata store on an etcd cluster.
pub struct EtcdStore {
    client: Client,
}

/// What etcd's refusals and failures mean here: requests are checked
/// before they are sent ([`check_ops`]), so any error is the store's.
fn unavailable(e: etcd_client::Error) -> MetaError {
    MetaError::Unavailable(e.to_string())
}

fn entry(kv: &KeyValue) -> Entry {
    Entry {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        lease: kv.lease(),
    }
}

impl EtcdStore {
    /// Connects to etcd at `endpoints` (`http://host:port` each).
    pub async fn connect(endpoints: &[String]) -> Result<EtcdStore, MetaError> {
        let options = ConnectOptions::new()
            .with_connect_timeout(CALL_TIMEOUT)
            .with_timeout(CALL_TIMEOUT)
            .with_keep_alive(Duration::from_secs(2), CALL_TIMEOUT)
            .with_keep_alive_while_idle(true);
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(unavailable)?;
        Ok(EtcdStore { client })
    }

    /// Runs `f` on a handle of the client under [`CALL_TIMEOUT`].
    async fn call<T, F>(&self, f: impl FnOnce(Client) -> F) -> Result<T, MetaError>
    where
        F: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        match tokio::time::timeout(CALL_TIMEOUT, f(self.client.clone())).await {
            Ok(r) => r.map_err(unavailable),
            Err(_) => Err(MetaError::Unavailable("etcd did not answer in time".into())),
        }
    }
}

#[async_trait::async_trait]
impl MetaStore for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<Entry>, MetaError> {
        let key = key.to_string();
        let r = self
            .call(|mut c| async move { c.get(key, None).await })
            .await?;
        Ok(r.kvs().first().map(entry))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Entry>, MetaError> {
        let prefix = prefix.to_string();
        let r = self
            .call(|mut c| async move { c.get(prefix, Some(GetOptions::new().with_prefix())).await })
            .await?;
        Ok(r.kvs().iter().map(entry).collect())
    }

    async fn txn(&self, when: Vec<Cond>, then: Vec<Op>) -> Result<bool, MetaError> {
        check_ops(&then)?;
        let compares: Vec<Compare> = when
            .into_iter()
            .map(|c| match c {
                // A key that does not exist has creation revision 0.
                Cond::Absent(key) => Compare::create_revision(key, CompareOp::Equal, 0),
                Cond::CreatedAt(key, rev) => Compare::create_revision(key, CompareOp::Equal, rev),
            })
            .collect();
        let ops: Vec<TxnOp> = then
            .into_iter()
            .map(|op| match op {
                Op::Put { key, value, lease } => {
                    let options = (lease != 0).then(|| PutOptions::new().with_lease(lease));
                    TxnOp::put(key, value, options)
                }
                Op::Delete(key) => TxnOp::delete(key, None),
            })
            .collect();
        let txn = Txn::new().when(compares).and_then(ops);
        let r = self.call(|mut c| async move { c.txn(txn).await }).await?;
        Ok(r.succeeded())
    }

    async fn grant(&self, ttl: Duration) -> Result<LeaseId, MetaError> {
        let secs = ttl.as_secs().max(1) as i64;
        let r = self
            .call(|mut c| async move { c.lease_grant(secs, None).await })
            .await?;
        Ok(r.id())
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<bool, MetaError> {
        let renewed = self
            .call(|mut c| async move {
                let (mut keeper, mut stream) = c.lease_keep_alive(lease).await?;
                keeper.keep_alive().await?;
                Ok(stream.message().await?.is_some_and(|m| m.ttl() > 0))
            })
            .await;
        match renewed {
            // Expired or revoked: gone, not unreachable.
            Err(MetaError::Unavailable(m)) if m.contains("lease not found") => Ok(false),
            other => other,
        }
    }

    async fn revoke(&self, lease: LeaseId) -> Result<(), MetaError> {
        match self
            .call(|mut c| async move { c.lease_revoke(lease).await })
            .await
        {
            Ok(_) => Ok(()),
            // Already gone: what was asked holds.
            Err(MetaError::Unavailable(m)) if m.contains("lease not found") => Ok(()),
            Err(e) => Err(e),
        }
    }
}
