//! The HTTP control API with a real HTTP client (hyper-util): caches are
//! created, listed, described, modified and deleted; limits are stored and
//! shown; a token is shown once; every bad request gets a 4xx with a JSON
//! error body, never a 5xx; bodies must be sent as `application/json` (415
//! otherwise); limits whose byte arithmetic would overflow are refused.

mod common;

use common::*;
use serde_json::{Value, json};
use stratus::config::ServeConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn assert_json_error(r: &HttpReply, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    assert!(
        r.content_type.starts_with("application/json"),
        "{what}: content type {:?}",
        r.content_type
    );
    let j = r.json();
    let code = j["error"]["code"].as_str();
    let message = j["error"]["message"].as_str();
    assert!(
        code.is_some_and(|c| !c.is_empty()),
        "{what}: no error.code in {j}"
    );
    assert!(
        message.is_some_and(|m| !m.is_empty()),
        "{what}: no error.message in {j}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_are_created_listed_described_modified_deleted() {
    let server = start_default().await;
    let http = Http::new(server.http_addr);

    let r = http
        .post(
            "/v1/caches",
            r#"{"name": "orders", "description": "order lookups",
                "usage_limits": {"data_storage": {"maximum": 10, "minimum": 1, "unit": "GB"},
                                 "ecpu_per_second": {"maximum": 15000, "minimum": 1000}}}"#,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(r.content_type.starts_with("application/json"));
    let created = r.json();
    assert_eq!(created["name"], "orders");
    assert_eq!(created["description"], "order lookups");
    assert_eq!(created["status"], "available");
    let token = created["token"].as_str().expect("token shown at creation");
    assert!(token.len() >= 16, "{token}");
    assert_eq!(created["endpoint"]["port"], server.resp_addr.port());
    assert_eq!(
        created["usage_limits"],
        json!({"data_storage": {"maximum": 10, "minimum": 1, "unit": "GB"},
               "ecpu_per_second": {"maximum": 15000, "minimum": 1000}})
    );

    // The AWS CLI shape is accepted and shown in the API's shape.
    let r = http
        .post(
            "/v1/caches",
            r#"{"name": "sessions", "usage_limits": {"DataStorage": {"Maximum": 5, "Unit": "MB"},
                                                      "ECPUPerSecond": {"Maximum": 2000}}}"#,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let j = r.json();
    assert_eq!(j["usage_limits"]["data_storage"]["maximum"], 5);
    assert_eq!(j["usage_limits"]["data_storage"]["unit"], "MB");
    assert_eq!(j["usage_limits"]["ecpu_per_second"]["maximum"], 2000);

    // List: every cache (the default one too), no tokens.
    let r = http.get("/v1/caches").await;
    assert_eq!(r.status, 200);
    let list = r.json();
    let names: Vec<&str> = list["caches"]
        .as_array()
        .expect("caches array")
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for n in ["default", "orders", "sessions"] {
        assert!(names.contains(&n), "{names:?}");
    }
    assert!(!r.text().contains(token), "the list must not show tokens");

    // Describe: limits stored, usage now, no token.
    let mut c = raw_auth(server.resp_addr, "orders", token).await;
    for i in 0..7 {
        assert_eq!(c.cmd(&["SET", &format!("k{i}"), "v"]).await, ok());
    }
    let r = http.get("/v1/caches/orders").await;
    assert_eq!(r.status, 200);
    let d = r.json();
    assert!(
        d.get("token").is_none(),
        "describe must not show the token: {d}"
    );
    assert!(!r.text().contains(token));
    assert_eq!(d["usage_limits"], created["usage_limits"]);
    assert_eq!(d["usage"]["items"], 7);
    assert!(d["usage"]["data_stored_bytes"].as_u64().unwrap() > 0);
    assert_eq!(d["usage"]["connections"], 1);
    assert_eq!(d["auth"]["required"], true);

    // Modify: description and limits; the token is not shown again.
    let r = http
        .patch(
            "/v1/caches/orders",
            r#"{"description": "changed", "usage_limits": {"data_storage": {"maximum": 20, "unit": "GB"}}}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let p = r.json();
    assert!(p.get("token").is_none(), "{p}");
    assert_eq!(p["description"], "changed");
    assert_eq!(p["usage_limits"]["data_storage"]["maximum"], 20);
    let d = http.get("/v1/caches/orders").await.json();
    assert_eq!(d["description"], "changed");
    assert_eq!(d["usage_limits"]["data_storage"]["maximum"], 20);
    assert_eq!(d["usage_limits"]["data_storage"]["unit"], "GB");
    // Only the description: limits stay.
    let r = http
        .patch("/v1/caches/orders", r#"{"description": "again"}"#)
        .await;
    assert_eq!(r.status, 200);
    let d = http.get("/v1/caches/orders").await.json();
    assert_eq!(d["description"], "again");
    assert_eq!(d["usage_limits"]["data_storage"]["maximum"], 20);

    // Delete.
    let r = http.delete("/v1/caches/sessions").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_json_error(&http.get("/v1/caches/sessions").await, 404, "deleted cache");
    let list = http.get("/v1/caches").await.json();
    assert!(
        !list["caches"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "sessions")
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_shown_once() {
    let server = start_default().await;
    let http = Http::new(server.http_addr);
    let token = http.create_cache("orders").await;
    // Supplied tokens are accepted and echoed once too.
    let r = http
        .post(
            "/v1/caches",
            r#"{"name": "chosen", "auth": {"token": "a-supplied-token-1234"}}"#,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["token"], "a-supplied-token-1234");
    let mut c = Raw::connect(server.resp_addr).await;
    assert_eq!(
        c.cmd(&["AUTH", "chosen", "a-supplied-token-1234"]).await,
        ok()
    );

    for path in ["/v1/caches", "/v1/caches/orders", "/v1/caches/chosen"] {
        let r = http.get(path).await;
        assert_eq!(r.status, 200);
        let body = r.text();
        assert!(!body.contains(&token), "{path} shows a token");
        assert!(
            !body.contains("a-supplied-token-1234"),
            "{path} shows a token"
        );
        assert!(!body.contains("\"token\""), "{path}: {body}");
    }
    let r = http.patch("/v1/caches/orders", "{}").await;
    assert_eq!(r.status, 200);
    assert!(!r.text().contains(&token));
    // Rotation shows the new token, once.
    let r = http
        .patch("/v1/caches/orders", r#"{"auth": {"rotate": true}}"#)
        .await;
    let new = r.json()["token"].as_str().unwrap().to_string();
    assert!(!http.get("/v1/caches/orders").await.text().contains(&new));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_4xx_with_a_json_error_never_5xx() {
    let server = start_default().await;
    let http = Http::new(server.http_addr);
    http.create_cache("exists").await;
    let long_name = format!(r#"{{"name": "{}"}}"#, "a".repeat(41));
    let long_description = format!(r#"{{"name": "d", "description": "{}"}}"#, "x".repeat(300));
    let post_cases: Vec<(&str, String, u16)> = vec![
        ("malformed JSON", "{".into(), 400),
        ("not JSON at all", "hello".into(), 400),
        ("empty body", "".into(), 400),
        ("JSON array", "[]".into(), 400),
        ("JSON null", "null".into(), 400),
        ("trailing garbage", r#"{"name": "a"} x"#.into(), 400),
        ("replacement character in the name", "{\"name\": \"\u{fffd}\"}".into(), 400),
        ("missing name", "{}".into(), 400),
        ("name of wrong type", r#"{"name": 5}"#.into(), 400),
        ("name null", r#"{"name": null}"#.into(), 400),
        ("description of wrong type", r#"{"name": "a", "description": 1}"#.into(), 400),
        ("limits of wrong type", r#"{"name": "a", "usage_limits": "big"}"#.into(), 400),
        (
            "limit figure of wrong type",
            r#"{"name": "a", "usage_limits": {"data_storage": {"maximum": "10"}}}"#.into(),
            400,
        ),
        (
            "fractional limit",
            r#"{"name": "a", "usage_limits": {"data_storage": {"maximum": 1.5}}}"#.into(),
            400,
        ),
        ("unknown top-level field", r#"{"name": "a", "colour": "red"}"#.into(), 400),
        (
            "typo in a limit",
            r#"{"name": "a", "usage_limits": {"ecpu_per_second": {"maximun": 5}}}"#.into(),
            400,
        ),
        (
            "unknown limit group",
            r#"{"name": "a", "usage_limits": {"network": {"maximum": 5}}}"#.into(),
            400,
        ),
        ("unknown auth field", r#"{"name": "a", "auth": {"password": "x"}}"#.into(), 400),
        ("bad name: upper case", r#"{"name": "Orders"}"#.into(), 400),
        ("bad name: underscore", r#"{"name": "my_cache"}"#.into(), 400),
        ("bad name: digit first", r#"{"name": "1cache"}"#.into(), 400),
        ("bad name: empty", r#"{"name": ""}"#.into(), 400),
        ("bad name: unicode", r#"{"name": "caché"}"#.into(), 400),
        ("bad name: too long", long_name, 400),
        ("description too long", long_description, 400),
        (
            "negative storage maximum",
            r#"{"name": "a", "usage_limits": {"data_storage": {"maximum": -1}}}"#.into(),
            400,
        ),
        (
            "negative ECPU minimum",
            r#"{"name": "a", "usage_limits": {"ecpu_per_second": {"minimum": -5}}}"#.into(),
            400,
        ),
        (
            "storage minimum above maximum",
            r#"{"name": "a", "usage_limits": {"data_storage": {"minimum": 5, "maximum": 1}}}"#
                .into(),
            400,
        ),
        (
            "ECPU minimum above maximum",
            r#"{"name": "a", "usage_limits": {"ecpu_per_second": {"minimum": 500, "maximum": 100}}}"#
                .into(),
            400,
        ),
        (
            "absurdly large limit",
            r#"{"name": "a", "usage_limits": {"data_storage": {"maximum": 9223372036854775807}}}"#
                .into(),
            400,
        ),
        (
            "limit beyond i64",
            r#"{"name": "a", "usage_limits": {"data_storage": {"maximum": 99999999999999999999999}}}"#
                .into(),
            400,
        ),
        (
            "unknown unit",
            r#"{"name": "a", "usage_limits": {"data_storage": {"maximum": 1, "unit": "TB"}}}"#
                .into(),
            400,
        ),
        ("token too short", r#"{"name": "a", "auth": {"token": "short"}}"#.into(), 400),
        (
            "token with a space",
            r#"{"name": "a", "auth": {"token": "has a space in it 12345"}}"#.into(),
            400,
        ),
        ("duplicate name", r#"{"name": "exists"}"#.into(), 409),
        ("duplicate default", r#"{"name": "default"}"#.into(), 409),
    ];
    for (what, body, status) in &post_cases {
        let r = http.post("/v1/caches", body).await;
        assert_json_error(&r, *status, what);
    }
    // Invalid UTF-8 bytes in the body.
    let r = http
        .send(
            "POST",
            "/v1/caches",
            b"{\"name\": \"\xff\xfe\"}".to_vec(),
            &[("content-type", "application/json")],
        )
        .await;
    assert_json_error(&r, 400, "invalid UTF-8 bytes");

    let patch_cases: Vec<(&str, &str, &str, u16)> = vec![
        ("malformed JSON", "/v1/caches/exists", "{", 400),
        (
            "unknown field",
            "/v1/caches/exists",
            r#"{"nmae": "x"}"#,
            400,
        ),
        (
            "renaming is not a field",
            "/v1/caches/exists",
            r#"{"name": "x"}"#,
            400,
        ),
        (
            "negative limit",
            "/v1/caches/exists",
            r#"{"usage_limits": {"ecpu_per_second": {"maximum": -1}}}"#,
            400,
        ),
        (
            "minimum above maximum",
            "/v1/caches/exists",
            r#"{"usage_limits": {"data_storage": {"minimum": 9, "maximum": 2}}}"#,
            400,
        ),
        ("empty auth", "/v1/caches/exists", r#"{"auth": {}}"#, 400),
        (
            "rotate and token",
            "/v1/caches/exists",
            r#"{"auth": {"rotate": true, "token": "another-token-123456"}}"#,
            400,
        ),
        (
            "rotate of wrong type",
            "/v1/caches/exists",
            r#"{"auth": {"rotate": "yes"}}"#,
            400,
        ),
        ("unknown cache", "/v1/caches/nope", "{}", 404),
    ];
    for (what, path, body, status) in &patch_cases {
        let r = http.patch(path, body).await;
        assert_json_error(&r, *status, what);
    }
    // A failed PATCH changes nothing.
    let d = http.get("/v1/caches/exists").await.json();
    assert_eq!(d["usage_limits"]["ecpu_per_second"]["maximum"], 0);
    assert_eq!(d["usage_limits"]["data_storage"]["minimum"], 0);

    let other_cases: Vec<(&str, &str, &str, u16)> = vec![
        ("describe unknown cache", "GET", "/v1/caches/nope", 404),
        ("delete unknown cache", "DELETE", "/v1/caches/nope", 404),
        ("delete twice", "DELETE", "/v1/caches/gone", 404),
        ("describe a bad name", "GET", "/v1/caches/Bad_Name", 404),
        ("encoded junk in the path", "GET", "/v1/caches/%00%ff", 404),
        (
            "nested path",
            "GET",
            "/v1/caches/exists/partitions/extra",
            404,
        ),
        ("unknown route", "GET", "/v2/caches", 404),
        ("unknown route under v1", "GET", "/v1/things", 404),
        ("PUT on the collection", "PUT", "/v1/caches", 405),
        ("DELETE on the collection", "DELETE", "/v1/caches", 405),
        ("POST on one cache", "POST", "/v1/caches/exists", 405),
    ];
    http.create_cache("gone").await;
    assert_eq!(http.delete("/v1/caches/gone").await.status, 200);
    for (what, method, path, status) in &other_cases {
        let r = http.send(method, path, "", &[]).await;
        assert_json_error(&r, *status, what);
    }
    // Nothing bad was created along the way.
    let list = http.get("/v1/caches").await.json();
    let names: Vec<&str> = list["caches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["default", "default-memcached", "exists"]);
    server.shutdown().await;
}

fn cache_names(list: &Value) -> Vec<String> {
    list["caches"]
        .as_array()
        .expect("a list of caches")
        .iter()
        .map(|c| c["name"].as_str().expect("a name").to_string())
        .collect()
}

/// POST and PATCH bodies must say they are JSON: what a web page can send
/// cross-origin without a CORS preflight (text/plain, forms) gets 415 and
/// changes nothing, so a page in an operator's browser cannot create or
/// change caches on a loopback API that has no admin token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_without_a_json_content_type_get_415_and_change_nothing() {
    let server = start_default().await;
    let http = Http::new(server.http_addr);
    let origin = ("origin", "http://evil.example");
    let create = r#"{"name": "evil"}"#;
    let refused: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("text/plain", vec![("content-type", "text/plain"), origin]),
        (
            "text/plain with charset",
            vec![("content-type", "text/plain;charset=UTF-8"), origin],
        ),
        (
            "form",
            vec![("content-type", "application/x-www-form-urlencoded")],
        ),
        (
            "multipart",
            vec![("content-type", "multipart/form-data; boundary=x")],
        ),
        ("no content type", vec![]),
        ("JSON-ish", vec![("content-type", "application/jsonp")]),
        (
            "two content types",
            vec![
                ("content-type", "application/json"),
                ("content-type", "text/plain"),
            ],
        ),
    ];
    for (what, headers) in &refused {
        let r = http.send("POST", "/v1/caches", create, headers).await;
        assert_json_error(&r, 415, what);
        assert_eq!(
            r.json()["error"]["code"],
            "unsupported_media_type",
            "{what}"
        );
    }
    assert_eq!(
        cache_names(&http.get("/v1/caches").await.json()),
        vec!["default", "default-memcached"]
    );

    // application/json in any case, with parameters, is accepted.
    for (name, ct) in [
        ("a", "application/json"),
        ("b", "Application/JSON; charset=utf-8"),
        ("c", "application/json;charset=UTF-8"),
    ] {
        let body = format!(r#"{{"name": "{name}"}}"#);
        let r = http
            .send("POST", "/v1/caches", body, &[("content-type", ct)])
            .await;
        assert_eq!(r.status, 201, "{ct}: {}", r.text());
    }

    // PATCH likewise: refused without the header, and nothing changes.
    let change = r#"{"description": "changed", "auth": {"rotate": true}}"#;
    for headers in [&[][..], &[("content-type", "text/plain")][..]] {
        let r = http.send("PATCH", "/v1/caches/a", change, headers).await;
        assert_json_error(&r, 415, "PATCH");
        assert_eq!(r.json()["error"]["code"], "unsupported_media_type");
    }
    let d = http.get("/v1/caches/a").await.json();
    assert_eq!(d["description"], "");
    assert!(d.get("token").is_none());
    let r = http.patch("/v1/caches/a", r#"{"description": "ok"}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Bodiless requests need no content type.
    assert_eq!(http.send("GET", "/v1/caches/a", "", &[]).await.status, 200);
    assert_eq!(
        http.send("DELETE", "/v1/caches/c", "", &[]).await.status,
        200
    );
    server.shutdown().await;
}

/// Limit figures whose byte arithmetic would overflow (GB × 2^30 past i64 or
/// u64) or pass the documented ceilings (1 PiB, 10^9 ECPU/s) are refused with
/// 400 `invalid_request`; the ceilings themselves are accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflowing_limits_are_refused() {
    let server = start_default().await;
    let http = Http::new(server.http_addr);
    let too_large = [
        r#"{"data_storage": {"maximum": 8589934592}}"#, // 2^33 GB: 2^63 bytes
        r#"{"data_storage": {"maximum": 17179869184}}"#, // 2^34 GB: 2^64 bytes
        r#"{"data_storage": {"maximum": 1099511627776}}"#, // 2^40 GB
        r#"{"data_storage": {"maximum": 9223372036854775807, "unit": "MB"}}"#,
        r#"{"data_storage": {"minimum": 9223372036854775807}}"#,
        r#"{"data_storage": {"maximum": 1048577}}"#, // 1 PiB + 1 GB
        r#"{"data_storage": {"maximum": 1073741825, "unit": "MB"}}"#,
        r#"{"DataStorage": {"Maximum": 4294967296, "Unit": "GB"}}"#,
        r#"{"ecpu_per_second": {"maximum": 1000000001}}"#,
        r#"{"ecpu_per_second": {"minimum": 9223372036854775807}}"#,
        r#"{"ECPUPerSecond": {"Maximum": 18446744073709551615}}"#,
    ];
    for limits in too_large {
        let body = format!(r#"{{"name": "big", "usage_limits": {limits}}}"#);
        let r = http.post("/v1/caches", &body).await;
        assert_json_error(&r, 400, limits);
        assert_eq!(r.json()["error"]["code"], "invalid_request", "{limits}");
    }
    assert_eq!(
        cache_names(&http.get("/v1/caches").await.json()),
        vec!["default", "default-memcached"]
    );

    // PATCH: refused too, and the limits stay as they were.
    http.create_cache("limited").await;
    for limits in too_large {
        let body = format!(r#"{{"usage_limits": {limits}}}"#);
        let r = http.patch("/v1/caches/limited", &body).await;
        assert_json_error(&r, 400, limits);
        assert_eq!(r.json()["error"]["code"], "invalid_request", "{limits}");
    }
    let d = http.get("/v1/caches/limited").await.json();
    assert_eq!(d["usage_limits"]["data_storage"]["maximum"], 0);
    assert_eq!(d["usage_limits"]["ecpu_per_second"]["maximum"], 0);

    // The ceilings are accepted.
    let r = http
        .post(
            "/v1/caches",
            r#"{"name": "huge", "usage_limits": {"data_storage": {"minimum": 1048576, "maximum": 1048576, "unit": "GB"}, "ecpu_per_second": {"maximum": 1000000000}}}"#,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = http
        .patch(
            "/v1/caches/limited",
            r#"{"usage_limits": {"data_storage": {"maximum": 1073741824, "unit": "MB"}}}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let usage = http.get("/v1/caches/huge/usage").await.json();
    assert_eq!(usage["billed_data_stored_bytes"], 1u64 << 50);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_413() {
    let server = start_default().await;
    let http = Http::new(server.http_addr);
    let pad = "x".repeat(100 * 1024);
    let body = format!(r#"{{"name": "big", "description": "{pad}"}}"#);
    let r = http.post("/v1/caches", &body).await;
    assert_json_error(&r, 413, "100 KiB body");
    let r = http
        .patch(
            "/v1/caches/default",
            &format!(r#"{{"description": "{pad}"}}"#),
        )
        .await;
    assert_json_error(&r, 413, "100 KiB PATCH body");
    // A huge declared body (4 GiB) is refused once the limit is passed,
    // without waiting for (or buffering) the rest.
    let mut sock = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .unwrap();
    let head = "POST /v1/caches HTTP/1.1\r\nHost: stratus\r\nContent-Type: application/json\r\nContent-Length: 4294967296\r\n\r\n";
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&vec![b' '; 70 * 1024]).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let (status, body) = loop {
        let n = tokio::time::timeout_at(deadline, sock.read(&mut buf))
            .await
            .expect("a reply before the body is complete")
            .unwrap_or(0);
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .expect("content-length in the reply");
            if got.len() >= end + 4 + len {
                let status = text.split_whitespace().nth(1).unwrap().to_string();
                break (status, got[end + 4..end + 4 + len].to_vec());
            }
        }
        assert!(n > 0, "connection closed without a reply: {text:?}");
    };
    assert_eq!(status, "413");
    let j: Value = serde_json::from_slice(&body).expect("a JSON error body");
    assert!(j["error"]["code"].is_string(), "{j}");
    assert_eq!(http.get("/healthz").await.status, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints_answer() {
    let server = start_default().await;
    let http = Http::new(server.http_addr);
    let r = http.get("/healthz").await;
    assert_eq!(r.status, 200);
    let r = http.get("/readyz").await;
    assert_eq!(r.status, 200);
    assert_json_error(&http.get("/nothing-here").await, 404, "unknown path");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_token_protects_the_api() {
    let admin = "an-admin-token-0123456789";
    let server = start(ServeConfig {
        admin_token: Some(admin.into()),
        ..ServeConfig::default()
    })
    .await;
    let mut http = Http::new(server.http_addr);
    assert_json_error(&http.get("/v1/caches").await, 401, "no token");
    assert_json_error(
        &http.post("/v1/caches", r#"{"name": "x"}"#).await,
        401,
        "no token on POST",
    );
    http.bearer = Some("wrong-token-wrong-token".into());
    assert_json_error(&http.get("/v1/caches").await, 401, "wrong token");
    // Health and metrics stay open for probes and scrapers.
    assert_eq!(http.get("/healthz").await.status, 200);
    assert_eq!(http.get("/metrics").await.status, 200);
    http.bearer = Some(admin.into());
    let r = http.get("/v1/caches").await;
    assert_eq!(r.status, 200);
    let j: Value = r.json();
    assert!(j["caches"].is_array());
    http.create_cache("ok").await;
    server.shutdown().await;
}
