//! The key layout of Stratus's metadata, all under [`ROOT`] (the README's
//! "Metadata in etcd" lists it). Values are JSON.
//!
//! ```text
//! /stratus/v1/caches/<cache>        a cache: limits, token hashes, users (control's `Placed`)
//! /stratus/v1/routing/<cache>       its routing table: epoch, ranges → partition, node
//! /stratus/v1/moves/<cache>         its move in progress: partition, from, to (one at a time)
//! /stratus/v1/scripts/<cache>/<sha> a script SCRIPT LOAD added through any proxy
//! /stratus/v1/functions/<cache>     its function libraries (the FUNCTION DUMP payload)
//! /stratus/v1/nodes/<id>            a node: its data-plane address (on its lease)
//! /stratus/v1/proxies/<id>          a proxy (on its lease)
//! /stratus/v1/control/leader        the control leader's id and API address (on its lease)
//! ```
//!
//! Cache names are `a-z0-9-` and node and proxy ids are checked the same
//! way ([`valid_id`]), so no name holds a `/`.

/// Every key of Stratus starts here (the version changes if the layout
/// does).
pub const ROOT: &str = "/stratus/v1/";

pub const CACHES: &str = "/stratus/v1/caches/";
pub const ROUTING: &str = "/stratus/v1/routing/";
pub const MOVES: &str = "/stratus/v1/moves/";
pub const SCRIPTS: &str = "/stratus/v1/scripts/";
pub const FUNCTIONS: &str = "/stratus/v1/functions/";
pub const NODES: &str = "/stratus/v1/nodes/";
pub const PROXIES: &str = "/stratus/v1/proxies/";
/// Control's election: whoever created this key (on its lease) leads; its
/// creation revision is the leader's fencing token.
pub const LEADER: &str = "/stratus/v1/control/leader";

pub fn cache(name: &str) -> String {
    format!("{CACHES}{name}")
}

pub fn routing(name: &str) -> String {
    format!("{ROUTING}{name}")
}

pub fn moves(name: &str) -> String {
    format!("{MOVES}{name}")
}

/// Every shared script of cache `name` is under this prefix.
pub fn scripts(name: &str) -> String {
    format!("{SCRIPTS}{name}/")
}

pub fn script(name: &str, sha: &str) -> String {
    format!("{SCRIPTS}{name}/{sha}")
}

pub fn functions(name: &str) -> String {
    format!("{FUNCTIONS}{name}")
}

pub fn node(id: &str) -> String {
    format!("{NODES}{id}")
}

pub fn proxy(id: &str) -> String {
    format!("{PROXIES}{id}")
}

/// The last part of `key` under `prefix` (a cache name, a node id).
pub fn name_of<'a>(prefix: &str, key: &'a str) -> Option<&'a str> {
    key.strip_prefix(prefix)
        .filter(|n| !n.is_empty() && !n.contains('/'))
}

/// Whether `id` may name a node or a proxy: 1 to 63 characters of
/// `a-z`, `0-9`, `-` and `.` (a Kubernetes pod name fits).
pub fn valid_id(id: &str) -> bool {
    (1..=63).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}

/// A node as it announces itself under [`NODES`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeRecord {
    /// Where proxies and control reach its data plane.
    pub addr: std::net::SocketAddr,
}

/// A move in progress, recorded before its first step and deleted after
/// its last: a new leader sends the cache's table to both nodes, which
/// finishes the step the table records and gives back one it does not.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveRecord {
    pub partition: u64,
    pub from: std::net::SocketAddr,
    pub to: std::net::SocketAddr,
}

/// Control's leader as it announces itself at [`LEADER`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaderRecord {
    pub id: String,
    /// Where its HTTP API answers (`host:port`).
    pub http: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_back_from_their_keys() {
        assert_eq!(name_of(CACHES, &cache("web")), Some("web"));
        assert_eq!(
            name_of(NODES, &node("stratus-node-0")),
            Some("stratus-node-0")
        );
        assert_eq!(name_of(CACHES, "/stratus/v1/caches/a/b"), None);
        assert_eq!(name_of(CACHES, CACHES), None);
        assert_eq!(name_of(CACHES, &routing("web")), None);
        assert!(valid_id("stratus-node-0") && valid_id("node-1.local"));
        assert!(
            !valid_id("") && !valid_id("a/b") && !valid_id("Node") && !valid_id(&"a".repeat(64))
        );
    }
}
