//! Users with Redis ACL access strings, per cache: managed through the
//! control API, logged in as `<cache>.<user>`, every rule kind allowed and
//! denied over real TCP with Redis 7.2's NOPERM strings, rotation without a
//! failed request, disconnection on demand, ACL WHOAMI/CAT/LOG/DRYRUN,
//! slowed-down guessing, and categories compared with a real redis-server.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
const NOPERM_KEY: &str = "NOPERM No permissions to access a key";

fn noperm(user: &str, cmd: &str) -> Resp {
    err(&format!(
        "NOPERM User {user} has no permissions to run the '{cmd}' command"
    ))
}

async fn add_user(http: &Http, cache: &str, name: &str, access: &str, passwords: &[&str]) {
    let body = serde_json::json!({"name": name, "access_string": access, "passwords": passwords});
    let r = http
        .post(&format!("/v1/caches/{cache}/users"), &body.to_string())
        .await;
    assert_eq!(r.status, 201, "create user {name}: {}", r.text());
}

async fn login(addr: std::net::SocketAddr, user: &str, pass: &str) -> Raw {
    let mut c = Raw::connect(addr).await;
    assert_eq!(c.cmd(&["AUTH", user, pass]).await, ok(), "login {user}");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_strings_allow_and_deny_commands_keys_and_categories() {
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    let token = http.create_cache("shop").await;
    add_user(
        &http,
        "shop",
        "reader",
        "on ~product:* ~cache:* -@all +get +mget +hgetall +smembers",
        &["reader-pass-1"],
    )
    .await;
    add_user(
        &http,
        "shop",
        "app",
        "on ~* +@all -@dangerous",
        &["app-pass-1"],
    )
    .await;
    add_user(
        &http,
        "shop",
        "split",
        "on %R~r:* %W~w:* +@all",
        &["split-pass"],
    )
    .await;
    add_user(
        &http,
        "shop",
        "subs",
        "on ~* -@all +client|id +ping",
        &["subs-pass"],
    )
    .await;

    let mut admin = Raw::connect(server.resp_addr).await;
    assert_eq!(admin.cmd(&["AUTH", "shop", &token]).await, ok());
    assert_eq!(admin.cmd(&["SET", "product:1", "lamp"]).await, ok());
    assert_eq!(admin.cmd(&["SET", "secret", "x"]).await, ok());
    assert_eq!(admin.cmd(&["ACL", "WHOAMI"]).await, bulk("default"));

    // A read-only service: its commands on its keys, nothing else.
    let mut r = login(server.resp_addr, "shop.reader", "reader-pass-1").await;
    assert_eq!(
        r.cmd(&["ACL", "WHOAMI"]).await,
        noperm("reader", "acl|whoami")
    );
    assert_eq!(r.cmd(&["GET", "product:1"]).await, bulk("lamp"));
    assert_eq!(
        r.cmd(&["MGET", "product:1", "cache:x"]).await,
        arr(vec![bulk("lamp"), Resp::Nil])
    );
    assert_eq!(
        r.cmd(&["SET", "product:1", "x"]).await,
        noperm("reader", "set")
    );
    assert_eq!(r.cmd(&["GET", "secret"]).await, err(NOPERM_KEY));
    assert_eq!(
        r.cmd(&["MGET", "product:1", "secret"]).await,
        err(NOPERM_KEY)
    );
    assert_eq!(r.cmd(&["FLUSHDB"]).await, noperm("reader", "flushdb"));
    // Denials change nothing.
    assert_eq!(admin.cmd(&["GET", "product:1"]).await, bulk("lamp"));

    // `+@all -@dangerous`: everyday commands, not KEYS, FLUSHDB, INFO or
    // CLIENT KILL; CLIENT ID is not dangerous.
    let mut a = login(server.resp_addr, "shop.app", "app-pass-1").await;
    assert_eq!(a.cmd(&["ACL", "WHOAMI"]).await, bulk("app"));
    assert_eq!(a.cmd(&["SET", "k", "v"]).await, ok());
    assert_eq!(a.cmd(&["LPUSH", "l", "a"]).await, int(1));
    assert_eq!(a.cmd(&["KEYS", "*"]).await, noperm("app", "keys"));
    assert_eq!(a.cmd(&["FLUSHDB"]).await, noperm("app", "flushdb"));
    assert_eq!(a.cmd(&["INFO"]).await, noperm("app", "info"));
    assert_eq!(
        a.cmd(&["CLIENT", "KILL", "ID", "1"]).await,
        noperm("app", "client|kill")
    );
    assert!(matches!(a.cmd(&["CLIENT", "ID"]).await, Resp::Int(_)));

    // %R~ and %W~: reads and writes apart.
    let mut s = login(server.resp_addr, "shop.split", "split-pass").await;
    assert_eq!(s.cmd(&["GET", "r:1"]).await, Resp::Nil);
    assert_eq!(s.cmd(&["SET", "r:1", "v"]).await, err(NOPERM_KEY));
    assert_eq!(s.cmd(&["SET", "w:1", "v"]).await, ok());
    assert_eq!(s.cmd(&["GET", "w:1"]).await, err(NOPERM_KEY));

    // A subcommand allowed alone.
    let mut u = login(server.resp_addr, "shop.subs", "subs-pass").await;
    assert!(matches!(u.cmd(&["CLIENT", "ID"]).await, Resp::Int(_)));
    assert_eq!(
        u.cmd(&["CLIENT", "GETNAME"]).await,
        noperm("subs", "client|getname")
    );
    assert_eq!(u.cmd(&["PING"]).await, simple("PONG"));

    // Inside MULTI a denial dooms the transaction, as Redis does.
    assert_eq!(r.cmd(&["MULTI"]).await, noperm("reader", "multi"));
    assert_eq!(a.cmd(&["MULTI"]).await, ok());
    assert_eq!(a.cmd(&["KEYS", "*"]).await, noperm("app", "keys"));
    assert_eq!(
        a.cmd(&["EXEC"]).await,
        err("EXECABORT Transaction discarded because of previous errors.")
    );

    // ACL LOG (per cache) saw the denials; DRYRUN checks without running.
    let log = admin.cmd(&["ACL", "LOG", "50"]).await;
    let objects: BTreeSet<String> = log
        .items()
        .iter()
        .map(|e| e.field("object").expect("object").text())
        .collect();
    for o in ["set", "secret", "keys", "client|kill", "flushdb"] {
        assert!(objects.contains(o), "ACL LOG misses {o}: {objects:?}");
    }
    let first = &log.items()[0];
    assert_eq!(
        first.field("username").map(|u| u.text()),
        Some("app".into())
    );
    assert_eq!(
        first.field("context").map(|u| u.text()),
        Some("multi".into())
    );
    assert_eq!(
        admin
            .cmd(&["ACL", "DRYRUN", "reader", "GET", "product:9"])
            .await,
        ok()
    );
    assert_eq!(
        admin
            .cmd(&["ACL", "DRYRUN", "reader", "SET", "product:9", "v"])
            .await,
        bulk("User reader has no permissions to run the 'set' command")
    );
    assert_eq!(
        admin.cmd(&["ACL", "USERS"]).await,
        bulks(&["default", "app", "reader", "split", "subs"])
    );
    assert_eq!(
        a.cmd(&["ACL", "SETUSER", "x", "on"]).await,
        noperm("app", "acl|setuser")
    );
    assert_eq!(admin.cmd(&["ACL", "LOG", "RESET"]).await, ok());
    assert_eq!(admin.cmd(&["ACL", "LOG"]).await, arr(vec![]));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_log_in_every_way_and_stay_inside_their_cache() {
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    http.create_cache("orders").await;
    http.create_cache("billing").await;
    add_user(&http, "orders", "svc", "on ~* +@all", &["svc-pass"]).await;

    // AUTH, HELLO 3 AUTH, and a redis:// URL with the login as user name.
    let mut c = login(server.resp_addr, "orders.svc", "svc-pass").await;
    assert_eq!(c.cmd(&["SET", "k", "orders"]).await, ok());
    let mut h = Raw::connect(server.resp_addr).await;
    let hello = h
        .cmd(&["HELLO", "3", "AUTH", "orders.svc", "svc-pass"])
        .await;
    assert!(!hello.is_error(), "{hello:?}");
    let url = format!("redis://orders.svc:svc-pass@{}/", server.resp_addr);
    let mut rc = redis_conn_url(&url).await.expect("url login");
    let v: String = redis::cmd("GET")
        .arg("k")
        .query_async(&mut rc)
        .await
        .expect("get");
    assert_eq!(v, "orders");

    // The same user and password do not open another cache.
    let mut x = Raw::connect(server.resp_addr).await;
    assert_eq!(
        x.cmd(&["AUTH", "billing.svc", "svc-pass"]).await,
        err(WRONGPASS)
    );
    assert_eq!(
        x.cmd(&["AUTH", "orders.svc", "wrong"]).await,
        err(WRONGPASS)
    );
    assert_eq!(
        x.cmd(&["AUTH", "orders.nobody", "svc-pass"]).await,
        err(WRONGPASS)
    );
    // A disabled user cannot log in.
    let r = http
        .patch(
            "/v1/caches/orders/users/svc",
            r#"{"access_string": "off ~* +@all"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        x.cmd(&["AUTH", "orders.svc", "svc-pass"]).await,
        err(WRONGPASS)
    );
    // ... and one already logged in keeps working (Redis's semantics).
    assert_eq!(c.cmd(&["GET", "k"]).await, bulk("orders"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_rotate_without_a_failed_request_and_disconnect_on_demand() {
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    http.create_cache("orders").await;
    add_user(&http, "orders", "app", "on ~* +@all", &["old-pass"]).await;
    let mut old = login(server.resp_addr, "orders.app", "old-pass").await;

    // Step 1: both passwords valid.
    let r = http
        .patch(
            "/v1/caches/orders/users/app",
            r#"{"passwords": ["old-pass", "new-pass"]}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["passwords"], 2);
    assert!(!r.text().contains("new-pass"), "passwords are never shown");
    let mut new = login(server.resp_addr, "orders.app", "new-pass").await;
    login(server.resp_addr, "orders.app", "old-pass").await;
    // Step 2: the old one removed; connections logged in with it stay.
    let r = http
        .patch(
            "/v1/caches/orders/users/app",
            r#"{"passwords": ["new-pass"]}"#,
        )
        .await;
    assert_eq!(r.status, 200);
    let mut x = Raw::connect(server.resp_addr).await;
    assert_eq!(
        x.cmd(&["AUTH", "orders.app", "old-pass"]).await,
        err(WRONGPASS)
    );
    for i in 0..50 {
        let k = format!("k{i}");
        assert_eq!(old.cmd(&["SET", &k, "v"]).await, ok());
        assert_eq!(new.cmd(&["GET", &k]).await, bulk("v"));
    }
    // Asked to, the user's connections close.
    let r = http
        .patch("/v1/caches/orders/users/app", r#"{"disconnect": true}"#)
        .await;
    assert_eq!(r.status, 200);
    old.assert_closed().await;
    new.assert_closed().await;
    // A deleted user's connections close too.
    let mut again = login(server.resp_addr, "orders.app", "new-pass").await;
    assert_eq!(again.cmd(&["PING"]).await, simple("PONG"));
    assert_eq!(http.delete("/v1/caches/orders/users/app").await.status, 200);
    again.assert_closed().await;
    assert_eq!(
        x.cmd(&["AUTH", "orders.app", "new-pass"]).await,
        err(WRONGPASS)
    );

    // The cache token rotates the same way: the previous one kept until
    // revoked.
    let r = http
        .patch(
            "/v1/caches/orders",
            r#"{"auth": {"rotate": true, "keep_previous": true}}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let second = r.json()["token"].as_str().expect("token").to_string();
    let r = http
        .patch(
            "/v1/caches/orders",
            r#"{"auth": {"rotate": true, "keep_previous": true}}"#,
        )
        .await;
    let third = r.json()["token"].as_str().expect("token").to_string();
    assert_eq!(x.cmd(&["AUTH", "orders", &second]).await, ok());
    assert_eq!(x.cmd(&["AUTH", "orders", &third]).await, ok());
    let r = http
        .patch(
            "/v1/caches/orders",
            r#"{"auth": {"revoke_previous": true}}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut y = Raw::connect(server.resp_addr).await;
    assert_eq!(y.cmd(&["AUTH", "orders", &second]).await, err(WRONGPASS));
    assert_eq!(y.cmd(&["AUTH", "orders", &third]).await, ok());
    server.shutdown().await;
}

/// `ACL SETUSER` and `DELUSER` from a client change the same users as the
/// control API, rule by rule as Redis applies them, all or nothing, with
/// Redis's replies (compared with a real redis-server); a bare `AUTH <user>`
/// finds a user of the connection's cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_setuser_and_deluser_change_the_caches_users() {
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    let token = http.create_cache("orders").await;
    let real = RealRedis::start().await;
    let mut ours = login(server.resp_addr, "orders", &token).await;
    let mut theirs = Raw::connect(real.addr).await;
    for cmd in [
        vec![
            "ACL",
            "SETUSER",
            "bob",
            "on",
            ">123",
            "+@scripting",
            "+set",
            "~x*",
        ],
        vec!["ACL", "SETUSER", "bob", "+get", "+acl|whoami"],
        vec!["ACL", "SETUSER", "bob", "+get", "bogus"],
        vec!["ACL", "SETUSER", "bob", "+nosuchcommand"],
        vec!["ACL", "DELUSER", "nobody"],
        vec!["ACL", "DELUSER", "default"],
        vec!["ACL", "LOAD"],
    ] {
        let (a, b) = (ours.cmd(&cmd).await, theirs.cmd(&cmd).await);
        match (&a, &b) {
            // The file-less refusal is Stratus's own words.
            (Resp::Error(_), Resp::Error(_)) if cmd[1] == "LOAD" => {}
            _ => assert_eq!(a, b, "{cmd:?}"),
        }
    }
    // What a tenant's users hold is bounded: a 5 kB pattern is refused.
    let long = format!("~{}", "k".repeat(5000));
    assert!(ours.cmd(&["ACL", "SETUSER", "bob", &long]).await.is_error());
    // The refused `bogus` changed nothing: bob has +get from the step before.
    let users = http.get("/v1/caches/orders/users").await.json();
    let bob = &users["users"][0];
    assert_eq!(bob["name"], "bob");
    assert_eq!(bob["passwords"], 1);
    let rules = bob["access_string"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(rules.contains("~x*") && rules.contains("+get"), "{rules}");

    // `AUTH bob 123` on a connection already in the cache; `orders.bob`
    // from anywhere.
    for user in ["bob", "orders.bob"] {
        let mut b = login(server.resp_addr, "orders", &token).await;
        if user == "orders.bob" {
            b = Raw::connect(server.resp_addr).await;
        }
        assert_eq!(b.cmd(&["AUTH", user, "123"]).await, ok(), "{user}");
        assert_eq!(b.cmd(&["ACL", "WHOAMI"]).await, bulk("bob"));
        assert_eq!(b.cmd(&["SET", "x1", "v"]).await, ok());
        assert_eq!(b.cmd(&["SET", "y1", "v"]).await, err(NOPERM_KEY));
        assert_eq!(b.cmd(&["DEL", "x1"]).await, noperm("bob", "del"));
        assert_eq!(
            b.cmd(&["ACL", "SETUSER", "eve", "on", "nopass", "+@all"])
                .await,
            noperm("bob", "acl|setuser")
        );
    }
    let mut bob = login(server.resp_addr, "orders.bob", "123").await;
    assert_eq!(ours.cmd(&["ACL", "DELUSER", "bob", "nobody"]).await, int(1));
    bob.assert_closed().await;
    assert_eq!(
        http.get("/v1/caches/orders/users/bob").await.status,
        404,
        "DELUSER removed it from the API too"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_api_validates_and_never_shows_secrets() {
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    http.create_cache("orders").await;
    let post = |body: &'static str| {
        let http = &http;
        async move { http.post("/v1/caches/orders/users", body).await }
    };
    let cases: &[(&str, u16)] = &[
        (
            r#"{"name": "a", "access_string": "on +nosuchcommand"}"#,
            400,
        ),
        (
            r#"{"name": "a", "access_string": "on +@nosuchcategory"}"#,
            400,
        ),
        (r#"{"name": "a", "access_string": "bogus"}"#, 400),
        (r#"{"name": "a.b", "access_string": "on"}"#, 400),
        (r#"{"name": "default", "access_string": "on"}"#, 400),
        (
            r#"{"name": "a", "access_string": "on", "passwords": [""]}"#,
            400,
        ),
        (r#"{"name": "a", "access_string": "on", "extra": 1}"#, 400),
        (r#"{"name": "a"#, 400),
        (
            r#"{"name": "ok-user", "access_string": "on >inline-secret ~* +get"}"#,
            201,
        ),
        (r#"{"name": "ok-user", "access_string": "on"}"#, 409),
    ];
    for (body, status) in cases {
        let r = post(body).await;
        assert_eq!(r.status, *status, "{body}: {}", r.text());
    }
    let r = http
        .post(
            "/v1/caches/nosuch/users",
            r#"{"name": "a", "access_string": "on"}"#,
        )
        .await;
    assert_eq!(r.status, 404);
    let r = http.get("/v1/caches/orders/users").await;
    assert_eq!(r.status, 200);
    assert!(!r.text().contains("inline-secret"), "{}", r.text());
    let user = &r.json()["users"][0];
    assert_eq!(user["login"], "orders.ok-user");
    assert_eq!(user["passwords"], 1);
    assert_eq!(
        user["access_string"],
        "on resetkeys ~* resetchannels -@all +get"
    );
    let mut c = login(server.resp_addr, "orders.ok-user", "inline-secret").await;
    assert_eq!(c.cmd(&["SET", "k", "v"]).await, noperm("ok-user", "set"));
    // A text/plain body (a browser's simple request) changes nothing.
    let r = http
        .send(
            "PATCH",
            "/v1/caches/orders/users/ok-user",
            r#"{"access_string": "on ~* +@all"}"#,
            &[("content-type", "text/plain")],
        )
        .await;
    assert_eq!(r.status, 415);
    assert_eq!(c.cmd(&["SET", "k", "v"]).await, noperm("ok-user", "set"));
    server.shutdown().await;
}

/// Repeated failures from one address are counted per cache and slowed
/// down; the right password still works, after the wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_is_counted_and_slowed_down() {
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    http.create_cache("orders").await;
    add_user(&http, "orders", "app", "on ~* +@all", &["right"]).await;
    let mut c = Raw::connect(server.resp_addr).await;
    for _ in 0..6 {
        assert_eq!(
            c.cmd(&["AUTH", "orders.app", "guess"]).await,
            err(WRONGPASS)
        );
    }
    // Past five failures every attempt waits first, the right one too.
    let t = Instant::now();
    assert_eq!(c.cmd(&["AUTH", "orders.app", "right"]).await, ok());
    assert!(
        t.elapsed() >= Duration::from_millis(100),
        "{:?}",
        t.elapsed()
    );
    let metrics = http.get("/metrics").await.text();
    assert!(
        metrics.contains(r#"stratus_auth_failures_total{cache="orders"} 6"#),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("auth_failures"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let mut admin = login(server.resp_addr, "orders.app", "right").await;
    let log = admin.cmd(&["ACL", "LOG"]).await;
    let auth = &log.items()[0];
    assert_eq!(auth.field("reason").map(|r| r.text()), Some("auth".into()));
    assert_eq!(auth.field("count").map(|r| r.int()), Some(6));
    server.shutdown().await;
}

/// Every command both servers know is in the same ACL categories (commands
/// with subcommands compared by the subcommands Stratus lists).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn categories_match_redis() {
    let server = start_default().await;
    let real = RealRedis::start().await;
    let mut s = Raw::connect(server.resp_addr).await;
    let mut r = Raw::connect(real.addr).await;
    let cats = r.cmd(&["ACL", "CAT"]).await;
    assert_eq!(s.cmd(&["ACL", "CAT"]).await, cats);
    let mut ours: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut theirs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for cat in cats.items() {
        let cat = cat.text();
        for c in s.cmd(&["ACL", "CAT", &cat]).await.items() {
            ours.entry(c.text()).or_default().insert(cat.clone());
        }
        for c in r.cmd(&["ACL", "CAT", &cat]).await.items() {
            theirs.entry(c.text()).or_default().insert(cat.clone());
        }
    }
    let mismatches: Vec<String> = ours
        .iter()
        .filter_map(|(cmd, cats)| {
            let want = theirs.get(cmd)?;
            (want != cats).then(|| format!("{cmd}: ours {cats:?}, redis {want:?}"))
        })
        .collect();
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert!(ours.len() > 150, "only {} commands categorised", ours.len());
    server.shutdown().await;
}

/// Commands a script calls are checked against the caller's rules, with
/// Redis's errors (compared with a real redis-server given the same user).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_run_with_the_callers_permissions() {
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    http.create_cache("orders").await;
    let rules = "on ~a* +@all -set";
    add_user(&http, "orders", "app", rules, &["app-pass"]).await;
    let real = RealRedis::start().await;
    let mut setup = Raw::connect(real.addr).await;
    let mut setuser = vec!["ACL", "SETUSER", "app", "resetpass", ">app-pass"];
    setuser.extend(rules.split(' '));
    assert_eq!(setup.cmd(&setuser).await, ok());
    let mut r = Raw::connect(real.addr).await;
    assert_eq!(r.cmd(&["AUTH", "app", "app-pass"]).await, ok());
    let mut s = login(server.resp_addr, "orders.app", "app-pass").await;
    for script in [
        "return redis.call('set','a','b')",
        "return redis.pcall('set','a','b')",
        "return redis.call('get','zzz')",
        "return redis.call('incr',KEYS[1])",
    ] {
        let (ours, theirs) = (
            s.cmd(&["EVAL", script, "1", "a1"]).await,
            r.cmd(&["EVAL", script, "1", "a1"]).await,
        );
        assert_eq!(ours, theirs, "{script}");
    }
    assert_eq!(s.cmd(&["GET", "a1"]).await, bulk("1"));
    server.shutdown().await;
}

/// Channel rules (`&pattern`, `allchannels`, `resetchannels`) hold for
/// PUBLISH, SUBSCRIBE and PSUBSCRIBE, with Redis's NOPERM string.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_rules_limit_publish_and_subscribe() {
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    http.create_cache("news").await;
    add_user(
        &http,
        "news",
        "pub",
        "on resetchannels &sport.* +@all",
        &["p"],
    )
    .await;
    let mut c = login(server.resp_addr, "news.pub", "p").await;
    let denied = err("NOPERM No permissions to access a channel");
    assert_eq!(c.cmd(&["PUBLISH", "sport.ski", "x"]).await, int(0));
    assert_eq!(c.cmd(&["PUBLISH", "politics", "x"]).await, denied);
    assert_eq!(c.cmd(&["SUBSCRIBE", "sport.ski", "politics"]).await, denied);
    assert_eq!(c.cmd(&["PSUBSCRIBE", "sport.s*"]).await, denied);
    let ok_sub = c.cmd(&["PSUBSCRIBE", "sport.*"]).await;
    assert!(!ok_sub.is_error(), "{ok_sub:?}");
    server.shutdown().await;
}

/// A password rotation under load: clients keep logging in and sending
/// requests while a second password is added, they move to it, and the
/// first is removed; not one request or login fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_under_load_fails_no_request() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    http.create_cache("orders").await;
    add_user(&http, "orders", "app", "on ~* +@all", &["pass-one"]).await;
    let current = Arc::new(parking_lot::Mutex::new("pass-one".to_string()));
    // Logins with the new password, per client.
    let on_new: Arc<[AtomicU64; 4]> = Arc::new(Default::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..4 {
        let (current, on_new, stop) = (current.clone(), on_new.clone(), stop.clone());
        let addr = server.resp_addr;
        tasks.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // A fresh login every round, with the password of the day.
                let pass = current.lock().clone();
                let mut c = Raw::connect(addr).await;
                let r = c.cmd(&["AUTH", "orders.app", &pass]).await;
                if r != ok() {
                    failures.push(format!("login with {pass}: {r:?}"));
                } else if pass == "pass-two" {
                    on_new[t].fetch_add(1, Ordering::Relaxed);
                }
                for i in 0..20 {
                    let k = format!("t{t}:{i}");
                    let v = round.to_string();
                    if c.cmd(&["SET", &k, &v]).await != ok()
                        || c.cmd(&["GET", &k]).await != bulk(&v)
                    {
                        failures.push(format!("request {k}"));
                    }
                }
                round += 1;
            }
            failures
        }));
    }
    let wait = |what: &'static str, f: Box<dyn Fn() -> bool + Send>| async move {
        common::eventually(what, || {
            let ok = f();
            async move { ok }
        })
        .await
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    // 1. Both passwords valid; 2. clients move; 3. the old one goes.
    let r = http
        .patch(
            "/v1/caches/orders/users/app",
            r#"{"passwords": ["pass-one", "pass-two"]}"#,
        )
        .await;
    assert_eq!(r.status, 200);
    *current.lock() = "pass-two".to_string();
    let seen = on_new.clone();
    wait(
        "every client logged in with the new password",
        Box::new(move || seen.iter().all(|n| n.load(Ordering::Relaxed) >= 1)),
    )
    .await;
    let r = http
        .patch(
            "/v1/caches/orders/users/app",
            r#"{"passwords": ["pass-two"]}"#,
        )
        .await;
    assert_eq!(r.status, 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let failures = t.await.expect("task");
        assert!(failures.is_empty(), "{failures:?}");
    }
    let mut old = Raw::connect(server.resp_addr).await;
    assert_eq!(
        old.cmd(&["AUTH", "orders.app", "pass-one"]).await,
        err(WRONGPASS)
    );
    server.shutdown().await;
}
