//! Hash slots: `CRC16/XMODEM(key or its {hash tag}) mod 16384`, exactly as
//! Redis Cluster computes them.

/// Number of hash slots in a keyspace.
pub const SLOTS: u16 = 16384;

/// The hash slot of `key`. If the key holds a `{...}` with at least one byte
/// between the first `{` and the next `}`, only those bytes are hashed.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = match memchr::memchr(b'{', key) {
        Some(open) => match memchr::memchr(b'}', &key[open + 1..]) {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    CRC16.checksum(hashed) & (SLOTS - 1)
}

/// Redis Cluster's CRC16 (XMODEM), sixteen bytes a step: a request's key
/// is hashed on every command's path (routing, then the partition's table).
static CRC16: crc::Crc<u16, crc::Table<16>> =
    crc::Crc::<u16, crc::Table<16>>::new(&crc::CRC_16_XMODEM);

/// A cache's choice of which keys one command may combine — the one rule
/// every multi-key check (the request path, MULTI/EXEC and WATCH, scripts
/// and functions, SORT's BY/GET patterns) asks.
///
/// - `Enabled` (the default, as ElastiCache Serverless): the keys of a
///   command, a transaction or a script must share one hash slot (else
///   CROSSSLOT), because partitions split and merge by slot and one command
///   runs in one partition.
/// - `Disabled` (as ElastiCache's node-based caches with cluster mode
///   disabled, and standalone Redis): the cache is one partition that never
///   splits, so any keys may be combined; the cache scales up to one
///   partition's size and throughput only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ClusterMode {
    #[default]
    Enabled,
    Disabled,
}

impl ClusterMode {
    /// Whether keys of slots `a` and `b` may be combined by one command.
    pub fn together(self, a: u16, b: u16) -> bool {
        self.spans_slots() || a == b
    }

    /// Whether one command may combine keys of any slots (one partition
    /// holds them all, for good).
    pub fn spans_slots(self) -> bool {
        self == ClusterMode::Disabled
    }

    /// The name the control API and the settings use.
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterMode::Enabled => "enabled",
            ClusterMode::Disabled => "disabled",
        }
    }
}

impl std::fmt::Display for ClusterMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ClusterMode {
    type Err = String;

    fn from_str(s: &str) -> Result<ClusterMode, String> {
        match s {
            "enabled" => Ok(ClusterMode::Enabled),
            "disabled" => Ok(ClusterMode::Disabled),
            other => Err(format!(
                "cluster mode must be \"enabled\" or \"disabled\" (got \"{}\")",
                other.chars().take(40).collect::<String>()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CRC16-XMODEM one bit at a time (Redis's `crc16.c` reference).
    fn bitwise_crc16(data: &[u8]) -> u16 {
        let mut crc: u16 = 0;
        for &b in data {
            crc ^= u16::from(b) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc
    }

    #[test]
    fn matches_redis_cluster_vectors() {
        // Published in the Redis Cluster specification and its test suite.
        assert_eq!(CRC16.checksum(b"123456789"), 0x31C3);
        // Every length around the 16-byte step, against a bitwise CRC.
        let data: Vec<u8> = (0..70u8).map(|i| i.wrapping_mul(37)).collect();
        for len in 0..data.len() {
            assert_eq!(CRC16.checksum(&data[..len]), bitwise_crc16(&data[..len]));
        }
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"hello"), 866);
        assert_eq!(key_slot(b""), 0);
    }

    #[test]
    fn cluster_mode_decides_which_slots_combine() {
        let (a, b) = (key_slot(b"foo"), key_slot(b"bar"));
        assert!(ClusterMode::Enabled.together(a, a));
        assert!(!ClusterMode::Enabled.together(a, b));
        assert!(ClusterMode::Disabled.together(a, b));
        assert_eq!("disabled".parse(), Ok(ClusterMode::Disabled));
        assert_eq!("enabled".parse(), Ok(ClusterMode::Enabled));
        assert!("Disabled".parse::<ClusterMode>().is_err());
    }

    #[test]
    fn hash_tags_follow_redis_rules() {
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"{user1000}.followers"), key_slot(b"user1000"));
        // Empty tag: the whole key is hashed.
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        // Only the first '{' and the first '}' after it count.
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
        // No closing brace: whole key.
        assert_eq!(key_slot(b"foo{bar"), bitwise_crc16(b"foo{bar") & 16383);
    }
}
