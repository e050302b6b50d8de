//! What every [`MetaStore`] form must do, as one check both forms run: the
//! in-memory one in unit tests, etcd in `tests/meta.rs`.

use std::time::Duration;

use super::{Cond, MetaError, MetaStore, Op};

fn fail(what: &str) -> Result<(), String> {
    Err(what.to_string())
}

/// Runs the contract against `store` (whose keys under `/conformance/`
/// it may change); the first broken rule is the error.
pub async fn check(store: &dyn MetaStore) -> Result<(), String> {
    let e = |e: MetaError| e.to_string();
    let p = "/conformance/";
    let key = |k: &str| format!("{p}{k}");
    // Put, get, list in key order, prefix bounded.
    store
        .txn(vec![], vec![Op::put(key("b"), "2"), Op::put(key("a"), "1")])
        .await
        .map_err(e)?;
    store
        .txn(vec![], vec![Op::put("/conformance", "outside")])
        .await
        .map_err(e)?;
    let listed = store.list(p).await.map_err(e)?;
    let names: Vec<&str> = listed.iter().map(|x| x.key.as_str()).collect();
    if names != [key("a"), key("b")] {
        return Err(format!("list {p} gave {names:?}"));
    }
    let a = store.get(&key("a")).await.map_err(e)?.ok_or("a missing")?;
    if a.value != b"1" || a.create_revision == 0 || a.mod_revision != a.create_revision {
        return Err(format!("a read back as {a:?}"));
    }
    // A change keeps the creation revision and moves the modification one.
    store
        .txn(vec![], vec![Op::put(key("a"), "3")])
        .await
        .map_err(e)?;
    let a2 = store.get(&key("a")).await.map_err(e)?.ok_or("a missing")?;
    if a2.create_revision != a.create_revision || a2.mod_revision <= a.mod_revision {
        return Err(format!("a changed to {a2:?} from {a:?}"));
    }
    // Guards: a failed condition changes nothing.
    let created = Cond::CreatedAt(key("a"), a.create_revision);
    if !store
        .txn(vec![created.clone()], vec![Op::put(key("c"), "x")])
        .await
        .map_err(e)?
    {
        return fail("a transaction guarded by a's creation revision failed");
    }
    let stale = Cond::CreatedAt(key("a"), a.create_revision + 1_000_000);
    if store
        .txn(vec![stale], vec![Op::Delete(key("c"))])
        .await
        .map_err(e)?
    {
        return fail("a transaction guarded by a wrong revision ran");
    }
    if store.get(&key("c")).await.map_err(e)?.is_none() {
        return fail("a failed transaction deleted c");
    }
    if store
        .txn(vec![Cond::Absent(key("c"))], vec![Op::put(key("d"), "")])
        .await
        .map_err(e)?
    {
        return fail("Absent held for a key that exists");
    }
    if !store
        .txn(vec![Cond::Absent(key("d"))], vec![Op::Delete(key("c"))])
        .await
        .map_err(e)?
    {
        return fail("Absent failed for a key that does not exist");
    }
    // A key deleted and made again has a new creation revision.
    store
        .txn(vec![], vec![Op::put(key("c"), "again")])
        .await
        .map_err(e)?;
    if store
        .txn(vec![created], vec![])
        .await
        .map_err(e)
        .map(|held| !held)?
    {
        return fail("a's creation revision changed with a put");
    }
    // Leases: keys on a lease go with it.
    let lease = store.grant(Duration::from_secs(30)).await.map_err(e)?;
    let leased = Op::Put {
        key: key("leased"),
        value: b"v".to_vec(),
        lease,
    };
    store.txn(vec![], vec![leased]).await.map_err(e)?;
    let got = store.get(&key("leased")).await.map_err(e)?;
    if got.as_ref().map(|x| x.lease) != Some(lease) {
        return Err(format!("leased key read back as {got:?}"));
    }
    if !store.keep_alive(lease).await.map_err(e)? {
        return fail("a live lease could not be renewed");
    }
    store.revoke(lease).await.map_err(e)?;
    if store.get(&key("leased")).await.map_err(e)?.is_some() {
        return fail("a revoked lease's key stayed");
    }
    if store.keep_alive(lease).await.map_err(e)? {
        return fail("a revoked lease was renewed");
    }
    // Refused requests.
    let twice = vec![Op::put(key("x"), "1"), Op::Delete(key("x"))];
    if !matches!(store.txn(vec![], twice).await, Err(MetaError::Invalid(_))) {
        return fail("a transaction changing a key twice was not refused");
    }
    // Clean up.
    let mut ops: Vec<Op> = store
        .list(p)
        .await
        .map_err(e)?
        .into_iter()
        .map(|x| Op::Delete(x.key))
        .collect();
    ops.push(Op::Delete("/conformance".into()));
    store.txn(vec![], ops).await.map_err(e)?;
    Ok(())
}
