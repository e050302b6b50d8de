//! Calibration of the ECPU cost model: measures the engine time of commands
//! (execute + encode the reply, in process, no network) and prints it next to
//! what metering charges them, so the command table and the script metering
//! constants can be kept honest (DESIGN §5: 1 work unit ≈ one simple GET).
//!
//! For each case, in phases:
//! 1. **estimate**: run it a few times to size a round (`--round-ms` of
//!    CPU time);
//! 2. **rounds**: `--rounds` times, time a batch of GETs, the case, and
//!    GETs again; the round's measure is the case's time ÷ the mean of the
//!    two GET batches' times, so a machine that slows down between cases,
//!    or during one, moves both. The GETs read a keyspace of their own
//!    (`Baseline`): in the cases' keyspace, whose tables grew with each
//!    case's data, the GET baseline rose from 170 to 370 ns over one run,
//!    and each row's ratio with it. Time is this thread's CPU time,
//!    not wall time: another process taking the CPU does not count (its cache
//!    pollution still does). Cases that consume their data (DEL, SPOP,
//!    SETRANGE on a fresh key...) run untimed `prep` commands before each op
//!    and are timed op by op, minus the clock's own cost. Cases that hand
//!    values to the lazyfree thread (DEL of a big value) are timed in
//!    process CPU time until that thread has freed them, minus the cost of
//!    that wait: the background free is work the op caused;
//! 3. **charge**: every op is metered as the proxy meters it: work =
//!    `work_milli(row, keys, ctx.work)`, transfer = (request + reply bytes) /
//!    1024, ECPU = max(1, work, transfer).
//!
//! Columns: `measured` = median of the rounds' GET-units; `work`, `xfer`,
//! `ecpu` = charged per op, in ECPU; `ratio` = measured ÷ ECPU (1.0 = exact,
//! above 1 = undercharged). Flags: `UNDER` (ratio over 2), `OVER` (ratio
//! under 0.5 with work the charged dimension). Rows under 0.5 are as the
//! model means them when they are charged by bytes (`bytes`: transfer, or
//! the bytes a write creates, `FILL_KIB`) or by a minimum (`min`: 1 ECPU a
//! request, 1 per key named).
//!
//! SCAN and KEYS run in the proxy (`ConnOp`), not through `cmd::execute`; the
//! SCAN rows time `Keyspace::scan` directly, build the reply as the proxy
//! does and charge what the proxy charges. MULTI/EXEC are proxy-side too:
//! EXEC is charged the sum of what its queued commands are charged (the rows
//! here), so it has no row of its own.
//!
//! Run pinned to one CPU (the rounds' median is reported):
//! `cargo build --release -p stratus-loadtest && taskset -c 0 target/release/calibrate`
//! (`--markdown` prints the README's table, `--filter hash` some rows only).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use clap::Parser;
use stratus::cmd::keys::scan_work_milli;
use stratus::cmd::{CommandSpec, Ctx, execute, lookup};
use stratus::glob::glob_match;
use stratus::metering::{ecpu_milli, transfer_milli, work_milli};
use stratus::partition::scan::ScanCursor;
use stratus::partition::{Keyspace, key_slot, lazyfree};
use stratus::resp::{Protocol, Reply};
use stratus_loadtest::median;

#[derive(Parser)]
struct Args {
    /// Rounds per case (the median is reported).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// CPU milliseconds per round of a case.
    #[arg(long, default_value_t = 20)]
    round_ms: u64,
    /// Only the cases whose family or name contains this (case-insensitive).
    #[arg(long)]
    filter: Option<String>,
    /// Print the table as Markdown (for the README).
    #[arg(long)]
    markdown: bool,
    /// Keys in the GET baseline's keyspace (see `Baseline`).
    #[arg(long, default_value_t = 10_000)]
    base_keys: usize,
}

const NOW: u64 = 1_800_000_000_000;
/// Small keys of each kind (`key:i`, `h10:i`...), cycled through.
const KEYS: usize = 10_000;
/// GETs per baseline batch of a round.
const GET_OPS: usize = 20_000;
/// Most ops per round.
const MAX_OPS: usize = 200_000;
/// Keys in the one slot the SCAN case walks.
const SCAN_KEYS: usize = 300_000;

// ---- Cases ----

type Argv = Vec<Bytes>;

/// A command to time.
struct Case {
    family: &'static str,
    name: String,
    /// The command for op `i`.
    argv: Box<dyn Fn(usize) -> Argv>,
    /// Commands run untimed before op `i` (restoring what the op consumes);
    /// such cases are timed op by op.
    prep: Option<Box<dyn Fn(usize) -> Vec<Argv>>>,
    /// The script time limit (`Ctx::script_time_limit`), if not the default.
    limit: Option<Duration>,
    /// The op answers an error on purpose (a script stopped at its limit).
    error_ok: bool,
    /// Its work includes the bytes it creates, charged as a SET of them
    /// would be in transfer (`FILL_KIB`), not as CPU: under 0.5 it is
    /// flagged `bytes`.
    fill: bool,
    /// It hands values to the lazyfree thread: each op is timed in process
    /// CPU time until that thread has freed them (`lazyfree::sync`), so the
    /// background free it causes counts.
    lazyfree: bool,
}

impl Case {
    fn new(family: &'static str, name: &str, argv: impl Fn(usize) -> Argv + 'static) -> Case {
        Case {
            family,
            name: name.to_string(),
            argv: Box::new(argv),
            prep: None,
            limit: None,
            error_ok: false,
            fill: false,
            lazyfree: false,
        }
    }

    /// The same command line every time (arguments split on spaces).
    fn fixed(family: &'static str, name: &str, line: &str) -> Case {
        let argv = words(line);
        Case::new(family, name, move |_| argv.clone())
    }

    /// Commands (lines split on spaces) run untimed before each op.
    fn prep(mut self, lines: &[&str]) -> Case {
        let cmds: Vec<Argv> = lines.iter().map(|l| words(l)).collect();
        self.prep = Some(Box::new(move |_| cmds.clone()));
        self
    }

    fn fill(mut self) -> Case {
        self.fill = true;
        self
    }

    fn lazyfree(mut self) -> Case {
        self.lazyfree = true;
        self
    }

    fn limit_ms(mut self, ms: u64) -> Case {
        self.limit = Some(Duration::from_millis(ms));
        self.error_ok = true;
        self
    }
}

/// A command line split on spaces.
fn words(line: &str) -> Argv {
    line.split(' ')
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect()
}

/// Arguments from owned or borrowed strings.
fn argv<S: AsRef<[u8]>>(parts: &[S]) -> Argv {
    parts
        .iter()
        .map(|p| Bytes::copy_from_slice(p.as_ref()))
        .collect()
}

/// `EVAL body 0 arg...`, the arguments shared (not copied) between ops.
fn eval(family: &'static str, name: &str, body: &str, args: &[Bytes]) -> Case {
    let mut v = vec![Bytes::from_static(b"eval"), Bytes::from(body.to_string())];
    v.push(Bytes::from_static(b"0"));
    v.extend(args.iter().cloned());
    Case::new(family, name, move |_| v.clone())
}

/// `cmd key` and `n` generated arguments (`item(j)` each).
fn many(cmd: &str, key: &str, n: usize, item: impl Fn(usize) -> String) -> String {
    let mut line = format!("{cmd} {key}");
    for j in 0..n {
        line.push(' ');
        line.push_str(&item(j));
    }
    line
}

fn key(i: usize) -> String {
    format!("key:{}", i % KEYS)
}

fn string_cases() -> Vec<Case> {
    let f = "string";
    let v100 = Bytes::from("v".repeat(100));
    let v10k = Bytes::from("v".repeat(10 * 1024));
    let (a, b) = (v100.clone(), v100.clone());
    vec![
        Case::new(f, "GET", |i| argv(&["get".into(), key(i)])),
        Case::new(f, "SET 100 B", move |i| {
            vec!["set".into(), key(i).into(), a.clone()]
        }),
        Case::new(f, "SET 10 KiB", move |i| {
            vec![
                "set".into(),
                format!("s10k:{}", i % 100).into(),
                v10k.clone(),
            ]
        }),
        Case::fixed(f, "GET 1 MiB", "get str:1m"),
        Case::new(f, "INCR", |i| {
            argv(&["incr".into(), format!("n:{}", i % KEYS)])
        }),
        Case::new(f, "APPEND 10 B", |i| {
            argv(&[
                "append".into(),
                format!("app:{}", i % KEYS),
                "0123456789".into(),
            ])
        }),
        Case::new(f, "STRLEN", |i| argv(&["strlen".into(), key(i)])),
        Case::fixed(f, "GETRANGE 100 B of 1 MiB", "getrange str:1m 1000 1099"),
        Case::fixed(f, "SETRANGE 1 MiB offset", "setrange sr:new 1048576 x")
            .prep(&["del sr:new"])
            .fill(),
        Case::fixed(f, "SETRANGE in place", "setrange str:1m 1000 abcdefgh"),
        Case::new(f, "MGET 10 keys", |i| {
            let mut v = vec!["mget".to_string()];
            v.extend((0..10).map(|j| key(i + j)));
            argv(&v)
        }),
        Case::new(f, "MSET 10 keys", move |i| {
            let mut v = vec![Bytes::from_static(b"mset")];
            for j in 0..10 {
                v.push(key(i + j).into());
                v.push(b.clone());
            }
            v
        }),
    ]
}

fn keys_cases() -> Vec<Case> {
    let f = "keys";
    vec![
        Case::new(f, "EXISTS", |i| argv(&["exists".into(), key(i)])),
        Case::new(f, "TYPE", |i| argv(&["type".into(), key(i)])),
        Case::new(f, "TTL", |i| argv(&["ttl".into(), key(i)])),
        Case::new(f, "EXPIRE", |i| {
            argv(&["expire".into(), key(i), "100000".into()])
        }),
        Case::new(f, "RENAME", |i| {
            argv(&["rename", ["rn:a", "rn:b"][i % 2], ["rn:b", "rn:a"][i % 2]])
        }),
        Case::fixed(f, "DEL string 100 B", "del del:s").prep(&["set del:s 0123456789"]),
        Case::fixed(f, "DEL set of 100k (lazyfree)", "del del:big")
            .prep(&["copy s100k del:big replace"])
            .lazyfree(),
        Case::fixed(f, "DEL string 1 MiB (lazyfree)", "del del:str")
            .prep(&["copy str:1m del:str replace"])
            .lazyfree(),
        Case::fixed(f, "UNLINK hash of 1000 (lazyfree)", "unlink del:h")
            .prep(&["copy h1000 del:h replace"])
            .lazyfree(),
        Case::fixed(f, "COPY string 100 B", "copy key:1 cp:s replace"),
        Case::fixed(f, "COPY string 1 MiB", "copy str:1m cp:1m replace"),
        Case::fixed(f, "COPY hash 1000 fields", "copy h1000 cp:h replace"),
        Case::fixed(f, "COPY set 100k", "copy s100k cp:set replace"),
        Case::fixed(f, "COPY zset 1000", "copy z1000 cp:z replace"),
    ]
}

fn hash_cases() -> Vec<Case> {
    let f = "hash";
    vec![
        Case::fixed(f, "HGET", "hget h100 field:7"),
        Case::new(f, "HSET", |i| {
            argv(&[
                "hset".into(),
                format!("h10:{}", i % KEYS),
                "g".into(),
                "w".into(),
            ])
        }),
        Case::fixed(
            f,
            "HMGET 10 fields",
            "hmget h100 field:1 field:2 field:3 field:4 field:5 field:6 field:7 field:8 field:9 field:10",
        ),
        Case::fixed(f, "HINCRBY", "hincrby hn counter 1"),
        Case::fixed(f, "HLEN", "hlen h1000"),
        Case::fixed(f, "HDEL", "hdel hd f").prep(&["hset hd f v"]),
        Case::fixed(
            f,
            "HSET 1000 new fields",
            &many("hset", "hw", 1000, |j| format!("field:{j} value")),
        )
        .prep(&["del hw"]),
        Case::fixed(
            f,
            "HDEL 1000 fields",
            &many("hdel", "hw", 1000, |j| format!("field:{j}")),
        )
        .prep(&[
            "del hw",
            &many("hset", "hw", 1000, |j| format!("field:{j} value")),
        ]),
        Case::fixed(
            f,
            "HMGET 1000 fields",
            &many("hmget", "h1000", 1000, |j| format!("field:{j}")),
        ),
        Case::fixed(f, "HGETALL 10 fields", "hgetall h10"),
        Case::fixed(f, "HGETALL 100 fields", "hgetall h100"),
        Case::fixed(f, "HGETALL 1000 fields", "hgetall h1000"),
        Case::fixed(f, "HGETALL 1000 small fields", "hgetall hs1000"),
        Case::fixed(f, "HKEYS 1000 fields", "hkeys h1000"),
        Case::fixed(f, "HVALS 1000 fields", "hvals h1000"),
        Case::fixed(f, "HSCAN 1000 COUNT 100", "hscan h1000 0 COUNT 100"),
        Case::fixed(
            f,
            "HSCAN 1000 COUNT 100 NOVALUES",
            "hscan h1000 0 COUNT 100 NOVALUES",
        ),
        Case::fixed(f, "HSCAN 100k COUNT 10", "hscan h100k 0 COUNT 10"),
        Case::fixed(
            f,
            "HSCAN 100k MATCH nomatch COUNT 10",
            "hscan h100k 0 MATCH nomatch COUNT 10",
        ),
        Case::fixed(f, "HRANDFIELD 1000 count 100", "hrandfield h1000 100"),
        Case::fixed(
            f,
            "HRANDFIELD 1000 -100 WITHVALUES",
            "hrandfield h1000 -100 WITHVALUES",
        ),
        Case::fixed(f, "HRANDFIELD 100k count 10", "hrandfield h100k 10"),
    ]
}

fn list_cases() -> Vec<Case> {
    let f = "list";
    vec![
        Case::new(f, "LPUSH / RPOP", |i| {
            if i % 2 == 0 {
                argv(&["lpush", "lq", "0123456789"])
            } else {
                argv(&["rpop", "lq"])
            }
        }),
        Case::fixed(f, "LLEN", "llen l100k"),
        Case::fixed(
            f,
            "RPUSH 1000 elements",
            &many("rpush", "lw", 1000, |j| format!("element:{j}")),
        )
        .prep(&["del lw"]),
        Case::fixed(f, "LINDEX middle of 100k", "lindex l100k 50000"),
        Case::fixed(f, "LSET middle of 100k", "lset l100k 50000 abcdefgh"),
        Case::fixed(f, "LRANGE 0 9 of 100k", "lrange l100k 0 9"),
        Case::fixed(f, "LRANGE 100 mid 100k", "lrange l100k 50000 50099"),
        Case::fixed(f, "LRANGE 0 -1 of 1000", "lrange l1000 0 -1"),
        Case::fixed(f, "LPOS nomatch 100k", "lpos l100k nomatch"),
        Case::fixed(f, "LREM nomatch 100k", "lrem l100k 0 nomatch"),
        Case::fixed(f, "LINSERT nomatch 100k", "linsert l100k BEFORE nomatch x"),
        Case::fixed(f, "LPOP 100 of 1000", "lpop lt 100").prep(&["copy l1000 lt replace"]),
        Case::fixed(f, "LTRIM 500 of 1000", "ltrim lt 500 -1").prep(&["copy l1000 lt replace"]),
        Case::fixed(f, "LMPOP 100 of 1000", "lmpop 1 lt LEFT COUNT 100")
            .prep(&["copy l1000 lt replace"]),
    ]
}

fn set_cases() -> Vec<Case> {
    let f = "set";
    vec![
        Case::new(f, "SADD", |i| {
            argv(&["sadd".into(), format!("sa:{}", i % KEYS), "member".into()])
        }),
        Case::fixed(f, "SISMEMBER", "sismember s1000 m:7"),
        Case::fixed(
            f,
            "SADD 1000 new members",
            &many("sadd", "sw", 1000, |j| format!("member:{j}")),
        )
        .prep(&["del sw"]),
        Case::fixed(
            f,
            "SREM 1000 members",
            &many("srem", "sw", 1000, |j| format!("member:{j}")),
        )
        .prep(&[
            "del sw",
            &many("sadd", "sw", 1000, |j| format!("member:{j}")),
        ]),
        Case::fixed(
            f,
            "SMISMEMBER 1000",
            &many("smismember", "s1000", 1000, |j| format!("m:{j}")),
        ),
        Case::fixed(f, "SCARD", "scard s100k"),
        Case::fixed(f, "SMEMBERS 1000", "smembers s1000"),
        Case::fixed(f, "SMEMBERS 100k", "smembers s100k"),
        Case::fixed(f, "SINTER 1000 1000", "sinter s1000 s1000b"),
        Case::fixed(f, "SINTER 100k 100k", "sinter s100k s100kb"),
        Case::fixed(f, "SUNION 1000 1000", "sunion s1000 s1000b"),
        Case::fixed(f, "SDIFF 1000 1000", "sdiff s1000 s1000b"),
        Case::fixed(f, "SINTERSTORE 100k 100k", "sinterstore sdst s100k s100kb"),
        Case::fixed(f, "SUNIONSTORE 1000 1000", "sunionstore sdst s1000 s1000b"),
        Case::fixed(f, "SINTERCARD 100k 100k", "sintercard 2 s100k s100kb"),
        Case::fixed(f, "SSCAN 1000 COUNT 100", "sscan s1000 0 COUNT 100"),
        Case::fixed(f, "SSCAN 100k COUNT 10", "sscan s100k 0 COUNT 10"),
        Case::fixed(
            f,
            "SSCAN 100k MATCH nomatch COUNT 10",
            "sscan s100k 0 MATCH nomatch COUNT 10",
        ),
        Case::fixed(f, "SRANDMEMBER 1000 count 100", "srandmember s1000 100"),
        Case::fixed(f, "SRANDMEMBER 1000 -100", "srandmember s1000 -100"),
        Case::fixed(f, "SRANDMEMBER 100k -100", "srandmember s100k -100"),
        Case::fixed(f, "SPOP 100 of 1000", "spop sp 100").prep(&["copy s1000 sp replace"]),
    ]
}

fn zset_cases() -> Vec<Case> {
    let f = "sortedset";
    vec![
        Case::new(f, "ZADD new score", |i| {
            argv(&[
                "zadd".into(),
                "z1000".into(),
                (i % 5000).to_string(),
                format!("m:{}", i % 1000),
            ])
        }),
        Case::fixed(f, "ZADD creating the key", "zadd zn 1 m").prep(&["del zn"]),
        Case::fixed(f, "ZSCORE", "zscore z100k m:77"),
        Case::new(f, "ZADD / ZREM in 100k", |i| {
            if i % 2 == 0 {
                argv(&["zadd", "z100k", "12345.5", "new"])
            } else {
                argv(&["zrem", "z100k", "new"])
            }
        }),
        Case::fixed(
            f,
            "ZADD 1000 new members",
            &many("zadd", "zw", 1000, |j| format!("{j} member:{j}")),
        )
        .prep(&["del zw"]),
        Case::fixed(
            f,
            "ZREM 1000 members",
            &many("zrem", "zw", 1000, |j| format!("member:{j}")),
        )
        .prep(&[
            "del zw",
            &many("zadd", "zw", 1000, |j| format!("{j} member:{j}")),
        ]),
        Case::fixed(
            f,
            "ZMSCORE 1000",
            &many("zmscore", "z1000", 1000, |j| format!("m:{j}")),
        ),
        Case::fixed(f, "ZRANK 100k", "zrank z100k m:50000"),
        Case::fixed(f, "ZINCRBY 100k", "zincrby z100k 0 m:777"),
        Case::fixed(f, "ZCOUNT 100k", "zcount z100k 1000 90000"),
        Case::fixed(f, "ZRANGE 0 9 of 100k", "zrange z100k 0 9"),
        Case::fixed(f, "ZRANGE 10 at rank 50k", "zrange z100k 50000 50009"),
        Case::fixed(f, "ZRANGE 0 -1 of 1000", "zrange z1000 0 -1"),
        Case::fixed(
            f,
            "ZRANGE 0 -1 WITHSCORES 1000",
            "zrange z1000 0 -1 WITHSCORES",
        ),
        Case::fixed(
            f,
            "ZRANGEBYSCORE 100 of 100k",
            "zrangebyscore z100k 1000 1099",
        ),
        Case::fixed(
            f,
            "ZUNIONSTORE 1000 1000",
            "zunionstore zdst 2 z1000 z1000b",
        ),
        Case::fixed(
            f,
            "ZINTERSTORE 1000 1000",
            "zinterstore zdst 2 z1000 z1000b",
        ),
        Case::fixed(
            f,
            "ZUNIONSTORE 100k 1000",
            "zunionstore zdst 2 z100k z1000b",
        ),
        Case::fixed(
            f,
            "ZINTERSTORE 100k 100k",
            "zinterstore zdst 2 z100k z100kb",
        ),
        Case::fixed(f, "ZUNION 1000 1000", "zunion 2 z1000 z1000b"),
        Case::fixed(f, "ZINTER 100k 100k", "zinter 2 z100k z100kb"),
        Case::fixed(f, "ZDIFF 100k 1000", "zdiff 2 z100k z1000b"),
        Case::fixed(f, "ZDIFFSTORE 1000 1000", "zdiffstore zdst 2 z1000 z1000b"),
        Case::fixed(f, "ZINTERCARD 100k 100k", "zintercard 2 z100k z100kb"),
        Case::fixed(
            f,
            "ZRANGESTORE 1000 of 100k",
            "zrangestore zdst z100k 0 999",
        ),
        Case::fixed(f, "ZMPOP 100 of 1000", "zmpop 1 zt MIN COUNT 100")
            .prep(&["copy z1000 zt replace"]),
        Case::fixed(f, "ZSCAN 1000 COUNT 100", "zscan z1000 0 COUNT 100"),
        Case::fixed(f, "ZSCAN 100k COUNT 10", "zscan z100k 0 COUNT 10"),
        Case::fixed(
            f,
            "ZSCAN 100k MATCH nomatch COUNT 10",
            "zscan z100k 0 MATCH nomatch COUNT 10",
        ),
        Case::fixed(f, "ZRANDMEMBER 1000 count 100", "zrandmember z1000 100"),
        Case::fixed(f, "ZRANDMEMBER 100k count 10", "zrandmember z100k 10"),
        Case::fixed(f, "ZRANDMEMBER 100k count 100", "zrandmember z100k 100"),
        Case::fixed(
            f,
            "ZRANDMEMBER 1000 -100 WITHSCORES",
            "zrandmember z1000 -100 WITHSCORES",
        ),
        Case::fixed(f, "ZRANDMEMBER 100k -100", "zrandmember z100k -100"),
        Case::fixed(
            f,
            "ZRANDMEMBER 100k -100 WITHSCORES",
            "zrandmember z100k -100 WITHSCORES",
        ),
        Case::fixed(f, "ZPOPMIN 100 of 1000", "zpopmin zp 100").prep(&["copy z1000 zp replace"]),
        Case::fixed(f, "ZREMRANGEBYRANK 500 of 1000", "zremrangebyrank zp 0 499")
            .prep(&["copy z1000 zp replace"]),
    ]
}

fn hll_cases() -> Vec<Case> {
    let f = "hyperloglog";
    vec![
        Case::new(f, "PFADD dense 1 element", |i| {
            argv(&["pfadd".into(), "hll:1".into(), format!("e{i}")])
        }),
        Case::new(f, "PFADD sparse 1 element", |i| {
            argv(&["pfadd".into(), "hll:sp".into(), format!("e{i}")])
        })
        .prep(&["copy hll:sparse hll:sp replace"]),
        Case::fixed(
            f,
            "PFADD dense 1000 elements",
            &many("pfadd", "hll:2", 1000, |j| format!("x{j}")),
        ),
        Case::fixed(f, "PFCOUNT cached", "pfcount hll:1"),
        Case::fixed(f, "PFCOUNT stale dense", "pfcount hll:st")
            .prep(&["copy hll:stale hll:st replace"]),
        Case::fixed(f, "PFCOUNT 3 dense keys", "pfcount hll:1 hll:2 hll:3"),
        Case::fixed(
            f,
            "PFMERGE 3 dense keys",
            "pfmerge hll:dst hll:1 hll:2 hll:3",
        ),
    ]
}

fn bitmap_cases() -> Vec<Case> {
    let f = "bitmap";
    vec![
        Case::new(f, "SETBIT", |i| {
            argv(&[
                "setbit".into(),
                "bits".into(),
                (i % 8192).to_string(),
                "1".into(),
            ])
        }),
        Case::fixed(f, "GETBIT", "getbit str:1m 12345"),
        Case::fixed(f, "SETBIT 8 Mbit offset (1 MiB)", "setbit sb:new 8388608 1")
            .prep(&["del sb:new"])
            .fill(),
        Case::fixed(f, "BITCOUNT 1 KiB", "bitcount str:1m 0 1023"),
        Case::fixed(f, "BITCOUNT 1 MiB", "bitcount str:1m"),
        Case::fixed(f, "BITPOS 1 MiB (not found)", "bitpos zero:1m 1"),
        Case::fixed(f, "BITOP AND 1 MiB x2", "bitop and bdst str:1m str:1mb").fill(),
        Case::fixed(f, "BITOP NOT 1 MiB", "bitop not bdst str:1m").fill(),
    ]
}

fn stream_cases() -> Vec<Case> {
    let f = "stream";
    vec![
        Case::fixed(f, "XADD", "xadd xs * f v"),
        Case::fixed(f, "XADD MAXLEN 1000", "xadd xcap MAXLEN 1000 * f v"),
        Case::fixed(f, "XLEN", "xlen x1000"),
        Case::fixed(f, "XRANGE COUNT 10", "xrange x1000 - + COUNT 10"),
        Case::fixed(f, "XRANGE 1000 entries", "xrange x1000 - +"),
        Case::fixed(f, "XREVRANGE COUNT 100", "xrevrange x1000 + - COUNT 100"),
        Case::fixed(f, "XREAD COUNT 100", "xread COUNT 100 STREAMS x1000 0"),
        Case::fixed(
            f,
            "XREADGROUP 100 pending",
            "xreadgroup GROUP g c COUNT 100 STREAMS xg 0",
        ),
        Case::fixed(f, "XPENDING 100", "xpending xg g - + 100"),
        Case::fixed(f, "XPENDING summary of 1000", "xpending xg g"),
        Case::new(f, "XCLAIM 100", |i| {
            let mut v = vec!["xclaim".to_string(), "xg".into(), "g".into()];
            v.push(["c2", "c"][i % 2].into());
            v.push("0".into());
            v.extend((1..=100).map(|s| format!("{}-{s}", NOW)));
            argv(&v)
        }),
        Case::new(f, "XAUTOCLAIM 100", |i| {
            argv(&[
                "xautoclaim",
                "xg",
                "g",
                ["c2", "c"][i % 2],
                "0",
                "0-0",
                "COUNT",
                "100",
            ])
        }),
        Case::fixed(
            f,
            "XADD 20 fields",
            &many("xadd", "xs20", 20, |j| format!("f{j} v{j}")).replacen("xs20", "xs20 *", 1),
        ),
        Case::fixed(f, "XINFO STREAM 1000", "xinfo STREAM x1000"),
        Case::fixed(f, "XTRIM 500 of 1000", "xtrim xt MAXLEN 500").prep(&["copy x1000 xt replace"]),
        Case::fixed(
            f,
            "XDEL 100",
            &many("xdel", "xt", 100, |j| format!("{NOW}-{}", 2 * j)),
        )
        .prep(&["copy x1000 xt replace"]),
        Case::fixed(
            f,
            "XACK 100",
            &many("xack", "xa g", 100, |j| format!("{NOW}-{}", 2 * j)),
        )
        .prep(&["copy xg xa replace"]),
    ]
}

fn script_cases() -> Vec<Case> {
    let f = "scripting";
    let s = |t: &str| Bytes::from(t.to_string());
    let mib = Bytes::from("x".repeat(1 << 20));
    let words64k = Bytes::from("word ".repeat(13_000));
    let a2k = Bytes::from("a".repeat(2000));
    vec![
        eval(f, "EVAL return 1", "return 1", &[]),
        Case::new(f, "EVAL 1 GET", |i| {
            argv(&[
                "eval".into(),
                "return redis.call('get', KEYS[1])".into(),
                "1".into(),
                key(i),
            ])
        }),
        Case::new(f, "EVAL 10 INCR", |i| {
            argv(&[
                "eval".into(),
                "for i = 1, 10 do redis.call('incr', KEYS[1]) end".into(),
                "1".into(),
                format!("n:{}", i % KEYS),
            ])
        }),
        Case::fixed(
            f,
            "EVAL HGETALL 1000",
            "eval return#redis.call('hgetall',KEYS[1]) 1 h1000",
        ),
        Case::fixed(
            f,
            "EVAL HKEYS 1000 returned",
            "eval return(redis.call('hkeys',KEYS[1])) 1 h1000",
        ),
        eval(
            f,
            "EVAL 5k function calls",
            "local function f(a) return a + 1 end local x = 0 \
             for i = 1, 5000 do x = f(x) end return x",
            &[],
        ),
        eval(
            f,
            "EVAL return 10k-element table",
            "local t = {} for i = 1, 10000 do t[i] = i end return t",
            &[],
        ),
        eval(
            f,
            "EVAL 5k-iteration loop",
            "local x = 0 for i = 1, 5000 do x = x + i end return x",
            &[],
        ),
        eval(
            f,
            "EVAL table build 10k",
            "local t = {} for i = 1, 10000 do t[i] = i end return #t",
            &[],
        ),
        eval(
            f,
            "EVAL .. concat 1k x 1 KiB",
            "local s = '' for i = 1, 1000 do s = s .. ARGV[1] end return #s",
            &[s(&"y".repeat(1024))],
        ),
        // String functions and pattern matching: few Lua instructions, much
        // work inside the library.
        eval(
            f,
            "EVAL upper 1 MiB x4",
            "local s = ARGV[1] for i = 1, 4 do s = s:upper():lower() end return #s",
            std::slice::from_ref(&mib),
        ),
        eval(
            f,
            "EVAL upper 64 B x50",
            "local s = ARGV[1] for i = 1, 50 do s = s:upper() end return #s",
            &[s(&"x".repeat(64))],
        ),
        eval(
            f,
            "EVAL sub 1 MiB x8",
            "local s = ARGV[1] for i = 1, 8 do s = s:sub(2) end return #s",
            std::slice::from_ref(&mib),
        ),
        eval(
            f,
            "EVAL rep 8 MiB",
            "return #string.rep(ARGV[1], 1048576)",
            &[s("abcdefgh")],
        ),
        eval(
            f,
            "EVAL concat 100k x 8 B",
            "local t = {} for i = 1, 100 do t[i] = ARGV[1] end \
             local u = {} for i = 1, 1000 do u[i] = table.concat(t) end return #u",
            &[s("abcdefgh")],
        ),
        eval(
            f,
            "EVAL format 1 MiB",
            "return #string.format('%s-%s-%d', ARGV[1], ARGV[1], 7)",
            &[Bytes::from("x".repeat(1 << 19))],
        ),
        eval(
            f,
            "EVAL find .-b 2k a",
            "return string.find(ARGV[1], '.-b')",
            std::slice::from_ref(&a2k),
        ),
        eval(
            f,
            "EVAL find a*b 2k a",
            "return string.find(ARGV[1], 'a*b')",
            &[a2k],
        ),
        eval(
            f,
            "EVAL gsub %w+ 64 KiB",
            "return #string.gsub(ARGV[1], '(%w+)', '<%1>')",
            std::slice::from_ref(&words64k),
        ),
        eval(
            f,
            "EVAL gmatch %a+ 64 KiB",
            "local n = 0 for w in ARGV[1]:gmatch('%a+') do n = n + 1 end return n",
            &[words64k],
        ),
        eval(
            f,
            "EVAL match key:id x20",
            "local n = 0 for i = 1, 20 do \
             local k, id = string.match(ARGV[1], '^(%a+):(%d+)$') n = n + #k end return n",
            &[s("user:12345")],
        ),
        // The isolation issue's reproducers.
        eval(
            f,
            "repro: find a* x40 .. b (200 ms limit)",
            "local n=tonumber(ARGV[1]) return string.find(string.rep(\"a\",n), string.rep(\"a*\",n)..\"b\")",
            &[s("40")],
        )
        .limit_ms(200),
        eval(
            f,
            "repro: find .-b 60000 a (200 ms limit)",
            "return string.find(string.rep(\"a\",ARGV[1]), \".-b\")",
            &[s("60000")],
        )
        .limit_ms(200),
        eval(
            f,
            "repro: upper 8 MiB x20",
            "local s = string.rep('a', 8388608) local n = 0 \
             for i = 1, 20 do n = n + #string.upper(s) end return n",
            &[],
        ),
    ]
}

fn all_cases() -> Vec<Case> {
    [
        string_cases(),
        keys_cases(),
        hash_cases(),
        list_cases(),
        set_cases(),
        zset_cases(),
        hll_cases(),
        bitmap_cases(),
        stream_cases(),
        script_cases(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

// ---- Data ----

/// Runs one command untimed; panics on an error reply (a broken setup).
fn run(ks: &mut Keyspace, argv: &[Bytes]) -> Reply {
    let spec = lookup(&argv[0]).expect("command in table");
    let mut ctx = Ctx::new(ks, NOW);
    let reply = execute(spec, &mut ctx, argv);
    if let Reply::Error(e) = &reply {
        panic!("setup {:?}: {e}", String::from_utf8_lossy(&argv[0]));
    }
    reply
}

/// `cmd key` followed by `items` (already flattened), in batches of 1000.
fn fill(ks: &mut Keyspace, cmd: &str, key: &str, items: impl Iterator<Item = String>) {
    let items: Vec<String> = items.collect();
    let per = if cmd == "zadd" || cmd == "hset" { 2 } else { 1 };
    for chunk in items.chunks(1000 * per) {
        let mut v = vec![cmd.to_string(), key.to_string()];
        v.extend(chunk.iter().cloned());
        run(ks, &argv(&v));
    }
}

fn populate(ks: &mut Keyspace) {
    let v100 = "v".repeat(100);
    for i in 0..KEYS {
        run(ks, &argv(&["set".into(), key(i), v100.clone()]));
        run(
            ks,
            &argv(&["hset".into(), format!("h10:{i}"), "f".into(), "v".into()]),
        );
    }
    for (name, n) in [("h10", 10), ("h100", 100), ("h1000", 1000)] {
        let fields = (0..n).flat_map(|f| [format!("field:{f}"), v100.clone()]);
        fill(ks, "hset", name, fields);
    }
    fill(
        ks,
        "hset",
        "hs1000",
        (0..1000).flat_map(|f| [format!("f{f}"), "v".into()]),
    );
    fill(
        ks,
        "hset",
        "h100k",
        (0..100_000).flat_map(|f| [format!("field:{f}"), "value".into()]),
    );
    fill(
        ks,
        "rpush",
        "l1000",
        (0..1000).map(|i| format!("element:{i}")),
    );
    fill(
        ks,
        "rpush",
        "l100k",
        (0..100_000).map(|i| format!("element:{i}")),
    );
    fill(ks, "sadd", "s1000", (0..1000).map(|i| format!("m:{i}")));
    fill(ks, "sadd", "s1000b", (500..1500).map(|i| format!("m:{i}")));
    fill(ks, "sadd", "s100k", (0..100_000).map(|i| format!("m:{i}")));
    fill(
        ks,
        "sadd",
        "s100kb",
        (50_000..150_000).map(|i| format!("m:{i}")),
    );
    let zmembers = |r: std::ops::Range<usize>| r.flat_map(|i| [i.to_string(), format!("m:{i}")]);
    fill(ks, "zadd", "z1000", zmembers(0..1000));
    fill(ks, "zadd", "z1000b", zmembers(500..1500));
    fill(ks, "zadd", "z100k", zmembers(0..100_000));
    fill(ks, "zadd", "z100kb", zmembers(50_000..150_000));
    fill(ks, "pfadd", "hll:sparse", (0..100).map(|i| format!("s{i}")));
    for (k, seed) in [("hll:1", 1), ("hll:2", 2), ("hll:3", 3), ("hll:stale", 4)] {
        fill(ks, "pfadd", k, (0..100_000).map(|i| format!("{seed}:{i}")));
        run(ks, &argv(&["pfcount", k]));
    }
    // A new element that changes a register leaves the cached count stale.
    let mut i = 0;
    while run(
        ks,
        &argv(&["pfadd".into(), "hll:stale".into(), format!("x{i}")]),
    ) == Reply::Int(0)
    {
        i += 1;
    }
    let mib: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mibb: Vec<u8> = mib.iter().map(|b| b.rotate_left(3)).collect();
    run(
        ks,
        &[Bytes::from("set"), Bytes::from("str:1m"), Bytes::from(mib)],
    );
    run(
        ks,
        &[
            Bytes::from("set"),
            Bytes::from("str:1mb"),
            Bytes::from(mibb),
        ],
    );
    run(
        ks,
        &[
            Bytes::from("set"),
            Bytes::from("zero:1m"),
            Bytes::from(vec![0u8; 1 << 20]),
        ],
    );
    for i in 0..1000 {
        run(
            ks,
            &argv(&[
                "xadd".into(),
                "x1000".into(),
                "*".into(),
                "field".into(),
                format!("value:{i}"),
                "n".into(),
                i.to_string(),
            ]),
        );
        run(
            ks,
            &argv(&[
                "xadd".into(),
                "xg".into(),
                "*".into(),
                "f".into(),
                format!("v{i}"),
            ]),
        );
    }
    run(ks, &words("xgroup CREATE xg g 0"));
    run(ks, &words("xreadgroup GROUP g c STREAMS xg >"));
    run(ks, &words("set rn:a x"));
}

// ---- Timing ----

/// This thread's CPU time, nanoseconds.
fn cpu_ns() -> u64 {
    cpu_time::ThreadTime::now().as_duration().as_nanos() as u64
}

/// This process's CPU time (every thread's, the lazyfree one included),
/// nanoseconds.
fn process_ns() -> u64 {
    cpu_time::ProcessTime::now().as_duration().as_nanos() as u64
}

/// The process CPU time of reading that clock twice around an empty
/// `lazyfree::sync` (two wake-ups of a thread), nanoseconds (median of
/// many): what a lazyfree case's timing adds to the op itself.
fn sync_cost() -> u64 {
    let samples: Vec<f64> = (0..1001)
        .map(|_| {
            let a = process_ns();
            lazyfree::sync();
            (process_ns() - a) as f64
        })
        .collect();
    median(samples) as u64
}

/// What metering charges one op, milli-ECPU.
#[derive(Default, Clone, Copy)]
struct Charge {
    work: u64,
    /// The part of `work` the keys named account for (1 per key).
    keys: u64,
    transfer: u64,
    ecpu: u64,
}

/// Bytes a request takes on the wire (RESP multibulk).
fn wire_len(argv: &[Bytes]) -> u64 {
    let mut n = format!("*{}\r\n", argv.len()).len();
    for a in argv {
        n += format!("${}\r\n", a.len()).len() + a.len() + 2;
    }
    n as u64
}

/// One prepared op: its row, its arguments and what the proxy knows before
/// running it.
struct Op {
    spec: &'static CommandSpec,
    argv: Argv,
    keys: u64,
    request: u64,
}

struct Bench {
    ks: Keyspace,
    out: BytesMut,
    limit: Duration,
    /// See [`sync_cost`].
    sync: u64,
}

impl Bench {
    /// Executes and encodes one op; returns its charge and its reply's kind.
    fn exec(&mut self, op: &Op) -> (Charge, bool) {
        let spec = op.spec;
        let mut ctx = Ctx::new(&mut self.ks, NOW);
        ctx.script_time_limit = self.limit;
        let reply = execute(spec, &mut ctx, &op.argv);
        let work = work_milli(spec, op.keys, ctx.work);
        let keys = work_milli(spec, op.keys, 0);
        reply.encode(Protocol::Resp2, &mut self.out);
        let transfer = transfer_milli(op.request + self.out.len() as u64);
        self.out.clear();
        let is_err = matches!(reply, Reply::Error(_));
        (
            Charge {
                work,
                keys,
                transfer,
                ecpu: ecpu_milli(transfer, work),
            },
            is_err,
        )
    }

    fn prep(&mut self, case: &Case, i: usize) {
        if let Some(prep) = &case.prep {
            for argv in prep(i) {
                run(&mut self.ks, &argv);
            }
        }
    }

    /// CPU ns per op over `ops`, with the summed charge.
    fn time(&mut self, case: &Case, ops: &[Op], clock: u64) -> (f64, Charge) {
        let mut sum = Charge::default();
        let mut add = |c: Charge| {
            sum.work += c.work;
            sum.keys += c.keys;
            sum.transfer += c.transfer;
            sum.ecpu += c.ecpu;
        };
        let ns = if case.prep.is_none() {
            let start = cpu_ns();
            for op in ops {
                add(self.exec(op).0);
            }
            cpu_ns() - start
        } else if case.lazyfree {
            let mut total = 0;
            for (i, op) in ops.iter().enumerate() {
                self.prep(case, i);
                lazyfree::sync();
                let start = process_ns();
                add(self.exec(op).0);
                lazyfree::sync();
                total += (process_ns() - start).saturating_sub(self.sync);
            }
            total
        } else {
            let mut total = 0;
            for (i, op) in ops.iter().enumerate() {
                self.prep(case, i);
                let start = cpu_ns();
                add(self.exec(op).0);
                total += (cpu_ns() - start).saturating_sub(clock);
            }
            total
        };
        (ns as f64 / ops.len() as f64, sum)
    }
}

/// The cost of reading the clock twice, nanoseconds (median of many).
fn clock_cost() -> u64 {
    let samples: Vec<f64> = (0..1001)
        .map(|_| {
            let a = cpu_ns();
            (cpu_ns() - a) as f64
        })
        .collect();
    median(samples) as u64
}

fn prepare(case: &Case, n: usize) -> Vec<Op> {
    (0..n)
        .map(|i| {
            let argv = (case.argv)(i);
            let spec = lookup(&argv[0]).expect("command in table");
            Op {
                spec,
                keys: spec.key_positions(&argv).count() as u64,
                request: wire_len(&argv),
                argv,
            }
        })
        .collect()
}

/// One row of the result.
struct Row {
    family: &'static str,
    name: String,
    ns: f64,
    /// The GET baseline of its rounds (median), ns.
    get_ns: f64,
    measured: f64,
    charge: Charge,
    fill: bool,
}

impl Row {
    /// Charged per op, in ECPU.
    fn ecpu(&self) -> f64 {
        self.charge.ecpu as f64 / 1000.0
    }

    fn ratio(&self) -> f64 {
        self.measured / self.ecpu()
    }

    fn flag(&self) -> &'static str {
        let r = self.ratio();
        let c = self.charge;
        if r > 2.0 {
            "UNDER"
        } else if r >= 0.5 {
            ""
        } else if (c.transfer >= c.work && c.transfer > 1000) || self.fill {
            "bytes"
        } else if c.ecpu <= c.work.max(1000)
            && c.work.saturating_sub(c.keys) * 10 <= c.work.max(1000)
        {
            "min"
        } else {
            "OVER"
        }
    }
}

/// The SCAN rows: `SCAN` over `SCAN_KEYS` keys in one slot, each step
/// timed through `Keyspace::scan` as the proxy calls it, its reply built
/// and encoded as the proxy does, and charged as the proxy charges it
/// (`scan_work_milli`: keys visited and replied, slots walked).
fn scan_rows(a: &Args, base: &mut Baseline, clock: u64) -> Vec<Row> {
    let mut ks = Keyspace::whole();
    for i in 0..SCAN_KEYS {
        run(
            &mut ks,
            &argv(&["set".into(), format!("{{scan}}:{i}"), "v".into()]),
        );
    }
    let slot = key_slot(b"{scan}");
    assert_eq!(ks.keys_in_slot_count(slot), SCAN_KEYS);
    let k = SCAN_KEYS / 1000;
    let at_slot = ScanCursor { slot, pos: 0 };
    [
        (
            format!("SCAN 0 MATCH nomatch COUNT 10, {k}k keys in slot {slot}"),
            ScanCursor::default(),
            Some(&b"nomatch"[..]),
            10,
        ),
        (
            "SCAN in that slot MATCH nomatch COUNT 10".to_string(),
            at_slot,
            Some(&b"nomatch"[..]),
            10,
        ),
        (
            "SCAN in that slot COUNT 100".to_string(),
            at_slot,
            None,
            100,
        ),
    ]
    .into_iter()
    .map(|(name, cursor, pattern, count)| {
        let scan = Scan {
            ks: &ks,
            cursor,
            pattern,
            count,
        };
        scan_row(a, base, clock, &scan, name)
    })
    .collect()
}

/// One SCAN call to time.
struct Scan<'a> {
    ks: &'a Keyspace,
    cursor: ScanCursor,
    pattern: Option<&'static [u8]>,
    count: usize,
}

impl Scan<'_> {
    /// Runs the step and encodes its reply into `out`; returns its work
    /// as the proxy counts it (milli-units: keys visited and replied,
    /// slots walked).
    fn step(&self, out: &mut BytesMut) -> u64 {
        let step = self.ks.scan(self.cursor, self.count, NOW, |k, _| {
            self.pattern.is_none_or(|p| glob_match(p, k))
        });
        let work = scan_work_milli(step.visited, step.keys.len(), step.slots);
        let next = step.next.map_or(0, ScanCursor::encode);
        let reply = Reply::Array(vec![
            Reply::bulk(next.to_string()),
            Reply::Array(
                step.keys
                    .into_iter()
                    .map(|k| Reply::Bulk(Bytes::from(k)))
                    .collect(),
            ),
        ]);
        reply.encode(Protocol::Resp2, out);
        work
    }
}

fn scan_row(a: &Args, base: &mut Baseline, clock: u64, scan: &Scan<'_>, name: String) -> Row {
    let spec = lookup(b"scan").expect("scan");
    let mut out = BytesMut::new();
    let once = {
        let start = cpu_ns();
        scan.step(&mut out);
        (cpu_ns() - start).saturating_sub(clock).max(1)
    };
    let ops = ((a.round_ms * 1_000_000 / once) as usize).clamp(1, MAX_OPS);
    let (mut ratios, mut times, mut gets) = (Vec::new(), Vec::new(), Vec::new());
    let (mut counted, mut reply_len) = (0, 0);
    for _ in 0..a.rounds {
        let before = base.time();
        let start = cpu_ns();
        for _ in 0..ops {
            out.clear();
            counted = scan.step(&mut out);
            reply_len = out.len();
        }
        let ns = (cpu_ns() - start) as f64 / ops as f64;
        let get_ns = (before + base.time()) / 2.0;
        times.push(ns);
        ratios.push(ns / get_ns);
        gets.push(get_ns);
    }
    let mut line = format!("scan {} COUNT {}", scan.cursor.encode(), scan.count);
    if let Some(p) = scan.pattern {
        line += &format!(" MATCH {}", String::from_utf8_lossy(p));
    }
    let transfer = transfer_milli(wire_len(&words(&line)) + reply_len as u64);
    let work = work_milli(spec, 0, counted);
    Row {
        family: "keys",
        name,
        ns: median(times),
        get_ns: median(gets),
        measured: median(ratios),
        charge: Charge {
            work,
            keys: 0,
            transfer,
            ecpu: ecpu_milli(transfer, work),
        },
        fill: false,
    }
}

/// The GET baseline: GETs of 100-byte values in a keyspace of its own
/// (`--base-keys`, 10,000 as the cases' `key:i`, so the GET row measures
/// about 1.0), in an order that jumps about. Its size sets what "one GET"
/// is: over 1,024 keys (all in L2) a GET took 140 ns, over 10,000 about
/// 300-450, over a million (all cold) 1,000-1,250.
struct Baseline {
    ks: Keyspace,
    keys: usize,
    ops: Vec<Op>,
    out: BytesMut,
}

impl Baseline {
    fn new(keys: usize) -> Baseline {
        let mut ks = Keyspace::whole();
        let v100 = "v".repeat(100);
        let name = |i: usize| format!("base:{i}");
        for i in 0..keys {
            run(&mut ks, &argv(&["set".into(), name(i), v100.clone()]));
        }
        let get = lookup(b"get").expect("get");
        let ops = (0..GET_OPS)
            .map(|i| {
                let argv = argv(&["get".into(), name(i.wrapping_mul(0x9E37_79B1) % keys)]);
                Op {
                    spec: get,
                    keys: 1,
                    request: wire_len(&argv),
                    argv,
                }
            })
            .collect();
        Baseline {
            ks,
            keys,
            ops,
            out: BytesMut::new(),
        }
    }

    /// CPU ns per GET over `GET_OPS` GETs, after an untimed pass over the
    /// keys: a case that walked megabytes leaves them out of the CPU's
    /// caches (without the pass the baseline doubled after such cases).
    fn time(&mut self) -> f64 {
        let keys = self.keys;
        for i in 0..keys.min(self.ops.len()) {
            self.get(i);
        }
        let start = cpu_ns();
        for i in 0..self.ops.len() {
            self.get(i);
        }
        (cpu_ns() - start) as f64 / self.ops.len() as f64
    }

    /// Executes, meters and encodes the `i`th GET.
    fn get(&mut self, i: usize) {
        let op = &self.ops[i];
        let mut ctx = Ctx::new(&mut self.ks, NOW);
        let reply = execute(op.spec, &mut ctx, &op.argv);
        let _ = work_milli(op.spec, op.keys, ctx.work);
        reply.encode(Protocol::Resp2, &mut self.out);
        let _ = transfer_milli(op.request + self.out.len() as u64);
        self.out.clear();
    }
}

fn measure(a: &Args, bench: &mut Bench, case: &Case, base: &mut Baseline, clock: u64) -> Row {
    bench.limit = case.limit.unwrap_or(Duration::from_millis(
        stratus::config::DEFAULT_SCRIPT_TIME_LIMIT_MS,
    ));
    // 1. Estimate (and warm up): a few ops, or 5 ms.
    let warm = prepare(case, 64);
    let start = cpu_ns();
    let mut n = 0;
    while n < warm.len() && (n < 2 || cpu_ns() - start < 5_000_000) {
        bench.prep(case, n);
        let (_, is_err) = bench.exec(&warm[n]);
        if is_err && !case.error_ok {
            eprintln!("warning: {} answers an error", case.name);
        }
        n += 1;
    }
    let per_op = ((cpu_ns() - start) / n as u64).max(1);
    let ops = ((a.round_ms * 1_000_000 / per_op) as usize).clamp(1, MAX_OPS);
    let ops_v = prepare(case, ops);
    // 2. Rounds.
    let (mut ratios, mut times, mut gets) = (Vec::new(), Vec::new(), Vec::new());
    let mut charge = Charge::default();
    for _ in 0..a.rounds {
        let before = base.time();
        let (ns, sum) = bench.time(case, &ops_v, clock);
        let get_ns = (before + base.time()) / 2.0;
        times.push(ns);
        ratios.push(ns / get_ns);
        gets.push(get_ns);
        // 3. Charge: the mean per op.
        charge = Charge {
            work: sum.work / ops as u64,
            keys: sum.keys / ops as u64,
            transfer: sum.transfer / ops as u64,
            ecpu: sum.ecpu / ops as u64,
        };
    }
    Row {
        family: case.family,
        name: case.name.clone(),
        ns: median(times),
        get_ns: median(gets),
        measured: median(ratios),
        charge,
        fill: case.fill,
    }
}

fn print(a: &Args, rows: &[Row], get_ns: f64) {
    if a.markdown {
        println!(
            "| family | case | ns/op | GET ns | measured | work | transfer | ECPU | ratio | |"
        );
        println!("|---|---|--:|--:|--:|--:|--:|--:|--:|---|");
    } else {
        println!(
            "Engine time per op (execute + encode the reply, in process, thread CPU time), \
             median of {} rounds; GET = {get_ns:.0} ns",
            a.rounds
        );
        println!(
            "{:<12} {:<42} {:>11} {:>7} {:>10} {:>9} {:>8} {:>9} {:>6}",
            "family", "case", "ns/op", "GET ns", "measured", "work", "xfer", "ecpu", "ratio"
        );
    }
    for r in rows {
        let c = r.charge;
        let (w, t) = (c.work as f64 / 1000.0, c.transfer as f64 / 1000.0);
        if a.markdown {
            println!(
                "| {} | {} | {:.0} | {:.0} | {:.2} | {w:.2} | {t:.2} | {:.2} | {:.2} | {} |",
                r.family,
                r.name,
                r.ns,
                r.get_ns,
                r.measured,
                r.ecpu(),
                r.ratio(),
                r.flag()
            );
        } else {
            println!(
                "{:<12} {:<42} {:>11.0} {:>7.0} {:>10.2} {w:>9.2} {t:>8.2} {:>9.2} {:>6.2} {}",
                r.family,
                r.name,
                r.ns,
                r.get_ns,
                r.measured,
                r.ecpu(),
                r.ratio(),
                r.flag()
            );
        }
    }
    let off: Vec<&Row> = rows
        .iter()
        .filter(|r| matches!(r.flag(), "UNDER" | "OVER"))
        .collect();
    println!(
        "\n{} rows, {} outside [0.5, 2]{}",
        rows.len(),
        off.len(),
        off.iter()
            .map(|r| format!("\n  {} ({:.2})", r.name, r.ratio()))
            .collect::<String>()
    );
}

fn main() {
    let a = Args::parse();
    let mut ks = Keyspace::whole();
    populate(&mut ks);
    let mut bench = Bench {
        ks,
        out: BytesMut::with_capacity(1 << 20),
        limit: Duration::ZERO,
        sync: sync_cost(),
    };
    let clock = clock_cost();
    let mut base = Baseline::new(a.base_keys);
    let wanted = |family: &str, name: &str| {
        a.filter.as_ref().is_none_or(|f| {
            let f = f.to_lowercase();
            family.contains(&f) || name.to_lowercase().contains(&f)
        })
    };
    let mut rows = Vec::new();
    for case in all_cases() {
        if wanted(case.family, &case.name) {
            rows.push(measure(&a, &mut bench, &case, &mut base, clock));
        }
    }
    if wanted("keys", "scan") {
        rows.extend(scan_rows(&a, &mut base, clock));
    }
    let get_ns = median((0..a.rounds).map(|_| base.time()).collect());
    print(&a, &rows, get_ns);
}
