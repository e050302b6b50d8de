//! The data plane's wire format: what a proxy and a `stratus node` say to
//! each other about partitions (DESIGN §13). This module owns the format;
//! nothing else encodes or decodes it.
//!
//! A connection carries frames in both directions. Each frame is:
//! 1. a 4-byte big-endian length of what follows (tokio-util's
//!    length-delimited codec, at most [`MAX_FRAME`] bytes);
//! 2. a 2-byte big-endian format version ([`VERSION`]): a frame of another
//!    version is refused whole, never half-read;
//! 3. an [`Envelope`] encoded with bincode 2 (its `standard` configuration:
//!    variable-length integers, little-endian), through serde — bincode is
//!    unmaintained upstream, and serde keeps it swappable for another
//!    format behind the same two functions ([`encode`], [`decode`]).
//!
//! The proxy numbers its requests; a node answers each with the same id,
//! in any order, so one connection carries many requests at once.
//!
//! Invariants: messages are data only (no closures, no shared memory); a
//! change to any message type is a new [`VERSION`], and the golden-bytes
//! tests at the bottom pin every message's encoding so that no change goes
//! unnoticed.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

use crate::cmd::Takes;
use crate::partition::{ClusterMode, ValueType};
use crate::resp::Reply;

/// Frames one side of a connection may have waiting to be written: past
/// it a node stops reading requests (a proxy that reads nothing), and a
/// proxy's callers wait to send.
pub const SEND_QUEUE: usize = 1024;

/// The most commands of a batch's scripts its reply shows to MONITOR
/// ([`FeedItem::Monitored`]); past it, the rest are not shown.
pub const MAX_MONITORED: usize = 65_536;

/// The format version every frame starts with.
pub const VERSION: u16 = 4;

/// The largest frame either side accepts, bytes: a 512 MiB value (Redis's
/// `proto-max-bulk-len`) and its command, with room to spare.
pub const MAX_FRAME: usize = 640 * 1024 * 1024;

/// A message and the number of the request it is or answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub id: u64,
    pub body: T,
}

/// What a proxy asks of a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Host a cache on this node with `partitions` partitions (idempotent:
    /// a cache already hosted is left as it is).
    Host {
        cache: String,
        partitions: u16,
        cluster_mode: ClusterMode,
    },
    /// The hosted cache's routing table: which partition owns which slots.
    Routes { cache: String },
    /// Run a batch of commands in one partition.
    Execute(Execute),
    /// One partition's figures.
    Stats { cache: String, partition: u64 },
    /// Admin: split a partition at slot `at` (the new partition owns
    /// `at..=last`).
    Split {
        cache: String,
        partition: u64,
        at: u16,
    },
    /// Admin: merge two adjacent partitions into the left one.
    Merge {
        cache: String,
        left: u64,
        right: u64,
    },
    /// A walk over one partition's keys (SCAN, KEYS, RANDOMKEY, CLUSTER
    /// GETKEYSINSLOT, FLUSHDB), run where the partition is.
    Keys {
        cache: String,
        partition: u64,
        busy_threshold_ms: u64,
        op: KeysOp,
    },
    /// WATCH: the node counts a watcher on each key (until `Unwatch`, or
    /// this connection ends) and answers their versions; `Moved` if
    /// partition `partition`, whose keys they are, is not here.
    Watch {
        cache: String,
        partition: u64,
        keys: Vec<Bytes>,
    },
    /// The watchers `Watch` counted go.
    Unwatch { cache: String, keys: Vec<Bytes> },
    /// A client about to block on `keys`: the node puts it in line on
    /// each (until `Unblock`, or this connection ends) and answers its
    /// subscription and its place in line.
    Block {
        cache: String,
        partition: u64,
        keys: Vec<Bytes>,
        takes: Option<Takes>,
    },
    /// Answered once a key of the subscription is written after the last
    /// `Await` (or was in between: no write is missed); `first` marks the
    /// client blocked (its first attempt found nothing).
    Await { subscription: u64, first: bool },
    /// The client stops waiting: it leaves every line.
    Unblock { subscription: u64 },
    /// Stop hosting a cache (deleted): its data is released.
    Unhost { cache: String },
    /// The first frame of every connection: proof that the proxy holds
    /// the deployment's shared key ([`hello_proof`]); a node with a key
    /// answers nothing else before it.
    Hello { proof: [u8; 32] },
    /// Is the node there? Answered `Done`.
    Ping,
    /// Admin (control): the cache's whole routing table at `epoch`, each
    /// range with the node hosting it; this node is `me` among them. The
    /// node hosts the cache if it did not (cluster mode `cluster_mode`),
    /// keeps its partitions the table gives it (making empty ones it
    /// lacks: a node that restarted), and refuses every other slot,
    /// saying where it went ([`Request::Routes`]). A table no newer than
    /// the last one applied changes nothing. Answered `Done`.
    Layout {
        cache: String,
        cluster_mode: ClusterMode,
        epoch: u64,
        me: String,
        ranges: Vec<Range>,
    },
    /// Admin (control, a move): the partition gives up its top slots —
    /// as many whole slots as fit in `max_bytes`, at least one — and
    /// answers them with their keys ([`Response::Exported`]). From then on
    /// it refuses them (`Moved`) until a [`Request::Layout`] says where
    /// they went.
    Export {
        cache: String,
        partition: u64,
        max_bytes: u64,
    },
    /// Admin (control, a move): partition `partition` takes slots
    /// `first..=last` with these keys: a new partition, or one whose range
    /// they extend. Answered [`Response::Imported`].
    Import {
        cache: String,
        partition: u64,
        first: u16,
        last: u16,
        keys: Vec<Carried>,
    },
    /// SCRIPT KILL (`functions` false) or FUNCTION KILL: stops the
    /// cache's running scripts of that kind on this node. Answered
    /// [`Response::Killed`].
    Kill { cache: String, functions: bool },
    /// Evict keys of a partition as `policy` chooses, until `bytes` are
    /// freed or `count` keys are gone (the cache is over its storage
    /// maximum). Answered [`Response::Evicted`].
    Evict {
        cache: String,
        partition: u64,
        policy: crate::partition::Eviction,
        bytes: u64,
        count: u32,
    },
    /// The cache's events after number `after` (`None`: from now on),
    /// waiting up to a second for one; `flags` are the
    /// `notify-keyspace-events` classes the proxy needs. Answered
    /// [`Response::Fed`] ([`crate::pool::feed`]).
    Feed {
        cache: String,
        after: Option<u64>,
        flags: u32,
    },
    /// A client's PUBLISH (`shard` false) or SPUBLISH through proxy
    /// `origin`: into the cache's feed, for the other proxies' subscribers.
    /// Answered [`Response::Done`].
    Publish {
        cache: String,
        origin: u64,
        channel: Bytes,
        message: Bytes,
        shard: bool,
    },
}

impl Request {
    /// Requests that change what a node hosts: a node runs them on the
    /// connection, in the order they came, before it reads the next (a
    /// Host after an Unhost of the same name must not overtake it, nor a
    /// table the move it follows) — so it answers nothing else meanwhile.
    pub fn is_admin(&self) -> bool {
        matches!(
            self,
            Request::Host { .. }
                | Request::Unhost { .. }
                | Request::Split { .. }
                | Request::Merge { .. }
                | Request::Layout { .. }
                | Request::Export { .. }
                | Request::Import { .. }
        )
    }
}

/// A key in transit between nodes: its value as a DUMP payload (the
/// format RESTORE reads), and its deadline (ms since the Unix epoch, 0 for
/// none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Carried {
    pub key: Bytes,
    pub expire_at: u64,
    pub payload: Bytes,
}

/// What `Hello` proves: SHA-256 of a fixed label and the shared key (the
/// key itself never crosses the wire).
pub fn hello_proof(key: Option<&[u8; 32]>) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"stratus data plane v1");
    if let Some(key) = key {
        h.update(key);
    }
    h.finalize().into()
}

/// A walk over one partition's keys: data only (a filter, not a closure),
/// so the same request runs in-process or on a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum KeysOp {
    /// One SCAN step from `cursor` (an encoded scan position), keeping at
    /// most `count` keys that pass `filter`, visiting at most ten times
    /// that many.
    Scan {
        cursor: u64,
        count: u64,
        filter: ScanFilter,
    },
    /// A key drawn at random (RANDOMKEY).
    Random,
    /// How many keys `slot` holds, and up to `limit` of them.
    InSlot { slot: u16, limit: u64 },
    /// Delete every key (FLUSHDB, FLUSHALL).
    Flush,
}

/// Which keys a SCAN step keeps: `MATCH` and `TYPE`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScanFilter {
    pub pattern: Option<Bytes>,
    pub value_type: Option<ValueType>,
}

/// What a [`KeysOp`] found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum KeysDone {
    Scanned {
        keys: Vec<Bytes>,
        /// Where to go on (an encoded scan position); `None` when the
        /// partition's last slot is done.
        next: Option<u64>,
        /// Entries visited and slots walked through (the work done).
        visited: u64,
        slots: u64,
    },
    Random {
        key: Option<Bytes>,
        walked: u64,
    },
    InSlot {
        count: u64,
        keys: Vec<Bytes>,
    },
    Flushed,
}

/// A batch of commands for one partition, at the routing epoch the proxy
/// routed it with: the node runs it only if the partition still owns every
/// slot in `slots`, else answers [`Response::Moved`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execute {
    pub cache: String,
    pub partition: u64,
    pub epoch: u64,
    /// The slots of the batch's keys.
    pub slots: Vec<u16>,
    /// Each command's arguments, its name first.
    pub commands: Vec<Vec<Bytes>>,
    /// Keys a transaction watches, with the versions the client saw: a
    /// changed one aborts the batch ([`Response::Aborted`]).
    pub watched: Vec<(Bytes, u64)>,
    pub options: Options,
}

/// The per-request settings a partition needs (the data-only part of the
/// proxy's execution options; no clock: the partition's node stamps
/// time, as its expiry cycle does).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Options {
    pub resp3: bool,
    pub max_value_len: u64,
    /// Bytes the cache may still grow before its storage maximum.
    pub room: u64,
    pub no_touch: bool,
    /// The client running the batch (tracking's NOLOOP); 0 = none.
    pub client: u64,
    /// A blocked client's place in line, if it is one.
    pub ticket: Option<u64>,
    /// A retry of a blocked client's command.
    pub retry: bool,
    /// Milliseconds after which a command reaching a partition that a
    /// script holds is answered `BUSY`.
    pub busy_threshold_ms: u64,
    /// The cache's encoding thresholds (CONFIG SET hash-max-listpack-entries
    /// and the like: OBJECT ENCODING, approximate stream trims).
    pub encoding: crate::cmd::params::Encoding,
    /// Longest a script of the batch may run, milliseconds.
    pub script_time_limit_ms: u64,
    /// The permissions of the user running a script, as ACL rules (what
    /// the commands it calls are checked against); `None`: every command
    /// and key.
    pub rules: Option<Vec<String>>,
    /// Keyspace event classes to record for this batch (the proxy's
    /// subscribers and tracking clients need them).
    pub notify: u32,
    /// The proxy's number in the feeds ([`crate::node::Nodes::origin`]):
    /// the batch's events come back in its reply, and the feed marks them
    /// as that proxy's.
    pub origin: u64,
    /// A batch with a script: the proxy's subscriptions as they stand
    /// ([`crate::pubsub::MessageHub::version`]; 0: none), which the
    /// script's PUBLISH counts its receivers against.
    pub listeners: u64,
    /// Those subscriptions, when the node may not have them yet.
    pub listener_table: Option<Box<crate::pubsub::Listeners>>,
}

/// What a node answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// [`Request::Host`] done.
    Hosted,
    /// The cache's routing table at `epoch`.
    Routes { epoch: u64, ranges: Vec<Range> },
    /// Every command of the batch ran: its replies, in order, and the
    /// partition's figures after them (the proxy's view of its bytes is
    /// never older than its last batch).
    Executed {
        replies: Vec<Executed>,
        /// (Boxed: the other answers stay small; the same bytes.)
        stats: Box<Stats>,
        /// What the batch delivers (keyspace events, scripts' messages):
        /// the proxy that sent it delivers them before answering.
        events: Vec<FeedItem>,
        /// The number of the cache's next feed item after the batch: a
        /// proxy's reader of this node's feed starts there at the latest.
        feed: u64,
    },
    /// A watched key changed: nothing ran.
    Aborted,
    /// The partition does not own the batch's slots (any more): the
    /// routing epoch of its last change, for the proxy to refresh past.
    Moved { epoch: u64 },
    /// A script holds the partition past the busy threshold.
    Busy,
    /// A partition's figures.
    Stats(Stats),
    /// The request could not be served (an unknown cache, a command this
    /// node does not run, a split refused): an error reply's text, for the
    /// proxy's client or log.
    Failed(String),
    /// A split made partition `partition`; a merge answers with the left id.
    Changed { partition: u64 },
    /// What a [`Request::Keys`] walk found.
    Keys(KeysDone),
    /// The versions of the keys a [`Request::Watch`] named, in order.
    Versions(Vec<u64>),
    /// A [`Request::Block`]'s subscription and place in line.
    Blocked { subscription: u64, ticket: u64 },
    /// A key of the subscription was written ([`Request::Await`]).
    Woken,
    /// [`Request::Unwatch`] or [`Request::Unblock`] done.
    Done,
    /// [`Request::Hello`] accepted.
    Welcome,
    /// What a [`Request::Export`] took: slots `first..=last`, their keys,
    /// and the node's routing epoch after it.
    Exported {
        first: u16,
        last: u16,
        epoch: u64,
        keys: Vec<Carried>,
    },
    /// A [`Request::Import`] done, at this routing epoch.
    Imported { epoch: u64 },
    /// What a [`Request::Kill`] found.
    Killed(KillOutcome),
    /// A [`Request::Evict`] took `keys` keys; the partition's figures after.
    Evicted { keys: u64, stats: Stats },
    /// A [`Request::Feed`]'s items, each with its origin, and the number
    /// to read from next.
    Fed {
        next: u64,
        items: Vec<(u64, FeedItem)>,
    },
    /// A batch with a script did not run: the node lacks the proxy's
    /// subscriptions at [`Options::listeners`]; the proxy sends the batch
    /// again with them ([`Options::listener_table`]).
    NeedListeners,
}

/// One partition's slot range and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub first: u16,
    pub last: u16,
    pub partition: u64,
    /// The data-plane address (`host:port`) of the node hosting it; empty
    /// for "the node answering".
    pub node: String,
}

/// One command's reply and the elements it walked (metered as work).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Executed {
    pub reply: Reply,
    pub work: u64,
    /// A blocking command found nothing to serve: its client waits on.
    pub waits: bool,
    /// With `waits`: the arguments its retries run with (XREAD's `$`
    /// resolved when it blocked).
    pub resume: Option<Vec<Bytes>>,
}

/// A partition's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub first_slot: u16,
    pub last_slot: u16,
    pub keys: u64,
    pub volatile_keys: u64,
    pub used_bytes: u64,
    /// Hits, misses, expiries, evictions since the partition was made.
    pub events: crate::partition::keyspace::KeyspaceStats,
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of format version {0}, this side speaks {VERSION}")]
    Version(u16),
    #[error("frame too short for its version header")]
    Short,
    #[error("undecodable frame: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    #[error("unencodable message: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error("the peer did not prove it holds the deployment's key")]
    Refused,
    /// A message too big for one frame: nothing was written, and the
    /// connection goes on (the sender answers that one request with an
    /// error instead).
    #[error("a message of {0} bytes is over the frame limit")]
    TooBig(usize),
}

/// What a request whose message or reply is over [`MAX_FRAME`] is answered
/// with (the connection between proxy and node stays up for the others).
pub fn too_big(bytes: usize) -> String {
    format!(
        "ERR the batch's request or reply ({bytes} bytes) is over the {MAX_FRAME}-byte limit between proxy and node"
    )
}

/// Appends `message`'s frame payload (version, then the message) to `out`.
pub fn encode<T: Serialize>(message: &T, out: &mut BytesMut) -> Result<(), WireError> {
    out.put_u16(VERSION);
    let mut writer = out.writer();
    bincode::serde::encode_into_std_write(message, &mut writer, bincode::config::standard())?;
    Ok(())
}

/// Reads one message from a frame payload; the whole payload must be it.
pub fn decode<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T, WireError> {
    let (version, rest) = payload.split_first_chunk::<2>().ok_or(WireError::Short)?;
    let version = u16::from_be_bytes(*version);
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    let (message, used) = bincode::serde::decode_from_slice(
        rest,
        bincode::config::standard().with_limit::<MAX_FRAME>(),
    )?;
    if used != rest.len() {
        return Err(WireError::Decode(bincode::error::DecodeError::OtherString(
            format!("{} bytes left over after the message", rest.len() - used),
        )));
    }
    Ok(message)
}

/// Frames messages of type `Out` and reads messages of type `In` (a proxy
/// writes requests and reads responses; a node the other way round).
pub struct Codec<Out, In> {
    frames: LengthDelimitedCodec,
    /// The largest frame written, bytes.
    max_frame: usize,
    kinds: std::marker::PhantomData<fn(Out) -> In>,
}

impl<Out, In> Default for Codec<Out, In> {
    fn default() -> Self {
        Codec {
            frames: LengthDelimitedCodec::builder()
                .max_frame_length(MAX_FRAME)
                .new_codec(),
            max_frame: MAX_FRAME,
            kinds: std::marker::PhantomData,
        }
    }
}

impl<Out, In> Codec<Out, In> {
    /// The largest frame accepted or written from now on, bytes.
    pub fn set_max_frame(&mut self, bytes: usize) {
        self.frames.set_max_frame_length(bytes);
        self.max_frame = bytes;
    }
}

impl<Out: Serialize, In> Encoder<Envelope<Out>> for Codec<Out, In> {
    type Error = WireError;

    /// Writes the frame in place: a length placeholder, the payload, then
    /// the length (no copy of the payload).
    fn encode(&mut self, item: Envelope<Out>, dst: &mut BytesMut) -> Result<(), WireError> {
        let start = dst.len();
        dst.put_u32(0);
        encode(&item, dst)?;
        let len = dst.len() - start - 4;
        if len > self.max_frame {
            dst.truncate(start);
            return Err(WireError::TooBig(len));
        }
        dst[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
        Ok(())
    }
}

impl<Out, In: serde::de::DeserializeOwned> Decoder for Codec<Out, In> {
    type Item = Envelope<In>;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Envelope<In>>, WireError> {
        match self.frames.decode(src)? {
            Some(payload) => decode(&payload).map(Some),
            None => Ok(None),
        }
    }
}

/// A proxy's side of a connection to a node.
pub type ProxyCodec = Codec<Request, Response>;
/// A node's side of a connection from a proxy.
pub type NodeCodec = Codec<Response, Request>;

/// One thing a cache delivers (a node's feed, [`crate::pool::feed`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum FeedItem {
    /// A keyspace event.
    Key(crate::partition::notify::KeyEvent),
    /// A script's PUBLISH (`shard` false) or SPUBLISH.
    Message {
        channel: Bytes,
        message: Bytes,
        shard: bool,
    },
    /// Keys a client changed (client-side caching invalidates them; the
    /// client is the origin proxy's, for NOLOOP).
    Invalidate { keys: Vec<Bytes>, client: u64 },
    /// A client's script read something (its tracking remembers the
    /// script's keys): only ever in its batch's reply.
    ScriptRead { client: u64 },
    /// Commands a script of the batch called, as the command statistics
    /// count them, summed by command, subcommand and latency range (calls
    /// that took 2^(r-1) < µs <= 2^r): only ever in its batch's reply.
    Called {
        name: String,
        sub: Option<String>,
        calls: u64,
        failed: u64,
        /// Their time in all, µs.
        micros: u64,
    },
    /// A command a script of the batch called, as MONITOR shows it: only
    /// ever in its batch's reply (at most [`MAX_MONITORED`] a batch).
    Monitored { argv: Vec<Bytes> },
}

/// What SCRIPT KILL or FUNCTION KILL found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum KillOutcome {
    NotBusy,
    /// A running script has written: Redis will not kill it.
    Unkillable,
    /// Only scripts of the other kind run (functions for SCRIPT KILL,
    /// `EVAL` scripts for FUNCTION KILL): Redis answers `BUSY` naming the
    /// command that would kill them.
    OtherKind,
    Killed,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn payload<T: Serialize>(message: &T) -> String {
        let mut out = BytesMut::new();
        encode(message, &mut out).unwrap();
        hex(&out)
    }

    fn options() -> Options {
        Options {
            resp3: false,
            max_value_len: 512 * 1024 * 1024,
            room: u64::MAX,
            no_touch: false,
            client: 7,
            ticket: None,
            retry: false,
            busy_threshold_ms: 5000,
            encoding: Default::default(),
            script_time_limit_ms: 5000,
            rules: None,
            notify: 0x41,
            origin: 5,
            listeners: 0,
            listener_table: None,
        }
    }

    fn stats_events() -> crate::partition::KeyspaceStats {
        crate::partition::KeyspaceStats {
            hits: 5,
            misses: 6,
            expired: 7,
            evicted: 8,
            lazyfreed: 9,
        }
    }

    /// The bytes of every message kind are pinned: a change to a message
    /// type (field order, a new variant in the middle, an integer's width)
    /// fails here and must come with a new [`VERSION`].
    #[test]
    fn golden_bytes_of_requests() {
        let execute = Envelope {
            id: 1,
            body: Request::Execute(Execute {
                cache: "c".into(),
                partition: 2,
                epoch: 3,
                slots: vec![12182],
                commands: vec![vec![Bytes::from_static(b"SET"), "k".into(), "v".into()]],
                watched: vec![(Bytes::from_static(b"w"), 9)],
                options: options(),
            }),
        };
        assert_eq!(
            payload(&execute),
            // version 4; id 1; variant 2 (Execute); "c"; partition 2;
            // epoch 3; [12182]; [["SET", "k", "v"]]; [("w", 9)];
            // options: false, 512 MiB, u64::MAX, false, 7, None,
            // false, 5000, the default encoding thresholds, a 5000 ms
            // script limit, no rules, notify classes 0x41, origin 5, no
            // subscriptions, no table (bincode's
            // variable-length integers:
            // one byte below 251, else a 0xfb/0xfc/0xfd marker and 2/4/8
            // bytes).
            "0004\
             01\
             02\
             0163\
             02\
             03\
             01fb962f\
             010303534554016b0176\
             01017709\
             00\
             fc00000020\
             fdffffffffffffffff\
             00\
             07\
             00\
             00\
             fb8813\
             fb0002 40 80 40 fb0002 64\
             fb8813\
             00\
             41\
             05\
             00\
             00"
            .replace(' ', "")
        );
        let host = Envelope {
            id: 300,
            body: Request::Host {
                cache: "cache-a".into(),
                partitions: 4,
                cluster_mode: ClusterMode::Disabled,
            },
        };
        assert_eq!(payload(&host), "0004fb2c01000763616368652d610401");
        assert_eq!(
            payload(&Envelope {
                id: 2,
                body: Request::Routes { cache: "c".into() }
            }),
            "000402010163"
        );
        assert_eq!(
            payload(&Envelope {
                id: 2,
                body: Request::Stats {
                    cache: "c".into(),
                    partition: 5
                }
            }),
            "00040203016305"
        );
        assert_eq!(
            payload(&Envelope {
                id: 2,
                body: Request::Split {
                    cache: "c".into(),
                    partition: 1,
                    at: 8192
                }
            }),
            "000402040163 01fb0020".replace(' ', "")
        );
        assert_eq!(
            payload(&Envelope {
                id: 2,
                body: Request::Merge {
                    cache: "c".into(),
                    left: 1,
                    right: 2
                }
            }),
            "00040205016301 02".replace(' ', "")
        );
        // Keys: variant 6; "c"; partition 1; busy 3; Scan (0):
        // cursor 16385, count 10, MATCH "a*", TYPE hash (1).
        assert_eq!(
            payload(&Envelope {
                id: 2,
                body: Request::Keys {
                    cache: "c".into(),
                    partition: 1,
                    busy_threshold_ms: 3,
                    op: KeysOp::Scan {
                        cursor: 16385,
                        count: 10,
                        filter: ScanFilter {
                            pattern: Some(Bytes::from_static(b"a*")),
                            value_type: Some(ValueType::Hash),
                        },
                    },
                }
            }),
            "0004020601630103 00 fb0140 0a 01 02612a 01 01".replace(' ', "")
        );
        for (op, bytes) in [
            (KeysOp::Random, "01"),
            (KeysOp::InSlot { slot: 5, limit: 6 }, "020506"),
            (KeysOp::Flush, "03"),
        ] {
            let request = Envelope {
                id: 2,
                body: Request::Keys {
                    cache: "c".into(),
                    partition: 1,
                    busy_threshold_ms: 3,
                    op,
                },
            };
            assert_eq!(payload(&request), format!("0004020601630103{bytes}"));
        }
        let keys = vec![Bytes::from_static(b"k"), Bytes::from_static(b"l")];
        for (body, bytes) in [
            (
                Request::Watch {
                    cache: "c".into(),
                    partition: 4,
                    keys: keys.clone(),
                },
                "07 0163 04 02016b016c",
            ),
            (
                Request::Unwatch {
                    cache: "c".into(),
                    keys: keys.clone(),
                },
                "08 0163 02016b016c",
            ),
            (
                Request::Block {
                    cache: "c".into(),
                    partition: 4,
                    keys,
                    takes: Some(Takes::ZSet),
                },
                "09 0163 04 02016b016c 0101",
            ),
            (
                Request::Await {
                    subscription: 3,
                    first: true,
                },
                "0a 03 01",
            ),
            (Request::Unblock { subscription: 3 }, "0b 03"),
            (
                Request::Hello { proof: [7; 32] },
                "0d 0707070707070707070707070707070707070707070707070707070707070707",
            ),
            (Request::Ping, "0e"),
            (Request::Unhost { cache: "c".into() }, "0c 0163"),
            (
                Request::Layout {
                    cache: "c".into(),
                    cluster_mode: ClusterMode::Enabled,
                    epoch: 5,
                    me: "n".into(),
                    ranges: vec![Range {
                        first: 0,
                        last: 1,
                        partition: 2,
                        node: "n".into(),
                    }],
                },
                "0f 0163 00 05 016e 01 00 01 02 016e",
            ),
            (
                Request::Export {
                    cache: "c".into(),
                    partition: 2,
                    max_bytes: 1000,
                },
                "10 0163 02 fbe803",
            ),
            (
                Request::Import {
                    cache: "c".into(),
                    partition: 3,
                    first: 7,
                    last: 8,
                    keys: vec![Carried {
                        key: "k".into(),
                        expire_at: 0,
                        payload: "p".into(),
                    }],
                },
                "11 0163 03 07 08 01 016b 00 0170",
            ),
            (
                Request::Kill {
                    cache: "c".into(),
                    functions: true,
                },
                "12 0163 01",
            ),
            (
                // Evict; "c"; partition 1; VolatileLru (variant 1); 300
                // bytes; 16 keys.
                Request::Evict {
                    cache: "c".into(),
                    partition: 1,
                    policy: crate::partition::Eviction::VolatileLru,
                    bytes: 300,
                    count: 16,
                },
                "13 0163 01 01 fb2c01 10",
            ),
            (
                // Feed; "c"; after Some(7); flags 300.
                Request::Feed {
                    cache: "c".into(),
                    after: Some(7),
                    flags: 300,
                },
                "14 0163 01 07 fb2c01",
            ),
            (
                // Publish; "c"; origin 9; "ch"; "m"; not shard.
                Request::Publish {
                    cache: "c".into(),
                    origin: 9,
                    channel: "ch".into(),
                    message: "m".into(),
                    shard: false,
                },
                "15 0163 09 026368 016d 00",
            ),
        ] {
            assert_eq!(
                payload(&Envelope { id: 2, body }),
                format!("000402{}", bytes.replace(' ', ""))
            );
        }
    }

    #[test]
    fn golden_bytes_of_responses() {
        let executed = Envelope {
            id: 1,
            body: Response::Executed {
                replies: vec![
                    Executed {
                        reply: Reply::ok(),
                        work: 0,
                        waits: false,
                        resume: None,
                    },
                    Executed {
                        reply: Reply::Array(vec![
                            Reply::bulk_slice(b"v"),
                            Reply::Nil,
                            Reply::Int(-2),
                        ]),
                        work: 2,
                        waits: false,
                        resume: None,
                    },
                    Executed {
                        reply: Reply::NilArray,
                        work: 1,
                        waits: true,
                        resume: None,
                    },
                ],
                stats: Box::new(Stats {
                    first_slot: 0,
                    last_slot: 16383,
                    keys: 1,
                    volatile_keys: 0,
                    used_bytes: 64,
                    events: stats_events(),
                }),
                events: vec![FeedItem::Message {
                    channel: "c".into(),
                    message: "m".into(),
                    shard: false,
                }],
                feed: 300,
            },
        };
        // Status "OK" work 0 no wait, no resume; Array [Bulk "v", Nil, Int
        // -2 (zigzag 3)] work 2 no wait, no resume; NilArray work 1, waits,
        // no resume; stats: slots 0-16383, 1 key, 0
        // volatile, 64 bytes, events 5 6 7 8 9; [Message "c" "m" not
        // shard]; feed 300.
        assert_eq!(
            payload(&executed),
            "000401020300024f4b000000 0503030176040203020000 06010100\
             00fbff3f 01 00 40 05 06 07 08 09 \
             01 01 0163 016d 00 fb2c01"
                .replace(' ', "")
        );
        for (message, bytes) in [
            (Response::Hosted, "00040000"),
            (
                Response::Routes {
                    epoch: 4,
                    ranges: vec![Range {
                        first: 0,
                        last: 16383,
                        partition: 1,
                        node: "n:1".into(),
                    }],
                },
                "00040001040100fbff3f01036e3a31",
            ),
            (Response::Aborted, "00040003"),
            (Response::Moved { epoch: 251 }, "00040004fbfb00"),
            (Response::Busy, "00040005"),
            (Response::NeedListeners, "00040014"),
            (
                Response::Stats(Stats {
                    first_slot: 0,
                    last_slot: 8191,
                    keys: 10,
                    volatile_keys: 1,
                    used_bytes: 1000,
                    events: stats_events(),
                }),
                // ...; events: hits 5, misses 6, expired 7, evicted 8,
                // lazyfreed 9.
                "0004000600fbff1f0a01fbe803 05 06 07 08 09",
            ),
            (
                Response::Failed("no cache c".into()),
                "000400070a6e6f2063616368652063",
            ),
            (Response::Changed { partition: 3 }, "0004000803"),
            (
                Response::Keys(KeysDone::Scanned {
                    keys: vec![Bytes::from_static(b"k")],
                    next: Some(7),
                    visited: 3,
                    slots: 1,
                }),
                "00040009 00 01016b 0107 03 01",
            ),
            (
                Response::Keys(KeysDone::Random {
                    key: None,
                    walked: 4,
                }),
                "00040009 01 00 04",
            ),
            (
                Response::Keys(KeysDone::InSlot {
                    count: 2,
                    keys: Vec::new(),
                }),
                "00040009 02 02 00",
            ),
            (Response::Keys(KeysDone::Flushed), "00040009 03"),
            (Response::Versions(vec![0, 300]), "0004000a 02 00 fb2c01"),
            (
                Response::Blocked {
                    subscription: 1,
                    ticket: 2,
                },
                "0004000b 01 02",
            ),
            (Response::Woken, "0004000c"),
            (Response::Done, "0004000d"),
            (Response::Welcome, "0004000e"),
            (
                Response::Exported {
                    first: 7,
                    last: 8,
                    epoch: 9,
                    keys: vec![Carried {
                        key: "k".into(),
                        expire_at: 300,
                        payload: "p".into(),
                    }],
                },
                "0004000f 07 08 09 01 016b fb2c01 0170",
            ),
            (Response::Imported { epoch: 9 }, "00040010 09"),
            (
                Response::Evicted {
                    keys: 3,
                    stats: Stats {
                        first_slot: 1,
                        last_slot: 2,
                        keys: 0,
                        volatile_keys: 0,
                        used_bytes: 0,
                        events: stats_events(),
                    },
                },
                "00040012 03 01 02 00 00 00 05 06 07 08 09",
            ),
            (
                // Fed: next 2; [(origin 0, Key {class 4, "del", "k"}),
                // (origin 9, Message {"c", "m", shard true})].
                Response::Fed {
                    next: 2,
                    items: vec![
                        (
                            0,
                            FeedItem::Key(crate::partition::notify::KeyEvent {
                                class: 4,
                                event: "del".into(),
                                key: "k".into(),
                            }),
                        ),
                        (
                            9,
                            FeedItem::Message {
                                channel: "c".into(),
                                message: "m".into(),
                                shard: true,
                            },
                        ),
                    ],
                },
                "00040013 02 02 00 00 04 0364656c 016b 09 01 0163 016d 01",
            ),
            (Response::Killed(KillOutcome::Unkillable), "00040011 01"),
        ] {
            assert_eq!(
                payload(&Envelope {
                    id: 0,
                    body: message.clone()
                }),
                bytes.replace(' ', ""),
                "{message:?}"
            );
        }
    }

    #[test]
    fn every_message_round_trips_through_the_codec() {
        let mut proxy = ProxyCodec::default();
        let mut node = NodeCodec::default();
        let request = Envelope {
            id: u64::MAX,
            body: Request::Execute(Execute {
                cache: "c".into(),
                partition: 1,
                epoch: 1,
                slots: vec![0, 16383],
                commands: vec![vec!["MSET".into(), vec![0u8; 70_000].into(), "x".into()]],
                watched: Vec::new(),
                options: Options {
                    ticket: Some(3),
                    retry: true,
                    ..options()
                },
            }),
        };
        let mut buf = BytesMut::new();
        proxy.encode(request.clone(), &mut buf).unwrap();
        // Incomplete until the last byte arrives.
        let mut partial = buf.split_to(buf.len() - 1);
        assert!(node.decode(&mut partial).unwrap().is_none());
        partial.unsplit(buf);
        assert_eq!(node.decode(&mut partial).unwrap(), Some(request));
        let reply = Envelope {
            id: 9,
            body: Response::Executed {
                replies: vec![Executed {
                    reply: Reply::Map(vec![(Reply::Double(1.5), Reply::Verbatim("txt".into()))]),
                    work: 3,
                    waits: false,
                    resume: None,
                }],
                stats: Box::new(Stats {
                    first_slot: 0,
                    last_slot: 16383,
                    keys: 1,
                    volatile_keys: 1,
                    used_bytes: 100,
                    events: stats_events(),
                }),
                events: Vec::new(),
                feed: 0,
            },
        };
        let mut buf = BytesMut::new();
        node.encode(reply.clone(), &mut buf).unwrap();
        assert_eq!(proxy.decode(&mut buf).unwrap(), Some(reply));
    }

    #[test]
    fn another_version_or_trailing_bytes_are_refused() {
        let mut out = BytesMut::new();
        encode(&Response::Busy, &mut out).unwrap();
        let mut other = out.to_vec();
        other[1] = 1;
        assert!(matches!(
            decode::<Response>(&other),
            Err(WireError::Version(1))
        ));
        let mut longer = out.to_vec();
        longer.push(0);
        assert!(matches!(
            decode::<Response>(&longer),
            Err(WireError::Decode(_))
        ));
        assert!(matches!(decode::<Response>(&[0]), Err(WireError::Short)));
        // A frame whose length header promises more than the limit.
        let mut codec = ProxyCodec::default();
        let mut huge = BytesMut::from(&((MAX_FRAME as u32 + 1).to_be_bytes())[..]);
        assert!(codec.decode(&mut huge).is_err());
    }

    /// A message over the frame limit is refused as too big with nothing
    /// written, and the codec writes the next one (the connection carries
    /// on: the sender answers that one request with an error).
    #[test]
    fn a_message_over_the_limit_writes_nothing_and_the_next_goes_out() {
        let mut codec = NodeCodec::default();
        codec.set_max_frame(1024);
        let mut out = BytesMut::new();
        let big = Envelope {
            id: 7,
            body: Response::Failed("x".repeat(2000)),
        };
        assert!(matches!(
            codec.encode(big, &mut out),
            Err(WireError::TooBig(n)) if n > 2000
        ));
        assert!(out.is_empty());
        let small = Envelope {
            id: 7,
            body: Response::Failed(too_big(2000)),
        };
        codec.encode(small, &mut out).unwrap();
        let mut reader = ProxyCodec::default();
        let back = reader.decode(&mut out).unwrap().expect("a whole frame");
        assert_eq!(back.id, 7);
        assert!(matches!(back.body, Response::Failed(t) if t.starts_with("ERR ")));
    }
}
