//! Users of a cache and their access strings (Redis 7 ACL rules).
//!
//! A cache has its default user (whoever presents the cache's token: every
//! permission) and any number of named users, each with an access string
//! such as `on ~product:* -@all +get +mget` and one or more passwords. Users
//! are managed through the control API (`/v1/caches/{cache}/users`), never
//! from a client (as ElastiCache). A user logs in as `<cache>.<user>`.
//!
//! - Rules apply left to right as in Redis: an access string is kept as the
//!   list of its command rules, and a command is allowed by the last rule
//!   that names it, its subcommand or one of its categories.
//! - Categories are Redis's, derived from the command table (family and
//!   flags; [`crate::cmd::table::acl_flags`] for admin and dangerous ones).
//! - Passwords are kept as SHA-256 hashes: salted when given in clear,
//!   Redis's unsalted `#<hex>` form when given hashed; compared in constant
//!   time.
//! - A user's rules change for connections already logged in at their next
//!   command (as Redis); a user's connections close only when asked
//!   ([`User::disconnect`]) or when the user is deleted.

use std::sync::Arc;

use crate::attention::{REVOKED, Roster};
use parking_lot::RwLock;
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::cmd::{CommandSpec, Family, flags};
use crate::glob::string_match;

pub mod guard;
pub mod log;

/// Redis's ACL categories, in its `ACL CAT` order.
pub const CATEGORIES: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// The bit of category `name` (case-insensitive), if it is one.
pub fn category_bit(name: &str) -> Option<u32> {
    CATEGORIES
        .iter()
        .position(|c| c.eq_ignore_ascii_case(name))
        .map(|i| 1 << i)
}

fn bit(name: &str) -> u32 {
    category_bit(name).unwrap_or(0)
}

/// The categories of `spec` (and of its subcommand `sub`, for a container
/// such as CLIENT or CONFIG), as a bit set over [`CATEGORIES`].
pub fn categories(spec: &CommandSpec, sub: Option<&[u8]>) -> u32 {
    let family = match spec.family {
        Family::String => "string",
        Family::Keys => "keyspace",
        Family::Hash => "hash",
        Family::Connection => "connection",
        Family::List => "list",
        Family::Set => "set",
        Family::SortedSet => "sortedset",
        Family::HyperLogLog => "hyperloglog",
        Family::Bitmap => "bitmap",
        Family::Stream => "stream",
        Family::Geo => "geo",
        Family::PubSub => "pubsub",
        Family::Transaction => "transaction",
        Family::Scripting => "scripting",
        Family::Server | Family::Cluster | Family::Memcached => "",
    };
    let mut f = crate::cmd::table::acl_flags(spec, sub);
    if spec.family == Family::Scripting && f == spec.flags {
        // Redis puts scripts in neither @read nor @write (FUNCTION's
        // subcommands that change libraries are @write, by their flags).
        f &= !(flags::READ | flags::WRITE);
    }
    let mut cats = match crate::cmd::table::acl_family_categories(spec, sub) {
        Some(list) => list.iter().fold(0, |c, name| c | bit(name)),
        None => bit(family),
    };
    for (flag, name) in [
        (flags::READ, "read"),
        (flags::WRITE, "write"),
        (flags::BLOCKING, "blocking"),
        (flags::ADMIN, "admin"),
        (flags::ADMIN, "dangerous"),
        (flags::DANGEROUS, "dangerous"),
    ] {
        if f & flag != 0 {
            cats |= bit(name);
        }
    }
    cats | bit(if f & flags::FAST != 0 { "fast" } else { "slow" })
}

/// How a command is named in rules and denials: `get`, or `client|kill`
/// for a container's subcommand.
pub fn command_name(spec: &CommandSpec, args: &[bytes::Bytes]) -> String {
    match args.get(1).filter(|_| spec.has(flags::CONTAINER)) {
        Some(sub) => format!(
            "{}|{}",
            spec.name,
            String::from_utf8_lossy(sub).to_lowercase()
        ),
        None => spec.name.to_string(),
    }
}

/// A rule about commands, in the order the access string gave them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CommandRule {
    /// `+@all`/`allcommands` or `-@all`/`nocommands`.
    All(bool),
    /// `+@category` / `-@category`.
    Category(bool, u32),
    /// `+cmd` / `-cmd`, or `+cmd|sub` / `-cmd|sub`.
    Command(bool, &'static str, Option<String>),
}

impl CommandRule {
    /// Whether this rule names `spec` (with subcommand `sub`); its verdict.
    fn verdict(&self, spec: &CommandSpec, sub: Option<&str>, cats: u32) -> Option<bool> {
        match self {
            CommandRule::All(allow) => Some(*allow),
            CommandRule::Category(allow, bits) => (cats & bits != 0).then_some(*allow),
            CommandRule::Command(allow, name, rule_sub) => {
                let named = *name == spec.name
                    && rule_sub
                        .as_deref()
                        .is_none_or(|s| sub.is_some_and(|x| x.eq_ignore_ascii_case(s)));
                named.then_some(*allow)
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            CommandRule::All(true) => "+@all".into(),
            CommandRule::All(false) => "-@all".into(),
            CommandRule::Category(allow, bits) => {
                let name = CATEGORIES[bits.trailing_zeros() as usize];
                format!("{}@{name}", if *allow { '+' } else { '-' })
            }
            CommandRule::Command(allow, name, sub) => {
                let sign = if *allow { '+' } else { '-' };
                match sub {
                    Some(s) => format!("{sign}{name}|{s}"),
                    None => format!("{sign}{name}"),
                }
            }
        }
    }
}

/// A key pattern with the access it grants (`~p` both, `%R~p`, `%W~p`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyPattern {
    pattern: Vec<u8>,
    read: bool,
    write: bool,
}

/// A stored password: salted when it was given in clear, Redis's plain
/// SHA-256 when it was given as `#<hex>`.
#[derive(Clone)]
enum Password {
    Salted { salt: [u8; 16], hash: [u8; 32] },
    Sha256([u8; 32]),
}

impl Password {
    fn from_clear(clear: &[u8]) -> Password {
        let salt: [u8; 16] = rand::rng().random();
        Password::Salted {
            salt,
            hash: salted(&salt, clear),
        }
    }

    fn matches(&self, presented: &[u8]) -> subtle::Choice {
        match self {
            Password::Salted { salt, hash } => salted(salt, presented).ct_eq(hash),
            Password::Sha256(hash) => <[u8; 32]>::from(Sha256::digest(presented)).ct_eq(hash),
        }
    }

    /// Whether this is the password `clear` (for `<password` removal).
    fn is(&self, clear: &[u8]) -> bool {
        bool::from(self.matches(clear))
    }
}

fn salted(salt: &[u8; 16], clear: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(clear);
    h.finalize().into()
}

fn parse_hex_hash(hex: &str) -> Option<[u8; 32]> {
    parse_hex_bytes(hex)
}

/// `N` bytes from `2N` lowercase hex digits.
fn parse_hex_bytes<const N: usize>(hex: &str) -> Option<[u8; N]> {
    let digit = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if hex.len() != 2 * N || !hex.bytes().all(digit) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Passwords, key patterns, channel patterns or command rules one user may
/// hold, each (a tenant's `ACL SETUSER` calls must not grow without bound).
pub const MAX_ENTRIES: usize = 1024;
/// Longest rule, bytes: a key or channel pattern is kept as given (a
/// password is kept hashed, whatever its length).
pub const MAX_RULE_LEN: usize = 4096;

/// What a user may do: the result of applying an access string.
#[derive(Clone)]
pub struct Access {
    enabled: bool,
    nopass: bool,
    passwords: Vec<Password>,
    keys: Vec<KeyPattern>,
    /// `None` = every channel (`allchannels`).
    channels: Option<Vec<Vec<u8>>>,
    commands: Vec<CommandRule>,
}

impl Default for Access {
    /// A new user as Redis makes one: off, no passwords, no keys, no
    /// channels, no commands.
    fn default() -> Access {
        Access {
            enabled: false,
            nopass: false,
            passwords: Vec::new(),
            keys: Vec::new(),
            channels: Some(Vec::new()),
            commands: Vec::new(),
        }
    }
}

/// Why an access string was refused (the API answers 400 with it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Error in ACL SETUSER modifier '{rule}': {why}")]
pub struct RuleError {
    pub rule: String,
    pub why: &'static str,
}

/// A command refused by a user's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// The command (named as in [`command_name`]).
    Command(String),
    /// The key at this argument position.
    Key(usize),
    /// The channel at this argument position.
    Channel(usize),
}

impl Denied {
    /// The error a script gets for a call its user may not make.
    pub fn in_script(&self) -> &'static str {
        match self {
            Denied::Command(_) => crate::resp::reply::SCRIPT_NOPERM_COMMAND,
            Denied::Key(_) => crate::resp::reply::SCRIPT_NOPERM_KEY,
            Denied::Channel(_) => crate::resp::reply::SCRIPT_NOPERM_CHANNEL,
        }
    }
}

/// The gate a script's calls pass: `access()` read at each call (the
/// user's rules as they are then).
pub fn script_gate(
    access: impl Fn() -> Arc<Access> + Send + Sync + 'static,
) -> crate::cmd::script::CommandGate {
    let access = Arc::new(access);
    let rules = access.clone();
    crate::cmd::script::CommandGate {
        check: Arc::new(move |spec, args| access().check(spec, args).err().map(|d| d.in_script())),
        rules: Arc::new(move || rules().permission_rules()),
    }
}

impl Access {
    /// Every permission, no password needed: a cache's default user.
    pub fn full() -> Access {
        Access {
            enabled: true,
            nopass: true,
            passwords: Vec::new(),
            keys: vec![KeyPattern {
                pattern: b"*".to_vec(),
                read: true,
                write: true,
            }],
            channels: None,
            commands: vec![CommandRule::All(true)],
        }
    }

    /// Applies the whitespace-separated rules of `access` left to right.
    pub fn apply(&mut self, access: &str) -> Result<(), RuleError> {
        access
            .split_ascii_whitespace()
            .try_for_each(|r| self.apply_rule(r))
    }

    /// Applies one rule (an argument of `ACL SETUSER`: a password may hold
    /// spaces). Each list a rule adds to holds at most [`MAX_ENTRIES`].
    pub fn apply_rule(&mut self, rule: &str) -> Result<(), RuleError> {
        let refused = |why| RuleError {
            rule: rule.to_string(),
            why,
        };
        let hashed = rule.starts_with('>') || rule.starts_with('<');
        if rule.len() > MAX_RULE_LEN && !hashed {
            return Err(refused("rule longer than 4096 bytes"));
        }
        self.apply_one(rule).map_err(refused)?;
        let longest = [
            self.passwords.len(),
            self.keys.len(),
            self.channels.as_ref().map_or(0, Vec::len),
            self.commands.len(),
        ];
        if longest.into_iter().max().unwrap_or(0) > MAX_ENTRIES {
            return Err(refused("too many passwords, patterns or command rules"));
        }
        Ok(())
    }

    fn apply_one(&mut self, rule: &str) -> Result<(), &'static str> {
        let lower = rule.to_ascii_lowercase();
        match lower.as_str() {
            "on" => self.enabled = true,
            "off" => self.enabled = false,
            "nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            "resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            "allkeys" => self.apply_one("~*")?,
            "resetkeys" => self.keys.clear(),
            "allchannels" => self.channels = None,
            "resetchannels" => self.channels = Some(Vec::new()),
            "allcommands" => self.commands = vec![CommandRule::All(true)],
            "nocommands" => self.commands = vec![CommandRule::All(false)],
            "reset" => *self = Access::default(),
            _ => return self.apply_prefixed(rule),
        }
        Ok(())
    }

    fn apply_prefixed(&mut self, rule: &str) -> Result<(), &'static str> {
        if let Some(p) = rule.strip_prefix('>') {
            self.nopass = false;
            if !self.passwords.iter().any(|x| x.is(p.as_bytes())) {
                self.passwords.push(Password::from_clear(p.as_bytes()));
            }
        } else if let Some(p) = rule.strip_prefix('<') {
            let before = self.passwords.len();
            self.passwords.retain(|x| !x.is(p.as_bytes()));
            if self.passwords.len() == before {
                return Err("no such password");
            }
        } else if let Some(h) = rule.strip_prefix('#') {
            let hash = parse_hex_hash(h).ok_or("The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters")?;
            self.nopass = false;
            self.passwords.push(Password::Sha256(hash));
        } else if let Some(h) = rule.strip_prefix('!') {
            let hash = parse_hex_hash(h).ok_or("The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters")?;
            let before = self.passwords.len();
            self.passwords
                .retain(|x| !matches!(x, Password::Sha256(k) if *k == hash));
            if self.passwords.len() == before {
                return Err("no such password");
            }
        } else if let Some(p) = rule.strip_prefix('~') {
            self.add_keys(p, true, true);
        } else if let Some(rest) = rule.strip_prefix('%') {
            let (perms, p) = rest.split_once('~').ok_or("Syntax error")?;
            let (mut read, mut write) = (false, false);
            for c in perms.chars() {
                match c.to_ascii_uppercase() {
                    'R' => read = true,
                    'W' => write = true,
                    _ => return Err("Syntax error"),
                }
            }
            if !read && !write {
                return Err("Syntax error");
            }
            self.add_keys(p, read, write);
        } else if let Some(p) = rule.strip_prefix('&') {
            if let Some(list) = &mut self.channels {
                list.push(p.as_bytes().to_vec());
            }
        } else if let Some(r) = rule.strip_prefix('+') {
            self.commands.push(command_rule(true, r)?);
        } else if let Some(r) = rule.strip_prefix('-') {
            self.commands.push(command_rule(false, r)?);
        } else {
            return Err("Syntax error");
        }
        Ok(())
    }

    fn add_keys(&mut self, pattern: &str, read: bool, write: bool) {
        let pattern = pattern.as_bytes().to_vec();
        if let Some(k) = self.keys.iter_mut().find(|k| k.pattern == pattern) {
            k.read |= read;
            k.write |= write;
        } else {
            self.keys.push(KeyPattern {
                pattern,
                read,
                write,
            });
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether `password` logs this user in (constant time over the
    /// stored passwords).
    pub fn check_password(&self, password: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        if self.nopass {
            return true;
        }
        let mut ok = subtle::Choice::from(0);
        for p in &self.passwords {
            ok |= p.matches(password);
        }
        bool::from(ok)
    }

    /// Whether the rules let `spec` run (with `args`, for its subcommand).
    pub fn allows_command(&self, spec: &CommandSpec, args: &[bytes::Bytes]) -> bool {
        let sub = args
            .get(1)
            .filter(|_| spec.has(flags::CONTAINER))
            .and_then(|s| std::str::from_utf8(s).ok());
        let cats = categories(spec, sub.map(str::as_bytes));
        self.commands
            .iter()
            .rev()
            .find_map(|r| r.verdict(spec, sub, cats))
            .unwrap_or(false)
    }

    /// Whether `key` may be read (`write` false) or written.
    pub fn allows_key(&self, key: &[u8], write: bool) -> bool {
        self.keys.iter().any(|k| {
            (if write { k.write } else { k.read })
                && (k.pattern == b"*" || string_match(&k.pattern, key, false))
        })
    }

    /// Whether `channel` may be used; a pattern (PSUBSCRIBE) must equal one
    /// of the user's patterns, as Redis checks it.
    pub fn allows_channel(&self, channel: &[u8], is_pattern: bool) -> bool {
        match &self.channels {
            None => true,
            Some(list) => list.iter().any(|p| {
                if is_pattern {
                    p == channel
                } else {
                    string_match(p, channel, false)
                }
            }),
        }
    }

    /// Checks a command, then its keys (read or write as the command is).
    pub fn check(&self, spec: &CommandSpec, args: &[bytes::Bytes]) -> Result<(), Denied> {
        if !self.allows_command(spec, args) {
            return Err(Denied::Command(command_name(spec, args)));
        }
        // Channels: PUBLISH/SPUBLISH name one, (S)SUBSCRIBE several,
        // PSUBSCRIBE patterns (compared literally, as Redis does).
        let channels = match spec.name {
            "publish" | "spublish" => 1..2.min(args.len()),
            "subscribe" | "ssubscribe" | "psubscribe" => 1..args.len(),
            _ => 0..0,
        };
        for i in channels {
            if !self.allows_channel(&args[i], spec.name == "psubscribe") {
                return Err(Denied::Channel(i));
            }
        }
        let write = spec.has(flags::WRITE);
        for i in spec.key_positions(args) {
            if let Some(key) = args.get(i)
                && !self.allows_key(key, write)
            {
                return Err(Denied::Key(i));
            }
        }
        Ok(())
    }

    /// The pieces `ACL GETUSER` shows: flags, password hashes (Redis's
    /// unsalted ones), key patterns, channel patterns, command rules.
    pub fn parts(&self) -> (Vec<&'static str>, Vec<String>, String, String, String) {
        let mut flags = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            flags.push("nopass");
        }
        let passwords = self
            .passwords
            .iter()
            .filter_map(|p| match p {
                Password::Sha256(h) => Some(hex(h)),
                Password::Salted { .. } => None,
            })
            .collect();
        let keys = self
            .keys
            .iter()
            .map(|k| {
                let p = String::from_utf8_lossy(&k.pattern);
                match (k.read, k.write) {
                    (true, true) => format!("~{p}"),
                    (true, false) => format!("%R~{p}"),
                    _ => format!("%W~{p}"),
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        let channels = match &self.channels {
            None => "&*".to_string(),
            Some(list) => list
                .iter()
                .map(|c| format!("&{}", String::from_utf8_lossy(c)))
                .collect::<Vec<_>>()
                .join(" "),
        };
        let mut commands: Vec<String> = Vec::new();
        if !matches!(self.commands.first(), Some(CommandRule::All(_))) {
            commands.push("-@all".into());
        }
        commands.extend(self.commands.iter().map(CommandRule::describe));
        (flags, passwords, keys, channels, commands.join(" "))
    }

    /// The access string as `ACL LIST` shows it (passwords as `#<hash>` of
    /// Redis's unsalted form only; salted ones are not shown at all).
    pub fn describe(&self) -> String {
        self.rules(true).join(" ")
    }

    /// What the user may run and touch, as rules (no passwords): applied
    /// one by one to a fresh [`Access`] ([`Access::from_rules`]) they give
    /// the same permissions.
    pub fn permission_rules(&self) -> Vec<String> {
        self.rules(false)
    }

    /// An access made of `rules` ([`Access::permission_rules`]).
    pub fn from_rules(rules: &[String]) -> Result<Access, RuleError> {
        let mut access = Access::default();
        for r in rules {
            access.apply_rule(r)?;
        }
        Ok(access)
    }

    fn rules(&self, passwords: bool) -> Vec<String> {
        let mut out = vec![if self.enabled { "on" } else { "off" }.to_string()];
        if self.nopass {
            out.push("nopass".into());
        }
        for p in self.passwords.iter().filter(|_| passwords) {
            if let Password::Sha256(h) = p {
                out.push(format!("#{}", hex(h)));
            }
        }
        out.push("resetkeys".into());
        for k in &self.keys {
            out.push(match (k.read, k.write) {
                (true, true) => format!("~{}", String::from_utf8_lossy(&k.pattern)),
                (true, false) => format!("%R~{}", String::from_utf8_lossy(&k.pattern)),
                _ => format!("%W~{}", String::from_utf8_lossy(&k.pattern)),
            });
        }
        match &self.channels {
            None => out.push("&*".into()),
            Some(list) => {
                out.push("resetchannels".into());
                out.extend(
                    list.iter()
                        .map(|c| format!("&{}", String::from_utf8_lossy(c))),
                );
            }
        }
        if !matches!(self.commands.first(), Some(CommandRule::All(_))) {
            out.push("-@all".into());
        }
        out.extend(self.commands.iter().map(CommandRule::describe));
        out
    }

    /// How many passwords are set (the API shows the count, never them).
    pub fn password_count(&self) -> usize {
        self.passwords.len()
    }

    /// The access as control sends it to proxies: its permission rules and
    /// its stored passwords (`<salt hex>:<hash hex>` for a salted one,
    /// `<hash hex>` for Redis's unsalted SHA-256 — never a password in
    /// clear). [`Access::from_replica`] makes the same access of them.
    pub fn replica(&self) -> (Vec<String>, Vec<String>) {
        let passwords = self
            .passwords
            .iter()
            .map(|p| match p {
                Password::Salted { salt, hash } => format!("{}:{}", hex(salt), hex(hash)),
                Password::Sha256(hash) => hex(hash),
            })
            .collect();
        (self.permission_rules(), passwords)
    }

    /// The access [`Access::replica`] described.
    pub fn from_replica(rules: &[String], passwords: &[String]) -> Result<Access, RuleError> {
        let mut access = Access::from_rules(rules)?;
        for p in passwords {
            let bad = || RuleError {
                rule: "#<hash>".into(),
                why: "a stored password is neither <salt>:<hash> nor <hash>, in hex",
            };
            let password = match p.split_once(':') {
                Some((salt, hash)) => {
                    let salt = parse_hex_bytes::<16>(salt).ok_or_else(bad)?;
                    let hash = parse_hex_hash(hash).ok_or_else(bad)?;
                    Password::Salted { salt, hash }
                }
                None => Password::Sha256(parse_hex_hash(p).ok_or_else(bad)?),
            };
            access.passwords.push(password);
        }
        Ok(access)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `+<r>` or `-<r>`: a command, `cmd|sub` or `@category`.
fn command_rule(allow: bool, r: &str) -> Result<CommandRule, &'static str> {
    const UNKNOWN: &str = "Unknown command or category name in ACL";
    if let Some(cat) = r.strip_prefix('@') {
        if cat.eq_ignore_ascii_case("all") {
            return Ok(CommandRule::All(allow));
        }
        return category_bit(cat)
            .map(|b| CommandRule::Category(allow, b))
            .ok_or(UNKNOWN);
    }
    let (name, sub) = match r.split_once('|') {
        Some((n, s)) if !s.is_empty() && !s.contains('|') => (n, Some(s.to_ascii_lowercase())),
        Some(_) => return Err(UNKNOWN),
        None => (r, None),
    };
    let spec = crate::cmd::lookup(name.as_bytes()).ok_or(UNKNOWN)?;
    if sub.is_some() && !spec.has(flags::CONTAINER) {
        return Err("Allowing first-arg of a subcommand is not supported");
    }
    Ok(CommandRule::Command(allow, spec.name, sub))
}

/// A named user of a cache.
pub struct User {
    pub name: String,
    access: RwLock<Arc<Access>>,
    /// The connections logged in as this user (closed by
    /// [`User::disconnect`]).
    pub sessions: Roster,
    /// How many times [`User::disconnect`] ran: a proxy that sees control's
    /// count grow closes its own connections of the user too.
    revocations: std::sync::atomic::AtomicU64,
}

impl User {
    /// A user from its access string and passwords in clear (which are
    /// added to the `>` passwords of the access string).
    pub fn new(name: &str, access: &str, passwords: &[String]) -> Result<User, RuleError> {
        let user = User {
            name: name.to_string(),
            access: RwLock::new(Arc::new(Access::default())),
            sessions: Roster::default(),
            revocations: std::sync::atomic::AtomicU64::new(0),
        };
        user.update(Some(access), Some(passwords))?;
        Ok(user)
    }

    /// What the user may do now.
    pub fn access(&self) -> Arc<Access> {
        self.access.read().clone()
    }

    /// Replaces the access string and/or the passwords (a new list replaces
    /// the whole list; the access string's `>` rules add to it).
    pub fn update(
        &self,
        access: Option<&str>,
        passwords: Option<&[String]>,
    ) -> Result<(), RuleError> {
        let current = self.access();
        let mut next = match access {
            Some(text) => {
                let mut a = Access::default();
                a.apply(text)?;
                if passwords.is_none() && !a.nopass {
                    // Keep the passwords the user had unless new ones come.
                    let mut kept = current.passwords.clone();
                    kept.append(&mut a.passwords);
                    a.passwords = kept;
                }
                a
            }
            None => (*current).clone(),
        };
        if let Some(list) = passwords {
            if access.is_none() {
                next.passwords.clear();
            }
            next.passwords
                .extend(list.iter().map(|p| Password::from_clear(p.as_bytes())));
            if !list.is_empty() {
                next.nopass = false;
            }
        }
        *self.access.write() = Arc::new(next);
        Ok(())
    }

    /// Applies `ACL SETUSER` rules, one per argument, to what the user may
    /// do now; all or nothing.
    pub fn apply_rules(&self, rules: &[String]) -> Result<(), RuleError> {
        let mut next = (*self.access()).clone();
        rules.iter().try_for_each(|r| next.apply_rule(r))?;
        *self.access.write() = Arc::new(next);
        Ok(())
    }

    /// Closes every connection logged in as this user.
    pub fn disconnect(&self) {
        self.revocations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.sessions.raise_and_clear(REVOKED);
    }

    /// How many times the user's connections were closed on demand.
    pub fn revocations(&self) -> u64 {
        self.revocations.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Makes the user what control says it is (a proxy following
    /// control): its access, and its connections closed as many times as
    /// control closed them.
    pub fn follow(&self, access: Access, revocations: u64) {
        *self.access.write() = Arc::new(access);
        if self.revocations() < revocations {
            self.sessions.raise_and_clear(REVOKED);
        }
        self.revocations
            .store(revocations, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A valid user name: `[A-Za-z0-9_-]{1,64}` (the login is `<cache>.<user>`).
pub fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words.iter().map(|w| Bytes::from(w.to_string())).collect()
    }

    fn access(rules: &str) -> Access {
        let mut a = Access::default();
        a.apply(rules).expect("rules");
        a
    }

    fn allowed(a: &Access, words: &[&str]) -> bool {
        let args = args(words);
        let spec = crate::cmd::lookup(&args[0]).expect("command");
        a.check(spec, &args).is_ok()
    }

    /// What control sends proxies makes the same user there: the same
    /// permissions, the same passwords (salted or not), none in clear.
    #[test]
    fn a_replica_is_the_same_access() {
        let hash = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";
        let a = access(&format!(
            "on >secret #{hash} %R~r:* ~k:* &news:* -@all +get +acl|whoami"
        ));
        let (rules, passwords) = a.replica();
        assert_eq!(passwords.len(), 2);
        assert!(passwords.iter().all(|p| !p.contains("secret")));
        assert!(passwords.contains(&hash.to_string()));
        let b = Access::from_replica(&rules, &passwords).expect("replica applies");
        assert_eq!(b.replica(), (rules, passwords));
        assert!(b.check_password(b"secret") && b.check_password(b"password"));
        assert!(!b.check_password(b"other"));
        assert!(allowed(&b, &["GET", "k:1"]) && allowed(&b, &["GET", "r:1"]));
        assert!(!allowed(&b, &["SET", "k:1", "v"]) && !allowed(&b, &["GET", "x"]));
        assert!(b.allows_channel(b"news:1", false) && !b.allows_channel(b"x", false));
        // A stored password that is neither form is refused.
        for bad in ["zz", "00:11", &hash.to_uppercase()] {
            assert!(
                Access::from_replica(&[], &[bad.to_string()]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn rules_apply_left_to_right() {
        let a = access("on ~* -@all +get +mget");
        assert!(allowed(&a, &["GET", "k"]));
        assert!(!allowed(&a, &["SET", "k", "v"]));
        let a = access("on ~* +@all -@string +get");
        assert!(allowed(&a, &["GET", "k"]));
        assert!(!allowed(&a, &["APPEND", "k", "v"]));
        assert!(allowed(&a, &["LPUSH", "k", "v"]));
        let a = access("on ~* +get -@all");
        assert!(!allowed(&a, &["GET", "k"]));
    }

    #[test]
    fn key_patterns_limit_reads_and_writes_apart() {
        let a = access("on %R~r:* %W~w:* ~rw:* +@all");
        assert!(allowed(&a, &["GET", "r:1"]));
        assert!(!allowed(&a, &["SET", "r:1", "v"]));
        assert!(allowed(&a, &["SET", "w:1", "v"]));
        assert!(!allowed(&a, &["GET", "w:1"]));
        assert!(allowed(&a, &["SET", "rw:1", "v"]));
        assert!(!allowed(&a, &["GET", "other"]));
        assert_eq!(
            a.check(
                crate::cmd::lookup(b"mget").unwrap(),
                &args(&["MGET", "r:1", "x"])
            ),
            Err(Denied::Key(2))
        );
    }

    #[test]
    fn dangerous_and_admin_come_from_the_table() {
        let a = access("on ~* +@all -@dangerous");
        assert!(!allowed(&a, &["KEYS", "*"]));
        assert!(!allowed(&a, &["FLUSHDB"]));
        assert!(!allowed(&a, &["CLIENT", "KILL", "ID", "1"]));
        assert!(allowed(&a, &["CLIENT", "ID"]));
        assert!(allowed(&a, &["GET", "k"]));
    }

    #[test]
    fn subcommand_rules() {
        let a = access("on ~* -@all +client|id");
        assert!(allowed(&a, &["CLIENT", "ID"]));
        assert!(!allowed(&a, &["CLIENT", "LIST"]));
        let args = args(&["CLIENT", "LIST"]);
        assert_eq!(
            a.check(crate::cmd::lookup(b"client").unwrap(), &args),
            Err(Denied::Command("client|list".into()))
        );
        assert!(Access::default().apply("+get|x").is_err());
    }

    #[test]
    fn passwords_clear_hashed_removed() {
        let mut a = access("on >one >two");
        assert!(a.check_password(b"one") && a.check_password(b"two"));
        assert!(!a.check_password(b"three"));
        a.apply("<one").expect("remove");
        assert!(!a.check_password(b"one") && a.check_password(b"two"));
        let h = hex(&Sha256::digest(b"hashed"));
        let b = access(&format!("on #{h}"));
        assert!(b.check_password(b"hashed"));
        assert!(!access("off >x").check_password(b"x"));
        assert!(access("on nopass").check_password(b"anything"));
        assert!(Access::default().apply("#abc").is_err());
    }

    #[test]
    fn channels() {
        let a = access("on resetchannels &news.*");
        assert!(a.allows_channel(b"news.sport", false));
        assert!(!a.allows_channel(b"other", false));
        assert!(a.allows_channel(b"news.*", true));
        assert!(!a.allows_channel(b"news.s*", true));
        assert!(access("allchannels").allows_channel(b"x", false));
    }

    #[test]
    fn bad_rules_are_refused() {
        for bad in ["+nosuchcmd", "+@nosuchcat", "bogus", "%X~k", "%~k"] {
            assert!(Access::default().apply(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn describe_round_trips() {
        let a = access("on ~k:* %R~r:* &c -@all +get +@hash -hdel");
        let d = a.describe();
        assert_eq!(
            d,
            "on resetkeys ~k:* %R~r:* resetchannels &c -@all +get +@hash -hdel"
        );
        let b = access(&d);
        assert_eq!(b.describe(), d);
    }

    #[test]
    fn user_updates_and_disconnects() {
        let u = User::new("app", "on ~* +@all", &["p1".into()]).expect("user");
        assert!(u.access().check_password(b"p1"));
        u.update(None, Some(&["p1".into(), "p2".into()]))
            .expect("add");
        assert!(u.access().check_password(b"p1") && u.access().check_password(b"p2"));
        u.update(Some("on ~* -@all +get"), None).expect("rules");
        assert!(u.access().check_password(b"p2"), "passwords kept");
        let session = std::sync::Arc::new(crate::attention::Attention::default());
        u.sessions.join(7, &session);
        u.disconnect();
        assert_eq!(session.raised(), REVOKED);
        assert!(u.sessions.is_empty(), "a later login is not disconnected");
        assert!(valid_user_name("app-ro_1") && !valid_user_name("a.b") && !valid_user_name(""));
    }
}
