//! `GET /metrics`: Prometheus text with commands, connections and items per
//! cache, validated by `promtool check metrics`.

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;

use common::*;
use tokio::io::AsyncWriteExt;

/// One sample: metric name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let mut labels = BTreeMap::new();
                for pair in body.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once("=\"").expect("label pair");
                    labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
                }
                (name.to_string(), labels)
            }
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

/// The sum of a metric's samples whose labels include `want`.
fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            want.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    (!matching.is_empty()).then(|| matching.iter().map(|s| s.value).sum())
}

async fn scrape(http: &Http) -> (String, Vec<Sample>) {
    let r = http.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.content_type.starts_with("text/plain"),
        "{}",
        r.content_type
    );
    let text = r.text();
    let samples = parse_exposition(&text);
    (text, samples)
}

async fn promtool_check(exposition: &str) -> (bool, String) {
    let mut child = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool must be installed (.ci/test installs it)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(exposition.as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    let report = format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exposition_passes_promtool_check_metrics() {
    let server = start_default().await;
    let http = Http::new(server.http_addr);
    // Empty server first.
    let (text, _) = scrape(&http).await;
    let (ok_, report) = promtool_check(&text).await;
    assert!(
        ok_,
        "promtool rejects the exposition of an idle server:\n{report}\n{text}"
    );

    // Then with every kind of activity.
    let token = http.create_cache("orders").await;
    let mut a = raw_auth(server.resp_addr, "orders", &token).await;
    let mut d = Raw::connect(server.resp_addr).await;
    for i in 0..20 {
        a.cmd(&["SET", &format!("k{i}"), "v", "PX", "100000"]).await;
        d.cmd(&["HSET", "h", &format!("f{i}"), "v"]).await;
    }
    a.cmd(&["GET", "k1"]).await;
    a.cmd(&["GET", "missing"]).await;
    a.cmd(&["NOSUCH"]).await;
    d.cmd(&["SET", "short", "v", "PX", "1"]).await;
    let mut bad = Raw::connect(server.resp_addr).await;
    bad.cmd(&["AUTH", "orders", "wrong"]).await;
    bad.send(b"*1\r\n+x\r\n").await;
    bad.read().await;
    http.create_cache("deleted-later").await;
    http.delete("/v1/caches/deleted-later").await;

    let (text, samples) = scrape(&http).await;
    let (ok_, report) = promtool_check(&text).await;
    assert!(ok_, "promtool rejects the exposition:\n{report}\n{text}");
    // Every sample has HELP and TYPE.
    for s in &samples {
        let base = s
            .name
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        assert!(
            text.contains(&format!("# HELP {base} "))
                || text.contains(&format!("# HELP {} ", s.name)),
            "no HELP for {}",
            s.name
        );
        assert!(s.name.starts_with("stratus_"), "{}", s.name);
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_connections_and_items_per_cache() {
    let server = start_default().await;
    let http = Http::new(server.http_addr);
    let token = http.create_cache("orders").await;

    let mut o1 = raw_auth(server.resp_addr, "orders", &token).await;
    let mut o2 = raw_auth(server.resp_addr, "orders", &token).await;
    let mut o3 = raw_auth(server.resp_addr, "orders", &token).await;
    let mut d = Raw::connect(server.resp_addr).await;
    for i in 0..30 {
        assert_eq!(o1.cmd(&["SET", &format!("k{i}"), "v"]).await, ok());
    }
    for i in 0..5 {
        assert_eq!(o2.cmd(&["HSET", "h", &format!("f{i}"), "v"]).await.int(), 1);
    }
    o3.cmd(&["GET", "k1"]).await;
    for i in 0..4 {
        assert_eq!(d.cmd(&["SET", &format!("d{i}"), "v"]).await, ok());
    }

    let (_, s) = scrape(&http).await;
    let orders = [("cache", "orders")];
    let default = [("cache", "default")];
    // Items: keys stored per cache.
    assert_eq!(value(&s, "stratus_items", &orders), Some(31.0));
    assert_eq!(value(&s, "stratus_items", &default), Some(4.0));
    // Connections bound to each cache now.
    assert_eq!(value(&s, "stratus_connections", &orders), Some(3.0));
    assert_eq!(value(&s, "stratus_connections", &default), Some(1.0));
    // Commands by cache and family (AUTH is not counted as a data command).
    assert_eq!(
        value(
            &s,
            "stratus_commands_total",
            &[("cache", "orders"), ("family", "string")]
        ),
        Some(31.0)
    );
    assert_eq!(
        value(
            &s,
            "stratus_commands_total",
            &[("cache", "orders"), ("family", "hash")]
        ),
        Some(5.0)
    );
    assert_eq!(
        value(
            &s,
            "stratus_commands_total",
            &[("cache", "default"), ("family", "string")]
        ),
        Some(4.0)
    );
    let accepted = value(&s, "stratus_connections_accepted_total", &[]).expect("accepted");
    assert!(accepted >= 4.0, "{accepted}");
    // The duration histogram counts each command once, by kind: 35 writes
    // (SET, HSET) and one read in orders; its +Inf bucket is the count, and
    // the buckets are cumulative.
    let durations = "stratus_command_duration_seconds";
    let count = |kind: &str| {
        value(
            &s,
            &format!("{durations}_count"),
            &[("cache", "orders"), ("kind", kind)],
        )
    };
    assert_eq!(count("write"), Some(35.0));
    assert_eq!(count("read"), Some(1.0));
    let buckets: Vec<&Sample> = s
        .iter()
        .filter(|x| x.name == format!("{durations}_bucket"))
        .filter(|x| x.labels.get("cache").map(String::as_str) == Some("orders"))
        .filter(|x| x.labels.get("kind").map(String::as_str) == Some("write"))
        .collect();
    assert_eq!(
        buckets.last().map(|b| b.labels["le"].as_str()),
        Some("+Inf")
    );
    assert_eq!(buckets.last().map(|b| b.value), Some(35.0));
    assert!(buckets.windows(2).all(|w| w[0].value <= w[1].value));
    let sum = value(&s, &format!("{durations}_sum"), &[("cache", "orders")]).expect("sum");
    assert!(sum > 0.0 && sum < 60.0, "{sum}");

    // The figures follow what happens next.
    drop(o2);
    drop(o3);
    o1.cmd(&["DEL", "k0", "k1"]).await;
    let http2 = &http;
    eventually("the connections gauge drops to 1", || async move {
        let (_, s) = scrape(http2).await;
        value(&s, "stratus_connections", &[("cache", "orders")]) == Some(1.0)
    })
    .await;
    let (_, s) = scrape(&http).await;
    assert_eq!(value(&s, "stratus_items", &orders), Some(29.0));
    assert_eq!(
        value(
            &s,
            "stratus_commands_total",
            &[("cache", "orders"), ("family", "keys")]
        ),
        Some(1.0)
    );
    server.shutdown().await;
}
