//! Seeded random input: the decoder never panics, decodes the same however the
//! bytes are split, and the server survives random bytes over TCP.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stratus::resp::{Decoder, Limits, ProtocolError, Request};

const ALPHABET: &[u8] = b"*$\r\n\r\n-0123456789 \"'\\xabcSETGET";

/// Valid requests to mutate.
fn corpus() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = [
        &["SET", "k", "hello"][..],
        &["GET", "k"],
        &["HSET", "h", "f", "v", "g", "w"],
        &["MGET", "a", "b", "c"],
        &["EXPIRE", "k", "100", "NX"],
        &["SCAN", "0", "MATCH", "*", "COUNT", "5"],
        &["HELLO", "3"],
        &["CLIENT", "SETNAME", "x"],
        &["INCRBYFLOAT", "f", "1.5"],
        &["GETRANGE", "k", "0", "-1"],
        &["PING"],
    ]
    .iter()
    .map(|c| encode(c))
    .collect();
    out.push(b"SET k \"a b\\x41\"\r\n".to_vec());
    out.push(b"PING\r\nECHO 'x'\r\n".to_vec());
    out
}

/// Random input: raw bytes, protocol-ish alphabet soup, or mutated requests.
fn random_input(rng: &mut StdRng, corpus: &[Vec<u8>]) -> Vec<u8> {
    match rng.random_range(0..4) {
        0 => {
            let len = rng.random_range(0..200);
            (0..len).map(|_| rng.random()).collect()
        }
        1 => {
            let len = rng.random_range(0..200);
            (0..len)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
                .collect()
        }
        2 => {
            let mut v = corpus[rng.random_range(0..corpus.len())].clone();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..v.len());
                match rng.random_range(0..3) {
                    0 => v[at] = rng.random(),
                    1 => {
                        v.remove(at);
                    }
                    _ => v.insert(at, ALPHABET[rng.random_range(0..ALPHABET.len())]),
                }
                if v.is_empty() {
                    break;
                }
            }
            v
        }
        _ => {
            // Several whole requests, then a truncated one.
            let mut v = Vec::new();
            for _ in 0..rng.random_range(1..4) {
                v.extend(&corpus[rng.random_range(0..corpus.len())]);
            }
            let cut = rng.random_range(0..=v.len());
            v.truncate(cut);
            v
        }
    }
}

/// Decodes `input` fed in pieces of the given sizes; returns the requests and
/// the framing error, if any.
fn decode_in_pieces(
    d: &Decoder,
    input: &[u8],
    sizes: &mut dyn FnMut() -> usize,
) -> (Vec<Request>, Option<ProtocolError>) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut fed = 0;
    loop {
        loop {
            let before = buf.len();
            match d.decode(&mut buf) {
                Ok(Some(req)) => {
                    assert!(req.wire_len > 0 && req.wire_len <= before);
                    assert!(!req.args.is_empty());
                    out.push(req);
                }
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
        if fed == input.len() {
            return (out, None);
        }
        let n = sizes().max(1).min(input.len() - fed);
        buf.extend_from_slice(&input[fed..fed + n]);
        fed += n;
    }
}

#[test]
fn decoder_never_panics_and_ignores_how_bytes_are_split() {
    let d = Decoder::new(Limits {
        max_bulk_len: 1 << 16,
        max_args: 64,
        max_inline_len: 512,
    });
    let corpus = corpus();
    for seed in [1u64, 2, 3, 0x5eed, 0xdead_beef] {
        let mut rng = StdRng::seed_from_u64(seed);
        for round in 0..20_000 {
            let input = random_input(&mut rng, &corpus);
            let whole = decode_in_pieces(&d, &input, &mut || usize::MAX);
            let mut split_rng = StdRng::seed_from_u64(seed ^ round);
            let pieces = decode_in_pieces(&d, &input, &mut || split_rng.random_range(1..8));
            assert_eq!(
                pieces,
                whole,
                "seed {seed} round {round}: input {:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_over_tcp_never_panic_the_server() {
    let panics = Arc::new(AtomicUsize::new(0));
    let counter = panics.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        counter.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));

    let server = start(stratus::config::ServeConfig {
        max_bulk_len: 1 << 16,
        max_args: 64,
        ..stratus::config::ServeConfig::default()
    })
    .await;
    let addr = server.resp_addr;
    let corpus = corpus();
    let mut rng = StdRng::seed_from_u64(0x5742_7475);
    for _batch in 0..20 {
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let writes: Vec<Vec<u8>> = (0..rng.random_range(1..5))
                .map(|_| random_input(&mut rng, &corpus))
                .collect();
            tasks.push(tokio::spawn(async move {
                let mut c = Raw::connect(addr).await;
                for w in &writes {
                    if c.stream.try_write(w).is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                // Read whatever comes until the server closes or goes quiet.
                while let Read::Reply(_) = c.read_timeout(Duration::from_millis(50)).await {}
            }));
        }
        for t in tasks {
            t.await.expect("client task");
        }
        let mut probe = Raw::connect(addr).await;
        assert_eq!(probe.cmd(&["PING"]).await, simple("PONG"));
    }
    let mut probe = Raw::connect(addr).await;
    assert!(!probe.cmd(&["DBSIZE"]).await.is_error());
    tokio::time::timeout(DEADLINE, server.shutdown())
        .await
        .expect("shutdown");
    assert_eq!(panics.load(Ordering::SeqCst), 0, "a task panicked");
}
