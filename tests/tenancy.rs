//! Tenancy: caches made through the HTTP API, `AUTH <cache> <token>` (and
//! `HELLO 3 AUTH`) binding connections, NOAUTH / WRONGPASS with Redis's exact
//! strings, isolation between caches, and deletion.

mod common;

use std::collections::BTreeSet;

use common::*;

const NOAUTH: &str = "NOAUTH Authentication required.";
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
const NOAUTH_HELLO: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_binds_a_connection_to_its_cache() {
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    let orders = http.create_cache("orders").await;
    let users = http.create_cache("users").await;

    let mut c = Raw::connect(server.resp_addr).await;
    assert_eq!(c.cmd(&["GET", "k"]).await, err(NOAUTH));
    assert_eq!(
        c.cmd(&["AUTH", "orders", "not-the-token"]).await,
        err(WRONGPASS)
    );
    assert_eq!(
        c.cmd(&["AUTH", "nosuchcache", &orders]).await,
        err(WRONGPASS)
    );
    assert_eq!(c.cmd(&["AUTH", "users", &orders]).await, err(WRONGPASS));
    assert_eq!(
        c.cmd(&["GET", "k"]).await,
        err(NOAUTH),
        "failed AUTH binds nothing"
    );

    // Two-argument form.
    assert_eq!(c.cmd(&["AUTH", "orders", &orders]).await, ok());
    assert_eq!(c.cmd(&["SET", "k", "from-orders"]).await, ok());
    // One-argument form: the token names its cache.
    assert_eq!(c.cmd(&["AUTH", &users]).await, ok());
    assert_eq!(c.cmd(&["GET", "k"]).await, Resp::Nil, "now bound to users");
    assert_eq!(c.cmd(&["SET", "k", "from-users"]).await, ok());
    assert_eq!(c.cmd(&["AUTH", &orders]).await, ok());
    assert_eq!(c.cmd(&["GET", "k"]).await, bulk("from-orders"));
    // A wrong token keeps the connection where it was (as Redis does).
    assert_eq!(c.cmd(&["AUTH", "users", "wrong"]).await, err(WRONGPASS));
    assert_eq!(c.cmd(&["GET", "k"]).await, bulk("from-orders"));
    assert_eq!(c.cmd(&["AUTH", "not-a-token"]).await, err(WRONGPASS));
    server.shutdown().await;
}

/// Without an open default cache, every command but AUTH, HELLO, PING, QUIT
/// and RESET is refused before AUTH; the strings are Redis's (compared with a
/// `redis-server --requirepass`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_before_auth_get_noauth_like_redis() {
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    let token = http.create_cache("orders").await;
    let real = RealRedis::start_with(&["--requirepass", "secret-password"]).await;
    let mut r = Raw::connect(real.addr).await;
    let mut s = Raw::connect(server.resp_addr).await;
    let same: &[&[&str]] = &[
        &["GET", "k"],
        &["SET", "k", "v"],
        &["DBSIZE"],
        &["SCAN", "0"],
        &["FLUSHALL"],
        &["INFO"],
        &["ECHO", "x"],
        &["SELECT", "0"],
        &["CLIENT", "ID"],
        &["COMMAND", "COUNT"],
        &["HSET", "h", "f", "v"],
        // Lookup and arity come before authentication, as in Redis.
        &["NOSUCHCOMMAND", "x"],
        &["GET"],
        &["AUTH", "wrong-password"],
        &["AUTH", "nosuchuser", "wrong-password"],
        &["HELLO", "3", "AUTH", "nosuchuser", "wrong-password"],
        &["HELLO", "3", "AUTH", "default"],
        &["GET", "k"],
    ];
    for cmd in same {
        let rr = r.cmd(cmd).await;
        let sr = s.cmd(cmd).await;
        assert_eq!(sr, rr, "before AUTH: {}", show(cmd));
    }
    assert_eq!(s.cmd(&["GET", "k"]).await, err(NOAUTH));
    // Redis 7.2's wording (the local redis-server may be older: not compared).
    assert_eq!(s.cmd(&["HELLO", "3"]).await, err(NOAUTH_HELLO));
    assert_eq!(s.cmd(&["HELLO", "2"]).await, err(NOAUTH_HELLO));
    // PING works before AUTH (DESIGN §2), as does RESET.
    assert_eq!(s.cmd(&["PING"]).await, simple("PONG"));
    assert_eq!(s.cmd(&["RESET"]).await, simple("RESET"));
    // After AUTH both servers answer alike.
    assert_eq!(r.cmd(&["AUTH", "secret-password"]).await, ok());
    assert_eq!(s.cmd(&["AUTH", "orders", &token]).await, ok());
    for cmd in [&["SET", "k", "v"][..], &["GET", "k"], &["DBSIZE"]] {
        assert_eq!(
            s.cmd(cmd).await,
            r.cmd(cmd).await,
            "after AUTH: {}",
            show(cmd)
        );
    }
    // QUIT works unauthenticated.
    let mut q = Raw::connect(server.resp_addr).await;
    assert_eq!(q.cmd(&["QUIT"]).await, ok());
    q.assert_closed().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_auth_binds_and_sets_protocol_and_name() {
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    let token = http.create_cache("orders").await;
    let mut c = Raw::connect(server.resp_addr).await;
    assert_eq!(c.cmd(&["HELLO", "3"]).await, err(NOAUTH_HELLO));
    assert_eq!(
        c.cmd(&["HELLO", "3", "AUTH", "orders", "wrong"]).await,
        err(WRONGPASS)
    );
    assert_eq!(c.cmd(&["GET", "k"]).await, err(NOAUTH));
    let hello = c
        .cmd(&["HELLO", "3", "AUTH", "orders", &token, "SETNAME", "billing"])
        .await;
    assert!(matches!(hello, Resp::Map(_)), "{hello:?}");
    assert_eq!(hello.field("proto"), Some(int(3)));
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]).await, bulk("billing"));
    assert_eq!(c.cmd(&["GET", "k"]).await, Resp::Null, "RESP3 null");
    let info = c.cmd(&["CLIENT", "INFO"]).await.text();
    assert!(
        info.contains(" user=default "),
        "the ACL user, as ACL WHOAMI: {info}"
    );
    // HELLO 2 AUTH on another connection.
    let mut d = Raw::connect(server.resp_addr).await;
    let hello = d.cmd(&["HELLO", "2", "AUTH", "orders", &token]).await;
    assert!(matches!(hello, Resp::Array(_)), "{hello:?}");
    assert_eq!(d.cmd(&["GET", "k"]).await, Resp::Nil);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_crate_connects_with_cache_credentials() {
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    let token = http.create_cache("orders").await;
    for resp3 in [false, true] {
        let url = redis_url(server.resp_addr, Some(("orders", &token)), resp3);
        let mut c = redis_conn_url(&url).await.expect("connects with the token");
        let () = redis::cmd("SET")
            .arg("k")
            .arg(format!("v{resp3}"))
            .query_async(&mut c)
            .await
            .unwrap();
        let v: String = redis::cmd("GET")
            .arg("k")
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(v, format!("v{resp3}"));

        let bad = redis_url(
            server.resp_addr,
            Some(("orders", "wrong-token-value")),
            resp3,
        );
        assert!(
            redis_conn_url(&bad).await.is_err(),
            "a wrong token must fail (resp3={resp3})"
        );
        // Without credentials the connection works but commands are refused.
        let anon = redis_url(server.resp_addr, None, resp3);
        if let Ok(mut c) = redis_conn_url(&anon).await {
            let e = redis::cmd("GET")
                .arg("k")
                .query_async::<redis::Value>(&mut c)
                .await
                .unwrap_err();
            assert_eq!(e.code(), Some("NOAUTH"), "{e}");
        }
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_unbinds_the_connection() {
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    let token = http.create_cache("orders").await;
    let mut c = raw_auth(server.resp_addr, "orders", &token).await;
    assert_eq!(c.cmd(&["SET", "k", "v"]).await, ok());
    assert_eq!(c.cmd(&["RESET"]).await, simple("RESET"));
    assert_eq!(c.cmd(&["GET", "k"]).await, err(NOAUTH));
    server.shutdown().await;
}

fn info_line(info: &str, key: &str) -> Option<String> {
    info.split("\r\n")
        .find_map(|l| l.strip_prefix(&format!("{key}:")).map(str::to_string))
}

async fn scan_keys(c: &mut Raw) -> BTreeSet<String> {
    let mut cursor = "0".to_string();
    let mut keys = BTreeSet::new();
    loop {
        let r = c.cmd(&["SCAN", &cursor, "COUNT", "100"]).await;
        keys.extend(r.items()[1].items().iter().map(Resp::text));
        cursor = r.items()[0].text();
        if cursor == "0" {
            return keys;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_never_see_each_others_keys() {
    // The open default cache is a tenant too.
    let server = start_default().await;
    let http = Http::new(server.http_addr);
    let ta = http.create_cache("alpha").await;
    let tb = http.create_cache("beta").await;
    let mut a = raw_auth(server.resp_addr, "alpha", &ta).await;
    let mut b = raw_auth(server.resp_addr, "beta", &tb).await;
    let mut d = Raw::connect(server.resp_addr).await;

    for i in 0..50 {
        assert_eq!(a.cmd(&["SET", &format!("shared:{i}"), "alpha"]).await, ok());
        assert_eq!(a.cmd(&["SET", &format!("only-alpha:{i}"), "x"]).await, ok());
    }
    for i in 0..20 {
        assert_eq!(b.cmd(&["SET", &format!("shared:{i}"), "beta"]).await, ok());
    }
    assert_eq!(b.cmd(&["HSET", "beta-hash", "f", "v"]).await, int(1));
    assert_eq!(d.cmd(&["SET", "shared:0", "default"]).await, ok());

    // Reads, counts and scans see one cache only.
    assert_eq!(a.cmd(&["GET", "shared:0"]).await, bulk("alpha"));
    assert_eq!(b.cmd(&["GET", "shared:0"]).await, bulk("beta"));
    assert_eq!(d.cmd(&["GET", "shared:0"]).await, bulk("default"));
    assert_eq!(b.cmd(&["GET", "shared:30"]).await, Resp::Nil);
    assert_eq!(b.cmd(&["EXISTS", "only-alpha:1", "shared:1"]).await, int(1));
    assert_eq!(a.cmd(&["TYPE", "beta-hash"]).await, simple("none"));
    assert_eq!(a.cmd(&["DBSIZE"]).await, int(100));
    assert_eq!(b.cmd(&["DBSIZE"]).await, int(21));
    assert_eq!(d.cmd(&["DBSIZE"]).await, int(1));
    let ka = scan_keys(&mut a).await;
    let kb = scan_keys(&mut b).await;
    assert_eq!(ka.len(), 100);
    assert_eq!(kb.len(), 21);
    assert!(
        kb.iter()
            .all(|k| k.starts_with("shared:") || k == "beta-hash")
    );
    assert!(!ka.contains("beta-hash"));
    assert_eq!(
        scan_keys(&mut d).await,
        BTreeSet::from(["shared:0".to_string()])
    );
    let keys = b.cmd(&["KEYS", "*alpha*"]).await;
    assert_eq!(keys.items().len(), 0, "{keys:?}");

    // INFO shows this cache's figures only.
    let ia = a.cmd(&["INFO"]).await.text();
    let ib = b.cmd(&["INFO"]).await.text();
    assert_eq!(
        info_line(&ia, "db0").unwrap().split(',').next(),
        Some("keys=100")
    );
    assert_eq!(
        info_line(&ib, "db0").unwrap().split(',').next(),
        Some("keys=21")
    );
    assert_eq!(info_line(&ia, "connected_clients").as_deref(), Some("1"));
    let _b2 = raw_auth(server.resp_addr, "beta", &tb).await;
    let ib = b.cmd(&["INFO", "clients"]).await.text();
    assert_eq!(info_line(&ib, "connected_clients").as_deref(), Some("2"));
    let used_a: u64 = info_line(&ia, "used_memory_dataset")
        .unwrap()
        .parse()
        .unwrap();
    let ib = b.cmd(&["INFO", "memory"]).await.text();
    let used_b: u64 = info_line(&ib, "used_memory_dataset")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        used_a > used_b,
        "alpha holds more than beta: {used_a} vs {used_b}"
    );

    // Writes, deletes and flushes stay inside one cache.
    assert_eq!(b.cmd(&["DEL", "shared:1", "only-alpha:1"]).await, int(1));
    assert_eq!(a.cmd(&["GET", "shared:1"]).await, bulk("alpha"));
    assert_eq!(b.cmd(&["FLUSHALL"]).await, ok());
    assert_eq!(b.cmd(&["DBSIZE"]).await, int(0));
    assert_eq!(a.cmd(&["DBSIZE"]).await, int(100));
    assert_eq!(d.cmd(&["DBSIZE"]).await, int(1));
    assert_eq!(a.cmd(&["FLUSHDB"]).await, ok());
    assert_eq!(d.cmd(&["GET", "shared:0"]).await, bulk("default"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_cache_frees_its_memory_and_refuses_its_token() {
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    let token = http.create_cache("temp").await;
    let keep_token = http.create_cache("keep").await;
    let mut c = raw_auth(server.resp_addr, "temp", &token).await;
    let mut k = raw_auth(server.resp_addr, "keep", &keep_token).await;
    assert_eq!(k.cmd(&["SET", "survivor", "yes"]).await, ok());

    let value = "v".repeat(1024);
    let mut batch = Vec::new();
    for i in 0..2000 {
        batch.extend(encode(&["SET", &format!("key:{i}"), &value]));
    }
    c.send(&batch).await;
    for _ in 0..2000 {
        assert_eq!(c.read().await, ok());
    }
    let cache = server.registry.get("temp").expect("cache in the registry");
    // (Through a proxy, the figures are the nodes' of up to a second ago.)
    eventually("the cache counts its keys", || async {
        cache.pool.totals().keys == 2000
            && http.get("/v1/caches/temp").await.json()["usage"]["items"] == 2000
    })
    .await;
    let before = cache.pool.totals();
    assert!(before.used_bytes >= 2000 * 1024, "{}", before.used_bytes);

    let r = http.delete("/v1/caches/temp").await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Its data is released at once.
    let after = cache.pool.totals();
    assert_eq!((after.keys, after.used_bytes), (0, 0));
    drop(cache);
    assert!(server.registry.get("temp").is_none());
    assert_eq!(http.get("/v1/caches/temp").await.status, 404);

    // A connection bound to it is refused, then unauthenticated.
    let r = c.cmd(&["GET", "key:1"]).await;
    assert!(r.is_error(), "{r:?}");
    assert_eq!(c.cmd(&["GET", "key:1"]).await, err(NOAUTH));
    // Its token is refused, in both AUTH forms and in HELLO.
    let mut n = Raw::connect(server.resp_addr).await;
    assert_eq!(n.cmd(&["AUTH", "temp", &token]).await, err(WRONGPASS));
    assert_eq!(n.cmd(&["AUTH", &token]).await, err(WRONGPASS));
    assert_eq!(
        n.cmd(&["HELLO", "3", "AUTH", "temp", &token]).await,
        err(WRONGPASS)
    );

    // Another cache is untouched.
    assert_eq!(k.cmd(&["GET", "survivor"]).await, bulk("yes"));
    // A new cache of the same name starts empty, with a new token.
    let token2 = http.create_cache("temp").await;
    assert_ne!(token2, token);
    assert_eq!(n.cmd(&["AUTH", "temp", &token]).await, err(WRONGPASS));
    assert_eq!(n.cmd(&["AUTH", "temp", &token2]).await, ok());
    assert_eq!(n.cmd(&["DBSIZE"]).await, int(0));
    assert_eq!(n.cmd(&["GET", "key:1"]).await, Resp::Nil);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_a_token_refuses_the_old_one() {
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    let old = http.create_cache("orders").await;
    let r = http
        .patch("/v1/caches/orders", r#"{"auth": {"rotate": true}}"#)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let new = r.json()["token"]
        .as_str()
        .expect("the new token")
        .to_string();
    assert_ne!(new, old);
    let mut c = Raw::connect(server.resp_addr).await;
    assert_eq!(c.cmd(&["AUTH", "orders", &old]).await, err(WRONGPASS));
    assert_eq!(c.cmd(&["AUTH", &old]).await, err(WRONGPASS));
    assert_eq!(c.cmd(&["AUTH", "orders", &new]).await, ok());
    // A supplied token.
    let chosen = "my-chosen-token-0123456789";
    let r = http
        .patch(
            "/v1/caches/orders",
            &format!(r#"{{"auth": {{"token": "{chosen}"}}}}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut d = Raw::connect(server.resp_addr).await;
    assert_eq!(d.cmd(&["AUTH", "orders", &new]).await, err(WRONGPASS));
    assert_eq!(d.cmd(&["AUTH", "orders", chosen]).await, ok());
    server.shutdown().await;
}
