//! Every client-visible reply and error string, byte for byte as Redis 7 sends
//! them (without the leading `+`/`-` and the CRLF). Clients parse these: change
//! one only to match Redis.

pub const OK: &str = "OK";
pub const PONG: &str = "PONG";
pub const QUEUED: &str = "QUEUED";
pub const RESET: &str = "RESET";

pub const SYNTAX: &str = "ERR syntax error";
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
pub const DECREMENT_OVERFLOW: &str = "ERR decrement would overflow";
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
pub const VALUE_NAN_OR_INF: &str = "ERR value is NaN or Infinity";
pub const NAN_OR_INF: &str = "ERR increment would produce NaN or Infinity";
pub const NO_SUCH_KEY: &str = "ERR no such key";
pub const HASH_NOT_INTEGER: &str = "ERR hash value is not an integer";
pub const HASH_NOT_FLOAT: &str = "ERR hash value is not a float";
pub const STRING_TOO_LONG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
pub const OFFSET_OUT_OF_RANGE: &str = "ERR offset is out of range";
pub const INVALID_CURSOR: &str = "ERR invalid cursor";
pub const NX_XX_GT_LT: &str = "ERR NX and XX, GT or LT options at the same time are not compatible";
pub const GT_LT: &str = "ERR GT and LT options at the same time are not compatible";
pub const SELECT_CLUSTER: &str = "ERR SELECT is not allowed in cluster mode";
pub const COPY_DB_CLUSTER: &str = "ERR Copying to another database is not allowed in cluster mode";
pub const SAME_OBJECT: &str = "ERR source and destination objects are the same";
pub const INVALID_SLOT: &str = "ERR Invalid slot";
pub const INVALID_KEY_COUNT: &str = "ERR Invalid number of keys";
pub const TRYAGAIN: &str = "TRYAGAIN Multiple keys request during rehashing of slot";
pub const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";
pub const NOAUTH: &str = "NOAUTH Authentication required.";
pub const NOAUTH_HELLO: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time";
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
pub const PROTOVER_NOT_INTEGER: &str = "ERR Protocol version is not an integer or out of range";
pub const INVALID_COMMAND_SPECIFIED: &str = "ERR Invalid command specified";
pub const INVALID_ARGUMENTS: &str = "ERR Invalid number of arguments specified for command";
pub const NO_KEY_ARGUMENTS: &str = "ERR The command has no key arguments";
pub const NOPROTO: &str = "NOPROTO unsupported protocol version";
pub const MAX_CLIENTS: &str = "ERR max number of clients reached";
pub const CLIENT_NAME_SPACES: &str =
    "ERR Client names cannot contain spaces, newlines or special characters.";
pub const VALUE_OUT_OF_RANGE: &str = "ERR value is out of range";
pub const KEY_TOO_LONG: &str = "ERR key exceeds the maximum key length";
pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";
pub const CACHE_DELETED: &str = "ERR this connection's cache was deleted";

/// `ERR wrong number of arguments for '<cmd>' command`
pub fn wrong_arity(name: &str) -> String {
    format!(
        "ERR wrong number of arguments for '{}' command",
        name.to_ascii_lowercase()
    )
}

/// `ERR unknown command '<name>', with args beginning with: '<a>' '<b>' `
/// Arguments are listed while the list is under 128 characters, each cut to
/// what is left of those 128, as Redis does.
pub fn unknown_command(name: &[u8], args: &[bytes::Bytes]) -> String {
    let mut list = String::new();
    for a in args {
        if list.len() >= 128 {
            break;
        }
        let room = 128 - list.len();
        list.push('\'');
        list.push_str(&printable(a, room));
        list.push_str("' ");
    }
    format!(
        "ERR unknown command '{}', with args beginning with: {list}",
        printable(name, 128)
    )
}

/// `ERR unknown subcommand '<sub>'. Try <CMD> HELP.`
pub fn unknown_subcommand(cmd: &str, sub: &[u8]) -> String {
    format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        printable(sub, 128),
        cmd.to_ascii_uppercase()
    )
}

/// `ERR invalid expire time in '<cmd>' command`
pub fn invalid_expire(cmd: &str) -> String {
    format!(
        "ERR invalid expire time in '{}' command",
        cmd.to_ascii_lowercase()
    )
}

/// `ERR Unsupported option <opt>`
pub fn unsupported_option(opt: &[u8]) -> String {
    format!("ERR Unsupported option {}", printable(opt, 128))
}

/// `THROTTLED cache '<name>' is over its ECPU/s limit (<max>); retry later`
pub fn throttled(cache: &str, max: u64) -> String {
    format!("THROTTLED cache '{cache}' is over its ECPU/s limit ({max}); retry later")
}

/// `ERR Syntax error in HELLO option '<opt>'`
pub fn hello_bad_option(opt: &[u8]) -> String {
    format!("ERR Syntax error in HELLO option '{}'", printable(opt, 128))
}

/// `ERR Unrecognized option '<opt>'`
pub fn unrecognized_option(opt: &[u8]) -> String {
    format!("ERR Unrecognized option '{}'", printable(opt, 128))
}

/// `ERR unknown type name '<t>'`
pub fn unknown_type_name(t: &[u8]) -> String {
    format!("ERR unknown type name '{}'", printable(t, 128))
}

/// Error strings may not hold CR/LF; other bytes are shown lossily, at most `max`.
fn printable(bytes: &[u8], max: usize) -> String {
    let cut = &bytes[..bytes.len().min(max)];
    String::from_utf8_lossy(cut).replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatted_errors_match_redis() {
        assert_eq!(
            wrong_arity("GET"),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            unknown_command(b"foo", &[bytes::Bytes::from_static(b"a"), "b".into()]),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            unknown_subcommand("client", b"x"),
            "ERR unknown subcommand 'x'. Try CLIENT HELP."
        );
    }
}
