//! Every client-visible reply and error string, byte for byte as Redis 7 sends
//! them (without the leading `+`/`-` and the CRLF). Clients parse these: change
//! one only to match Redis.

pub const OK: &str = "OK";
pub const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";
pub const WATCH_IN_MULTI: &str = "ERR WATCH inside MULTI is not allowed";
pub const DISCARD_WITHOUT_MULTI: &str = "ERR DISCARD without MULTI";
pub const EXEC_WITHOUT_MULTI: &str = "ERR EXEC without MULTI";
pub const MULTI_NESTED: &str = "ERR MULTI calls can not be nested";
pub const TIMEOUT_NOT_FLOAT: &str = "ERR timeout is not a float or out of range";
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
/// A connection's buffered requests passed its query-buffer limit (Redis
/// closes such a client; Stratus says why first).
pub const QUERY_BUFFER_LIMIT: &str = "ERR client query buffer limit reached";
/// The cache's or the server's client memory is full.
pub const CLIENT_MEMORY_LIMIT: &str =
    "ERR client memory limit reached (the cache's or the server's buffered requests)";
pub const CLIENT_NAME_SPACES: &str =
    "ERR Client names cannot contain spaces, newlines or special characters.";
pub const VALUE_OUT_OF_RANGE: &str = "ERR value is out of range";
pub const KEY_TOO_LONG: &str = "ERR key exceeds the maximum key length";
pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";
pub const CACHE_DELETED: &str = "ERR this connection's cache was deleted";

// Counts and indexes shared by the collection families.
pub const MUST_BE_POSITIVE: &str = "ERR value is out of range, must be positive";
pub const INDEX_OUT_OF_RANGE: &str = "ERR index out of range";
/// Counts of repeated random picks larger than this are refused: the reply
/// could never reach the client within the output-buffer limit.
pub const TOO_MANY_PICKS: &str = "ERR value is out of range";

// Lists.
pub const LPOS_RANK_ZERO: &str = "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list";
pub const COUNT_NEGATIVE: &str = "ERR COUNT can't be negative";
pub const MAXLEN_NEGATIVE: &str = "ERR MAXLEN can't be negative";

// Sets.
pub const NUMKEYS_NOT_POSITIVE: &str = "ERR numkeys should be greater than 0";
pub const NUMKEYS_TOO_MANY: &str = "ERR Number of keys can't be greater than number of args";
pub const LIMIT_NEGATIVE: &str = "ERR LIMIT can't be negative";

// Sorted sets.
pub const ZADD_NX_XX: &str = "ERR XX and NX options at the same time are not compatible";
pub const ZADD_GT_LT_NX: &str = "ERR GT, LT, and/or NX options at the same time are not compatible";
pub const ZADD_INCR_PAIR: &str = "ERR INCR option supports a single increment-element pair";
pub const SCORE_NAN: &str = "ERR resulting score is not a number (NaN)";
pub const MIN_MAX_NOT_FLOAT: &str = "ERR min or max is not a float";
pub const MIN_MAX_NOT_LEX: &str = "ERR min or max not valid string range item";
pub const LIMIT_NEEDS_BY: &str =
    "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX";
pub const WITHSCORES_BYLEX: &str =
    "ERR syntax error, WITHSCORES not supported in combination with BYLEX";
pub const WEIGHT_NOT_FLOAT: &str = "ERR weight value is not a float";

// HyperLogLogs.
pub const NOT_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
pub const HLL_CORRUPT: &str = "INVALIDOBJ Corrupted HLL object detected";

// Bitmaps.
pub const BIT_OFFSET: &str = "ERR bit offset is not an integer or out of range";
pub const BIT_VALUE: &str = "ERR bit is not an integer or out of range";
pub const BIT_ARG: &str = "ERR The bit argument must be 1 or 0.";
pub const BITOP_NOT_ONE_KEY: &str = "ERR BITOP NOT must be called with a single source key.";

// Streams.
pub const STREAM_ID_INVALID: &str = "ERR Invalid stream ID specified as stream command argument";
pub const XADD_ID_TOO_SMALL: &str =
    "ERR The ID specified in XADD is equal or smaller than the target stream top item";
pub const XADD_ID_ZERO: &str = "ERR The ID specified in XADD must be greater than 0-0";
pub const STREAM_EXHAUSTED: &str =
    "ERR The stream has exhausted the last possible ID, unable to add more items";
pub const MAXLEN_NOT_POSITIVE: &str = "ERR The MAXLEN argument must be >= 0.";
pub const TRIM_LIMIT_NEGATIVE: &str = "ERR The LIMIT argument must be >= 0.";
pub const TRIM_LIMIT_WITHOUT_TILDE: &str =
    "ERR syntax error, LIMIT cannot be used without the special ~ option";
pub const INVALID_START_ID: &str = "ERR invalid start ID for the interval";
pub const INVALID_END_ID: &str = "ERR invalid end ID for the interval";
pub const TIMEOUT_NEGATIVE: &str = "ERR timeout is negative";
pub const TIMEOUT_NOT_INTEGER: &str = "ERR timeout is not an integer or out of range";
pub const XREAD_NOACK: &str =
    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.";
pub const XREADGROUP_DOLLAR: &str = "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.";
pub const XGROUP_NO_KEY: &str = "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.";
pub const BUSYGROUP: &str = "BUSYGROUP Consumer Group name already exists";
pub const ENTRIES_READ_INVALID: &str = "ERR value for ENTRIESREAD must be positive or -1";
pub const XAUTOCLAIM_COUNT: &str = "ERR COUNT must be > 0";
pub const UNBALANCED_STREAMS: &str =
    "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.";
pub const XREAD_GROUP: &str =
    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.";
pub const XREAD_GT: &str = "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.";
pub const XREADGROUP_NO_GROUP: &str = "ERR Missing GROUP option for XREADGROUP";
pub const MAXLEN_AND_MINID: &str =
    "ERR syntax error, MAXLEN and MINID options at the same time are not compatible";
pub const TRIM_LIMIT_WITHOUT_STRATEGY: &str =
    "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy";
pub const XTRIM_NO_STRATEGY: &str =
    "ERR syntax error, XTRIM must be called with a trimming strategy";

// Scripting (EVAL, EVALSHA, SCRIPT; Redis 7.0's texts unless noted).
pub const NOSCRIPT: &str = "NOSCRIPT No matching script. Please use EVAL.";
pub const NOTBUSY: &str = "NOTBUSY No scripts in execution right now.";
pub const BUSY: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
pub const UNKILLABLE: &str = "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.";
pub const SCRIPT_FLUSH_OPTION: &str = "ERR SCRIPT FLUSH only support SYNC|ASYNC option";
/// Stratus's own: the cache's script store has no room left for `SCRIPT LOAD`.
pub const SCRIPT_STORE_FULL: &str =
    "ERR the script cache of this cache is full (64 MiB): use SCRIPT FLUSH or fewer scripts";
pub const NUMKEYS_NEGATIVE: &str = "ERR Number of keys can't be negative";
pub const SCRIPT_UNKNOWN_COMMAND: &str = "ERR Unknown Redis command called from script";
pub const SCRIPT_WRONG_ARGS: &str = "ERR Wrong number of args calling Redis command from script";
pub const SCRIPT_NOT_ALLOWED: &str = "ERR This Redis command is not allowed from script";
pub const SCRIPT_READ_ONLY: &str = "ERR Write commands are not allowed from read-only scripts.";
pub const SCRIPT_NO_ARGS: &str = "ERR Please specify at least one argument for this redis lib call";
pub const SCRIPT_BAD_ARG: &str = "ERR Lua redis lib command arguments must be strings or integers";
pub const SCRIPT_CROSS_SLOT: &str =
    "ERR Script attempted to access keys that do not hash to the same slot";
pub const SCRIPT_NON_LOCAL_KEY: &str =
    "ERR Script attempted to access a non local key in a cluster node";
pub const SCRIPT_WRONG_ARGS_OR_TYPE: &str = "ERR wrong number or type of arguments";
pub const SCRIPT_RESP_VERSION: &str = "ERR RESP version must be 2 or 3.";
pub const SCRIPT_LOG_ARGS: &str = "ERR redis.log() requires two arguments or more.";
pub const SCRIPT_LOG_LEVEL: &str = "ERR Invalid debug level.";
pub const SCRIPT_LOG_LEVEL_TYPE: &str = "ERR First argument must be a number (log level).";
pub const SCRIPT_SHA1HEX_ARGS: &str = "wrong number of arguments";
pub const LUA_STACK_LIMIT: &str = "ERR reached lua stack limit";
pub const SCRIPT_NO_CLUSTER: &str = "ERR Can not run script on cluster, 'no-cluster' flag is set.";
/// Stratus's own: the interpreter could not be started or failed inside.
pub const SCRIPT_NO_INTERPRETER: &str =
    "ERR the Lua interpreter failed; the script did not complete";
/// Raised by Lua code (the sandbox's messages, without the `ERR ` that the
/// error handler adds).
pub const LUA_READONLY_TABLE: &str = "Attempt to modify a readonly table";
pub const LUA_NONEXISTENT_GLOBAL: &str = "Script attempted to access nonexistent global variable";
/// Lua 5.1's pattern-matching errors (`lstrlib.c`; raised without a
/// position, as Lua's C functions raise them).
pub const LUA_PATTERN_ENDS_WITH_ESC: &str = "malformed pattern (ends with '%')";
pub const LUA_PATTERN_MISSING_BRACKET: &str = "malformed pattern (missing ']')";
pub const LUA_PATTERN_UNBALANCED: &str = "unbalanced pattern";
pub const LUA_FRONTIER_NO_BRACKET: &str = "missing '[' after '%f' in pattern";
pub const LUA_INVALID_CAPTURE_INDEX: &str = "invalid capture index";
pub const LUA_INVALID_PATTERN_CAPTURE: &str = "invalid pattern capture";
pub const LUA_UNFINISHED_CAPTURE: &str = "unfinished capture";
pub const LUA_TOO_MANY_CAPTURES: &str = "too many captures";
/// Lua 5.2's: the backtracking stack is full (Lua 5.1 would overflow the C
/// stack instead).
pub const LUA_PATTERN_TOO_COMPLEX: &str = "pattern too complex";
/// `gsub`'s third argument check; the replacement value error is completed
/// with the value's type and `)` by the sandbox.
pub const LUA_GSUB_REPL_TYPE: &str = "string/function/table expected";
pub const LUA_INVALID_REPLACEMENT: &str = "invalid replacement value (a ";
/// Redis 7's text for a script stopped by `SCRIPT KILL` (raised in the
/// script, so it reaches the client as `<this> script: <sha>, on
/// @user_script:<line>.`).
pub const SCRIPT_KILLED_BY_USER: &str = "ERR Script killed by user with SCRIPT KILL...";

/// `luaL_argerror`: `bad argument #<n> to '<function>' (<problem>)`.
pub fn lua_bad_argument(narg: usize, function: &str, problem: &str) -> String {
    format!("bad argument #{narg} to '{function}' ({problem})")
}

/// `luaL_argerror` for the receiver of a method call.
pub fn lua_bad_self(function: &str, problem: &str) -> String {
    format!("calling '{function}' on bad self ({problem})")
}

/// `table.concat` met a value that is neither a string nor a number.
pub fn lua_concat_invalid_value(type_name: &str, index: i32) -> String {
    format!("invalid value ({type_name}) at index {index} in table for 'concat'")
}

/// `luaL_typerror`'s problem: `<expected> expected, got <type>`.
pub fn lua_type_expected(expected: &str, got: &str) -> String {
    format!("{expected} expected, got {got}")
}

/// `ERR Error compiling script (new function): <lua message>`
pub fn script_compile_error(msg: &str) -> String {
    format!(
        "ERR Error compiling script (new function): {}",
        printable(msg.as_bytes(), 1024)
    )
}

/// `<error> script: <sha>, on @user_script:<line>.`: how a failing script's
/// error reaches the client (the suffix only when the line is known).
pub fn script_error(msg: &str, sha: &str, line: Option<usize>) -> String {
    let msg = printable(msg.as_bytes(), 4096);
    match line {
        Some(line) => format!("{msg} script: {sha}, on @user_script:{line}."),
        None => msg,
    }
}

/// Stratus's own: a script stopped by the time limit (Redis waits for
/// `SCRIPT KILL` instead).
pub fn script_killed(limit_ms: u128) -> String {
    format!("ERR Script killed after running too long (limit {limit_ms} ms)")
}

/// Stratus's own: a script stopped by the memory limit.
pub fn script_out_of_memory(limit_bytes: usize) -> String {
    format!(
        "ERR Script used too much memory (limit {} MiB)",
        limit_bytes >> 20
    )
}

/// `ERR Unexpected engine in script shebang: <shebang>`
pub fn shebang_engine(line: &[u8]) -> String {
    format!(
        "ERR Unexpected engine in script shebang: {}",
        printable(line, 128)
    )
}

/// `ERR Unknown lua shebang option: <option>`
pub fn shebang_option(opt: &[u8]) -> String {
    format!("ERR Unknown lua shebang option: {}", printable(opt, 128))
}

/// `ERR Unexpected flag in script shebang: <flag>`
pub fn shebang_flag(flag: &[u8]) -> String {
    format!(
        "ERR Unexpected flag in script shebang: {}",
        printable(flag, 128)
    )
}

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

/// `ERR value is out of range, value must between <min> and <max>`
pub fn out_of_range_between(min: i64, max: i64) -> String {
    format!("ERR value is out of range, value must between {min} and {max}")
}

/// `ERR at least 1 input key is needed for '<cmd>' command`
pub fn needs_input_key(cmd: &str) -> String {
    format!("ERR at least 1 input key is needed for '{cmd}' command")
}

/// `NOGROUP No such key '<key>' or consumer group '<group>' in XREADGROUP with GROUP option`
pub fn nogroup_xreadgroup(key: &[u8], group: &[u8]) -> String {
    format!(
        "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
        printable(key, 128),
        printable(group, 128)
    )
}

/// `NOGROUP No such key '<key>' or consumer group '<group>'`
pub fn nogroup_key(key: &[u8], group: &[u8]) -> String {
    format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        printable(key, 128),
        printable(group, 128)
    )
}

/// `NOGROUP No such consumer group '<group>' for key name '<key>'`
pub fn nogroup_for_key(key: &[u8], group: &[u8]) -> String {
    format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        printable(group, 128),
        printable(key, 128)
    )
}

/// `ERR unknown subcommand or wrong number of arguments for '<sub>'. Try <CMD> HELP.`
pub fn subcommand_syntax(cmd: &str, sub: &[u8]) -> String {
    format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
        printable(sub, 128),
        cmd.to_ascii_uppercase()
    )
}

/// `ERR Invalid <what> argument for <CMD>` (XCLAIM, XAUTOCLAIM options).
pub fn invalid_claim_arg(what: &str, cmd: &str) -> String {
    format!("ERR Invalid {what} argument for {cmd}")
}

/// `ERR Unrecognized XCLAIM option '<opt>'`
pub fn unrecognized_xclaim_option(opt: &[u8]) -> String {
    format!("ERR Unrecognized XCLAIM option '{}'", printable(opt, 128))
}

// --- Pub/Sub and CONFIG (notify-keyspace-events) ---

/// CONFIG SET notify-keyspace-events with a letter Redis does not know.
pub const INVALID_EVENT_CLASS: &str = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.";

/// CLIENT TRACKING / CACHING refusals, as Redis words them.
pub const CACHING_NOT_TRACKING: &str = "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled";
pub const CACHING_YES_OPTIN: &str =
    "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.";
pub const CACHING_NO_OPTOUT: &str =
    "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.";
pub const TRACKING_ONE_REDIRECT: &str = "ERR A client can only redirect to a single other client";
pub const TRACKING_NO_REDIRECT_CLIENT: &str =
    "ERR The client ID you want redirect to does not exist";
pub const TRACKING_PREFIX_NEEDS_BCAST: &str = "ERR PREFIX option requires BCAST mode to be enabled";
pub const TRACKING_BCAST_SWITCH: &str = "ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.";
pub const TRACKING_BCAST_OPTIN: &str = "ERR OPTIN and OPTOUT are not compatible with BCAST";
pub const TRACKING_OPTIN_AND_OPTOUT: &str = "ERR You can't specify both OPTIN mode and OPTOUT mode";
pub const TRACKING_OPT_SWITCH: &str = "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.";

/// BCAST prefixes that overlap.
pub fn prefix_overlap(new: &[u8], old: &[u8], which: &str) -> String {
    format!(
        "ERR Prefix '{}' overlaps with {which} prefix '{}'. Prefixes for a single client must not overlap.",
        printable(new, 128),
        printable(old, 128)
    )
}

/// A RESP2 connection in the subscribed state ran another command.
pub fn pubsub_context(full_name: &str) -> String {
    format!(
        "ERR Can't execute '{full_name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    )
}

/// PUBSUB CHANNELS / SHARDCHANNELS with too many arguments.
pub fn pubsub_syntax(sub: &[u8]) -> String {
    subcommand_syntax("pubsub", sub)
}

/// `ERR Unknown option or number of arguments for CONFIG SET - '<name>'`
pub fn config_set_unknown(name: &[u8]) -> String {
    format!(
        "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
        printable(name, 128)
    )
}

/// `ERR CONFIG SET failed (possibly related to argument '<name>') - <why>`
pub fn config_set_failed(name: &[u8], why: &str) -> String {
    format!(
        "ERR CONFIG SET failed (possibly related to argument '{}') - {why}",
        printable(name, 128)
    )
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
