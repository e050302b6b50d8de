//! [`EtcdStore`]: the metadata store on etcd, through etcd's own JSON
//! gateway to its v3 API (`POST /v3/kv/range`, `/v3/kv/txn`,
//! `/v3/lease/grant|keepalive|revoke` on the client port, served by etcd
//! 3.4 to 3.6 by default). The same calls as gRPC, with the same
//! semantics, over the HTTP client Stratus already has — no generated
//! code, so building Stratus needs no `protoc`.
//!
//! Every call has a deadline ([`CALL_TIMEOUT`]): a store that does not
//! answer is [`MetaError::Unavailable`], never a hang. Endpoints are tried
//! in turn, starting with the last one that answered. Keys and values are
//! base64 in the JSON, 64-bit integers decimal strings (the gateway's
//! proto3 JSON form).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Cond, Entry, LeaseId, MetaError, MetaStore, Op, check_ops};

/// How long one call to etcd may take (connecting included).
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Largest answer read from etcd, bytes (a listing of every cache).
const MAX_ANSWER: usize = 256 * 1024 * 1024;

/// The metadata store on an etcd cluster.
pub struct EtcdStore {
    /// `host:port` of each member's client URL.
    endpoints: Vec<String>,
    /// The endpoint that answered last.
    current: std::sync::atomic::AtomicUsize,
}

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// A 64-bit field of the gateway's JSON (a string, or absent for 0).
fn int(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn entry(kv: &Value) -> Result<Entry, MetaError> {
    let bytes = |field: &str| -> Result<Vec<u8>, MetaError> {
        match kv[field].as_str() {
            None => Ok(Vec::new()),
            Some(s) => B64
                .decode(s)
                .map_err(|e| MetaError::Unavailable(format!("etcd sent bad base64: {e}"))),
        }
    };
    Ok(Entry {
        key: String::from_utf8_lossy(&bytes("key")?).into_owned(),
        value: bytes("value")?,
        create_revision: int(&kv["create_revision"]),
        mod_revision: int(&kv["mod_revision"]),
        lease: int(&kv["lease"]),
    })
}

/// The end of the key range holding every key that starts with `prefix`
/// (etcd's `range_end`: the prefix with its last byte below 0xff plus one).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every key: etcd's "\0" range end.
    vec![0]
}

impl EtcdStore {
    /// A store on etcd at `endpoints` (`http://host:port` each); it
    /// connects per call, so it starts even while etcd is away.
    pub async fn connect(endpoints: &[String]) -> Result<EtcdStore, MetaError> {
        let endpoints: Vec<String> = endpoints
            .iter()
            .map(|e| {
                e.strip_prefix("http://")
                    .map(|hp| hp.trim_end_matches('/').to_string())
                    .ok_or_else(|| {
                        MetaError::Invalid(format!("etcd endpoint {e:?}: use http://host:port"))
                    })
            })
            .collect::<Result<_, _>>()?;
        if endpoints.is_empty() {
            return Err(MetaError::Invalid("no etcd endpoint".into()));
        }
        Ok(EtcdStore {
            endpoints,
            current: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Posts `body` to `path` on the first endpoint that answers; its JSON.
    async fn call(&self, path: &str, body: Value) -> Result<Value, MetaError> {
        use std::sync::atomic::Ordering;
        let body = Bytes::from(body.to_string());
        let first = self.current.load(Ordering::Relaxed);
        let mut last = String::new();
        for i in 0..self.endpoints.len() {
            let at = (first + i) % self.endpoints.len();
            let endpoint = &self.endpoints[at];
            let call = crate::http1::Call {
                method: Method::POST,
                path,
                content_type: Some(b"application/json"),
                bearer: None,
                body: body.clone(),
                limit: MAX_ANSWER,
                answer_within: CALL_TIMEOUT,
            };
            match tokio::time::timeout(CALL_TIMEOUT, crate::http1::request(endpoint, call)).await {
                Ok(Ok((StatusCode::OK, answer))) => {
                    self.current.store(at, Ordering::Relaxed);
                    return serde_json::from_slice(&answer).map_err(|e| {
                        MetaError::Unavailable(format!("etcd's answer to {path}: {e}"))
                    });
                }
                Ok(Ok((status, answer))) => {
                    let v: Value = serde_json::from_slice(&answer).unwrap_or_default();
                    let message = v["message"]
                        .as_str()
                        .or_else(|| v["error"].as_str())
                        .unwrap_or("")
                        .to_string();
                    last = format!("{endpoint}: {status} {message}");
                    // A refusal of the request itself is the same on every
                    // member.
                    if status.is_client_error() || message.contains("lease not found") {
                        return Err(MetaError::Unavailable(last));
                    }
                }
                Ok(Err(e)) => last = format!("{endpoint}: {e}"),
                Err(_) => last = format!("{endpoint}: no answer in {CALL_TIMEOUT:?}"),
            }
        }
        Err(MetaError::Unavailable(last))
    }

    /// Every key starting with `prefix`, in key order (values left out
    /// with `keys_only`).
    async fn range(&self, prefix: &str, keys_only: bool) -> Result<Vec<Entry>, MetaError> {
        let r = self
            .call(
                "/v3/kv/range",
                json!({
                    "key": b64(prefix.as_bytes()),
                    "range_end": b64(&prefix_end(prefix.as_bytes())),
                    "keys_only": keys_only,
                }),
            )
            .await?;
        r["kvs"]
            .as_array()
            .map(|kvs| kvs.iter().map(entry).collect())
            .unwrap_or(Ok(Vec::new()))
    }
}

#[async_trait::async_trait]
impl MetaStore for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<Entry>, MetaError> {
        let r = self
            .call("/v3/kv/range", json!({ "key": b64(key.as_bytes()) }))
            .await?;
        match r["kvs"].as_array().and_then(|kvs| kvs.first()) {
            Some(kv) => entry(kv).map(Some),
            None => Ok(None),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Entry>, MetaError> {
        self.range(prefix, false).await
    }

    async fn revisions(&self, prefix: &str) -> Result<Vec<(String, i64)>, MetaError> {
        let keys = self.range(prefix, true).await?;
        Ok(keys.into_iter().map(|e| (e.key, e.mod_revision)).collect())
    }

    async fn txn(&self, when: Vec<Cond>, then: Vec<Op>) -> Result<bool, MetaError> {
        check_ops(&then)?;
        let compare: Vec<Value> = when
            .iter()
            .map(|c| {
                // A key that does not exist has creation revision 0.
                let (key, rev) = match c {
                    Cond::Absent(key) => (key, 0),
                    Cond::CreatedAt(key, rev) => (key, *rev),
                };
                json!({
                    "key": b64(key.as_bytes()),
                    "target": "CREATE",
                    "result": "EQUAL",
                    "create_revision": rev.to_string(),
                })
            })
            .collect();
        let success: Vec<Value> = then
            .iter()
            .map(|op| match op {
                Op::Put { key, value, lease } => json!({ "requestPut": {
                    "key": b64(key.as_bytes()),
                    "value": b64(value),
                    "lease": lease.to_string(),
                }}),
                Op::Delete(key) => json!({ "requestDeleteRange": {
                    "key": b64(key.as_bytes()),
                }}),
            })
            .collect();
        let r = self
            .call(
                "/v3/kv/txn",
                json!({ "compare": compare, "success": success }),
            )
            .await?;
        Ok(r["succeeded"].as_bool().unwrap_or(false))
    }

    async fn grant(&self, ttl: Duration) -> Result<LeaseId, MetaError> {
        let secs = ttl.as_secs().max(1);
        let r = self
            .call("/v3/lease/grant", json!({ "TTL": secs.to_string() }))
            .await?;
        match int(&r["ID"]) {
            0 => Err(MetaError::Unavailable(format!(
                "etcd granted no lease: {}",
                r["error"]
            ))),
            id => Ok(id),
        }
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<bool, MetaError> {
        let r = self
            .call("/v3/lease/keepalive", json!({ "ID": lease.to_string() }))
            .await?;
        if let Some(error) = r.get("error") {
            return Err(MetaError::Unavailable(format!("etcd: {error}")));
        }
        // An expired or revoked lease comes back without a TTL.
        Ok(int(&r["result"]["TTL"]) > 0)
    }

    async fn revoke(&self, lease: LeaseId) -> Result<(), MetaError> {
        match self
            .call("/v3/lease/revoke", json!({ "ID": lease.to_string() }))
            .await
        {
            Ok(_) => Ok(()),
            // Already gone: what was asked holds.
            Err(MetaError::Unavailable(m)) if m.contains("lease not found") => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_range_ends_past_every_key_of_the_prefix() {
        assert_eq!(prefix_end(b"/a/"), b"/a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
        assert_eq!(int(&json!("42")), 42);
        assert_eq!(int(&Value::Null), 0);
    }
}
