//! Calibration of the ECPU cost model: measures the engine time of commands
//! (execute + encode the reply, in process, no network) and prints it next to
//! the work units the command table charges, so the table can be kept honest.
//!
//! `measured` = the command's time ÷ GET's time (1 unit = one simple GET, as
//! the model defines it); `model` = work units charged; `ratio` = measured ÷
//! model (1.0 = the table is exact; > 1 = the table undercharges).
//!
//! Run pinned to one CPU, medians of several rounds:
//! `cargo build --release -p stratus-loadtest && taskset -c 0 target/release/calibrate`

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use clap::Parser;
use stratus::cmd::{Ctx, execute, lookup};
use stratus::metering::work_milli;
use stratus::partition::Keyspace;
use stratus::resp::Protocol;
use stratus_loadtest::median;

#[derive(Parser)]
struct Args {
    /// Rounds per command (the median is reported).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Operations per round.
    #[arg(long, default_value_t = 200_000)]
    ops: usize,
}

const NOW: u64 = 1_800_000_000_000;
const KEYS: usize = 10_000;

/// A command to time: arguments for iteration `i`.
struct Case {
    name: &'static str,
    argv: Box<dyn Fn(usize) -> Vec<Bytes>>,
    /// Operations per round relative to `--ops` (heavy commands run fewer).
    scale: usize,
}

fn args(parts: &[String]) -> Vec<Bytes> {
    parts
        .iter()
        .map(|p| Bytes::copy_from_slice(p.as_bytes()))
        .collect()
}

fn populate(ks: &mut Keyspace) {
    let value = "v".repeat(100);
    let mut run = |argv: Vec<Bytes>| {
        let spec = lookup(&argv[0]).expect("command");
        let mut ctx = Ctx::new(ks, NOW);
        execute(spec, &mut ctx, &argv);
    };
    for i in 0..KEYS {
        run(args(&["set".into(), format!("key:{i}"), value.clone()]));
        run(args(&[
            "hset".into(),
            format!("h10:{i}"),
            "f".into(),
            "v".into(),
        ]));
    }
    for (name, fields) in [("h10", 10), ("h100", 100), ("h1000", 1000)] {
        for f in 0..fields {
            run(args(&[
                "hset".into(),
                name.into(),
                format!("field:{f}"),
                value.clone(),
            ]));
        }
    }
}

fn cases() -> Vec<Case> {
    let k = |i: usize| format!("key:{}", i % KEYS);
    let value = "v".repeat(100);
    let v2 = value.clone();
    vec![
        Case {
            name: "GET",
            argv: Box::new(move |i| args(&["get".into(), k(i)])),
            scale: 1,
        },
        Case {
            name: "SET 100 B",
            argv: Box::new(move |i| args(&["set".into(), k(i), value.clone()])),
            scale: 1,
        },
        Case {
            name: "INCR",
            argv: Box::new(move |i| args(&["incr".into(), format!("n:{}", i % KEYS)])),
            scale: 1,
        },
        Case {
            name: "EXISTS",
            argv: Box::new(move |i| args(&["exists".into(), k(i)])),
            scale: 1,
        },
        Case {
            name: "EXPIRE",
            argv: Box::new(move |i| args(&["expire".into(), k(i), "1000".into()])),
            scale: 1,
        },
        Case {
            name: "MGET 10 keys",
            argv: Box::new(move |i| {
                let mut v = vec!["mget".to_string()];
                v.extend((0..10).map(|j| k(i + j)));
                args(&v)
            }),
            scale: 4,
        },
        Case {
            name: "MSET 10 keys",
            argv: Box::new(move |i| {
                let mut v = vec!["mset".to_string()];
                for j in 0..10 {
                    v.push(k(i + j));
                    v.push(v2.clone());
                }
                args(&v)
            }),
            scale: 4,
        },
        Case {
            name: "HGET",
            argv: Box::new(|_| args(&["hget".into(), "h100".into(), "field:7".into()])),
            scale: 1,
        },
        Case {
            name: "HSET",
            argv: Box::new(|i| {
                args(&[
                    "hset".into(),
                    format!("h10:{}", i % KEYS),
                    "g".into(),
                    "w".into(),
                ])
            }),
            scale: 1,
        },
        Case {
            name: "HGETALL 10 fields",
            argv: Box::new(|_| args(&["hgetall".into(), "h10".into()])),
            scale: 4,
        },
        Case {
            name: "HGETALL 100 fields",
            argv: Box::new(|_| args(&["hgetall".into(), "h100".into()])),
            scale: 20,
        },
        Case {
            name: "HGETALL 1000 fields",
            argv: Box::new(|_| args(&["hgetall".into(), "h1000".into()])),
            scale: 200,
        },
        Case {
            name: "HKEYS 1000 fields",
            argv: Box::new(|_| args(&["hkeys".into(), "h1000".into()])),
            scale: 200,
        },
        Case {
            name: "HSCAN COUNT 100",
            argv: Box::new(|_| {
                args(&[
                    "hscan".into(),
                    "h1000".into(),
                    "0".into(),
                    "COUNT".into(),
                    "100".into(),
                ])
            }),
            scale: 50,
        },
        Case {
            name: "EVAL return 1",
            argv: Box::new(|_| args(&["eval".into(), "return 1".into(), "0".into()])),
            scale: 4,
        },
        Case {
            name: "EVAL 1 GET",
            argv: Box::new(move |i| {
                args(&[
                    "eval".into(),
                    "return redis.call('get', KEYS[1])".into(),
                    "1".into(),
                    k(i),
                ])
            }),
            scale: 4,
        },
        Case {
            name: "EVAL 10 INCR",
            argv: Box::new(|i| {
                args(&[
                    "eval".into(),
                    "for i = 1, 10 do redis.call('incr', KEYS[1]) end".into(),
                    "1".into(),
                    format!("n:{}", i % KEYS),
                ])
            }),
            scale: 10,
        },
        Case {
            name: "EVAL 10k-step loop",
            argv: Box::new(|_| {
                args(&[
                    "eval".into(),
                    "local x = 0 for i = 1, 5000 do x = x + i end return x".into(),
                    "0".into(),
                ])
            }),
            scale: 200,
        },
        // String functions and pattern matching: few Lua instructions (no
        // hook call, so no CPU-time floor), much work inside the library.
        Case {
            name: "EVAL upper 1 MiB x4",
            argv: Box::new(|_| {
                eval_with(
                    "local s = ARGV[1] for i = 1, 4 do s = s:upper():lower() end return #s",
                    "x".repeat(1 << 20),
                )
            }),
            scale: 20_000,
        },
        Case {
            name: "EVAL upper 64 B x50",
            argv: Box::new(|_| {
                eval_with(
                    "local s = ARGV[1] for i = 1, 50 do s = s:upper() end return #s",
                    "x".repeat(64),
                )
            }),
            scale: 200,
        },
        Case {
            name: "EVAL sub 1 MiB x8",
            argv: Box::new(|_| {
                eval_with(
                    "local s = ARGV[1] for i = 1, 8 do s = s:sub(2) end return #s",
                    "x".repeat(1 << 20),
                )
            }),
            scale: 20_000,
        },
        Case {
            name: "EVAL rep 8 MiB",
            argv: Box::new(|_| eval_with("return #string.rep(ARGV[1], 1048576)", "x".repeat(8))),
            scale: 20_000,
        },
        Case {
            name: "EVAL concat 100k x8B",
            argv: Box::new(|_| {
                eval_with(
                    "local t = {} for i = 1, 100 do t[i] = ARGV[1] end \
                     local u = {} for i = 1, 1000 do u[i] = table.concat(t) end return #u",
                    "abcdefgh".into(),
                )
            }),
            scale: 20_000,
        },
        Case {
            name: "EVAL format 1 MiB",
            argv: Box::new(|_| {
                eval_with(
                    "return #string.format('%s-%s-%d', ARGV[1], ARGV[1], 7)",
                    "x".repeat(1 << 19),
                )
            }),
            scale: 20_000,
        },
        Case {
            name: "EVAL find .-b 2k a",
            argv: Box::new(|_| eval_with("return string.find(ARGV[1], '.-b')", "a".repeat(2000))),
            scale: 20_000,
        },
        Case {
            name: "EVAL find a*b 2k a",
            argv: Box::new(|_| eval_with("return string.find(ARGV[1], 'a*b')", "a".repeat(2000))),
            scale: 20_000,
        },
        Case {
            name: "EVAL gsub %w+ 64 KiB",
            argv: Box::new(|_| {
                eval_with(
                    "return #string.gsub(ARGV[1], '(%w+)', '<%1>')",
                    "word ".repeat(13_000),
                )
            }),
            scale: 2_000,
        },
        Case {
            name: "EVAL gmatch %w+ 64 KiB",
            argv: Box::new(|_| {
                eval_with(
                    "local n = 0 for w in ARGV[1]:gmatch('%a+') do n = n + 1 end return n",
                    "word ".repeat(13_000),
                )
            }),
            scale: 2_000,
        },
        Case {
            name: "EVAL match key:id x20",
            argv: Box::new(|_| {
                eval_with(
                    "local n = 0 for i = 1, 20 do \
                     local k, id = string.match(ARGV[1], '^(%a+):(%d+)$') n = n + #k end return n",
                    "user:12345".into(),
                )
            }),
            scale: 20,
        },
    ]
}

/// `EVAL body 0 arg`.
fn eval_with(body: &str, arg: String) -> Vec<Bytes> {
    args(&["eval".into(), body.into(), "0".into(), arg])
}

fn main() {
    let a = Args::parse();
    let mut ks = Keyspace::whole();
    populate(&mut ks);
    let mut out = BytesMut::with_capacity(1 << 20);
    let mut rows = Vec::new();
    let mut get_ns = f64::NAN;
    for case in cases() {
        let ops = (a.ops / case.scale).max(100);
        let inputs: Vec<Vec<Bytes>> = (0..ops).map(|i| (case.argv)(i)).collect();
        let spec = lookup(&inputs[0][0]).expect("command in table");
        let mut per_op = Vec::new();
        let mut model_milli = 0;
        // One warm-up round (caches, allocator), then the timed rounds.
        for round in 0..=a.rounds {
            let start = Instant::now();
            let mut elements = 0;
            for argv in &inputs {
                let mut ctx = Ctx::new(&mut ks, NOW);
                let reply = execute(spec, &mut ctx, argv);
                elements += ctx.work;
                reply.encode(Protocol::Resp2, &mut out);
                out.clear();
            }
            if round > 0 {
                per_op.push(start.elapsed().as_nanos() as f64 / ops as f64);
            }
            let keys = spec.key_positions(&inputs[0]).count() as u64;
            model_milli = work_milli(spec, keys, elements / ops as u64);
        }
        let ns = median(per_op);
        if case.name == "GET" {
            get_ns = ns;
        }
        rows.push((case.name, ns, model_milli as f64 / 1000.0));
    }
    println!(
        "Engine time per command (execute + encode reply, in process), median of {} rounds",
        a.rounds
    );
    println!(
        "{:<22} {:>10} {:>10} {:>8} {:>7}",
        "command", "ns/op", "measured", "model", "ratio"
    );
    for (name, ns, model) in rows {
        let measured = ns / get_ns;
        println!(
            "{name:<22} {ns:>10.0} {measured:>10.2} {model:>8.2} {:>7.2}",
            measured / model
        );
    }
}
