//! The ECPU cost model, as ElastiCache Serverless defines ECPU:
//!
//! - transfer = (request bytes + reply bytes on the wire) / 1024, fractional;
//! - work = the command table's `cost_per_key` × keys named, plus its
//!   `cost_per_element_milli` × elements the handler walked (`Ctx::work`);
//!   1 work unit ≈ the engine time of a simple GET (see the calibration
//!   benchmark in `loadtest/`);
//! - ECPU = max(1, transfer, work): the higher dimension, never the sum.
//!
//! Everything is in milli-ECPU integers, so totals add up exactly.

use crate::cmd::CommandSpec;

/// Milli-ECPU in one ECPU.
pub const MILLI: u64 = 1000;

/// Milli-ECPU for `bytes` transferred (1 ECPU per KiB, fractional, floored to
/// the milli-ECPU).
pub fn transfer_milli(bytes: u64) -> u64 {
    bytes * MILLI / 1024
}

/// Milli-ECPU of work for a command naming `keys` keys and walking `elements`.
pub fn work_milli(spec: &CommandSpec, keys: u64, elements: u64) -> u64 {
    u64::from(spec.cost_per_key) * keys * MILLI + u64::from(spec.cost_per_element_milli) * elements
}

/// The ECPU of one request: the higher of transfer and work, at least 1.
pub fn ecpu_milli(transfer: u64, work: u64) -> u64 {
    MILLI.max(transfer).max(work)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::lookup;
    use crate::cmd::test_util::Harness;

    /// Wire bytes of a request, as the decoder counts them.
    fn wire(args: &[&[u8]]) -> u64 {
        let mut n = format!("*{}\r\n", args.len()).len();
        for a in args {
            n += format!("${}\r\n", a.len()).len() + a.len() + 2;
        }
        n as u64
    }

    fn cost(args: &[&[u8]], reply_bytes: u64, elements: u64) -> u64 {
        let spec = lookup(args[0]).unwrap();
        let argv: Vec<bytes::Bytes> = args
            .iter()
            .map(|a| bytes::Bytes::copy_from_slice(a))
            .collect();
        let keys = spec.key_positions(&argv).count() as u64;
        ecpu_milli(
            transfer_milli(wire(args) + reply_bytes),
            work_milli(spec, keys, elements),
        )
    }

    #[test]
    fn get_of_up_to_1_kib_costs_1() {
        for len in [1usize, 100, 900] {
            let reply = format!("${len}\r\n").len() + len + 2;
            assert_eq!(
                cost(&[b"GET", b"key"], reply as u64, 0),
                1000,
                "value of {len} B"
            );
        }
    }

    #[test]
    fn set_of_3_2_kib_costs_3_2() {
        // A SET whose request and reply (`+OK\r\n`) total 3277 bytes (3.2 KiB).
        let len = (0..4000)
            .find(|n| wire(&[b"SET", b"k", &vec![b'x'; *n]]) + 5 == 3277)
            .unwrap();
        let value = vec![b'x'; len];
        assert_eq!(cost(&[b"SET", b"k", &value], 5, 0), 3200);
    }

    #[test]
    fn mset_of_3_small_keys_costs_3() {
        assert_eq!(
            cost(&[b"MSET", b"a", b"1", b"b", b"2", b"c", b"3"], 5, 0),
            3000
        );
    }

    #[test]
    fn hgetall_of_1000_fields_costs_by_work() {
        let mut h = Harness::new();
        let mut argv = vec!["hset".to_string(), "h".to_string()];
        for i in 0..1000 {
            argv.push(format!("f{i}"));
            argv.push("v".into());
        }
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        h.run(&argv);
        let spec = lookup(b"hgetall").unwrap();
        let mut ctx = crate::cmd::Ctx::new(&mut h.ks, h.now);
        let reply = crate::cmd::execute(
            spec,
            &mut ctx,
            &[bytes::Bytes::from("hgetall"), bytes::Bytes::from("h")],
        );
        let elements = ctx.work;
        assert_eq!(elements, 1000);
        let mut out = bytes::BytesMut::new();
        reply.encode(crate::resp::Protocol::Resp2, &mut out);
        let transfer = transfer_milli(wire(&[b"HGETALL", b"h"]) + out.len() as u64);
        let work = work_milli(spec, 1, elements);
        assert!(
            work > transfer,
            "work {work} should dominate transfer {transfer}"
        );
        assert_eq!(
            ecpu_milli(transfer, work),
            1000 + 1000 * u64::from(spec.cost_per_element_milli)
        );
    }
}
