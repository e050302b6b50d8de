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
/// SELECT of a database other than 0 with cluster mode disabled (one database).
pub const DB_INDEX_OUT_OF_RANGE: &str = "ERR DB index is out of range";
pub const COPY_DB_CLUSTER: &str = "ERR Copying to another database is not allowed in cluster mode";
pub const SAME_OBJECT: &str = "ERR source and destination objects are the same";
pub const INVALID_SLOT: &str = "ERR Invalid slot";
pub const INVALID_KEY_COUNT: &str = "ERR Invalid number of keys";
pub const TRYAGAIN: &str = "TRYAGAIN Multiple keys request during rehashing of slot";
/// A command a partition hosted on another node does not run yet (scripts,
/// SCAN, blocking commands: issue "Beyond one machine").
pub const REMOTE_NOT_YET: &str = "ERR this command does not run on a remote partition yet";
pub const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";
pub const NOAUTH: &str = "NOAUTH Authentication required.";
pub const NOAUTH_HELLO: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time";
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
pub const NOPERM_KEY: &str = "NOPERM No permissions to access a key";
pub const NOPERM_CHANNEL: &str = "NOPERM No permissions to access a channel";
/// `ACL LOAD`/`SAVE`: users live in the cache, not in a file.
pub const NO_ACL_FILE: &str = "ERR This cache keeps no ACL file: its users are changed with ACL SETUSER and DELUSER or through the control API (/v1/caches/<cache>/users)";
/// `ACL DELUSER default` (Redis's words): the default user is the token holder.
pub const DEFAULT_USER_FIXED: &str = "ERR The 'default' user cannot be removed";
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
pub const LCS_NOT_STRINGS: &str = "ERR The specified keys must contain string values";
pub const LCS_LEN_AND_IDX: &str =
    "ERR If you want both the length and indexes, please just use IDX.";
pub const LCS_TOO_BIG: &str =
    "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len";
pub const BITFIELD_TYPE: &str = "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";
pub const BITFIELD_OVERFLOW_TYPE: &str = "ERR Invalid OVERFLOW type specified";
pub const BITFIELD_RO_GET_ONLY: &str = "ERR BITFIELD_RO only supports the GET subcommand";
pub const SORT_BY_CROSSSLOT: &str = "ERR BY option of SORT denied in Cluster mode when keys formed by the pattern may be in different slots.";
pub const SORT_GET_CROSSSLOT: &str = "ERR GET option of SORT denied in Cluster mode when keys formed by the pattern may be in different slots.";
pub const SORT_NOT_DOUBLE: &str = "ERR One or more scores can't be converted into double";
pub const GEO_UNIT: &str = "ERR unsupported unit provided. please use M, KM, FT, MI";
pub const GEO_NEED_RADIUS: &str = "ERR need numeric radius";
pub const GEO_NEED_WIDTH: &str = "ERR need numeric width";
pub const GEO_NEED_HEIGHT: &str = "ERR need numeric height";
pub const GEO_NEGATIVE_RADIUS: &str = "ERR radius cannot be negative";
pub const GEO_NEGATIVE_BOX: &str = "ERR height or width cannot be negative";
pub const GEO_NO_MEMBER: &str = "ERR could not decode requested zset member";
pub const GEO_COUNT: &str = "ERR COUNT must be > 0";
pub const GEO_ANY_NEEDS_COUNT: &str = "ERR the ANY argument requires COUNT argument";
pub const XSETID_ENTRIES_NEGATIVE: &str = "ERR entries_added must be positive";
pub const XSETID_BELOW_MAX_DELETED: &str =
    "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id";
pub const XSETID_BELOW_TOP: &str =
    "ERR The ID specified in XSETID is smaller than the target stream top item";
pub const XSETID_ENTRIES_BELOW_LENGTH: &str =
    "ERR The entries_added specified in XSETID is smaller than the target stream length";
pub const BUSYKEY: &str = "BUSYKEY Target key name already exists.";
pub const DUMP_PAYLOAD: &str = "ERR DUMP payload version or checksum are wrong";
pub const BAD_DATA_FORMAT: &str = "ERR Bad data format";
pub const RESTORE_TTL: &str = "ERR Invalid TTL value, must be >= 0";
pub const RESTORE_IDLETIME: &str = "ERR Invalid IDLETIME value, must be >= 0";
pub const RESTORE_FREQ: &str = "ERR Invalid FREQ value, must be >= 0 and <= 255";
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
pub const COUNT_NOT_POSITIVE: &str = "ERR count should be greater than 0";
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
/// A blocked XREADGROUP whose key was deleted or now holds another type.
pub const XREADGROUP_KEY_GONE: &str = "UNBLOCKED the stream key no longer exists";
/// A blocked XREADGROUP whose group was destroyed.
pub const XREADGROUP_GROUP_GONE: &str =
    "NOGROUP the consumer group this client was blocked on no longer exists";
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
pub const SCRIPT_NOPERM_COMMAND: &str =
    "ERR The user executing the script can't run this command or subcommand";
pub const SCRIPT_NOPERM_KEY: &str = "ERR The user executing the script can't access at least one of the keys mentioned in the command arguments";
pub const SCRIPT_NOPERM_CHANNEL: &str =
    "ERR The user executing the script can't publish to the channel mentioned in the command";
pub const SCRIPT_READ_ONLY: &str = "ERR Write commands are not allowed from read-only scripts.";
/// XREAD/XREADGROUP with BLOCK from a script (`command` as the script
/// spelled it).
pub fn script_stream_block(command: &str) -> String {
    format!("ERR {command} command is not allowed with BLOCK option from scripts")
}

/// `redis.acl_check_cmd` with a command this server does not know.
pub const SCRIPT_ACL_CHECK_INVALID: &str = "ERR Invalid command passed to redis.acl_check_cmd()";
pub const SCRIPT_NO_ARGS: &str = "ERR Please specify at least one argument for this redis lib call";
pub const SCRIPT_BAD_ARG: &str = "ERR Lua redis lib command arguments must be strings or integers";
pub const SCRIPT_CROSS_SLOT: &str =
    "ERR Script attempted to access keys that do not hash to the same slot";
/// CLUSTER, READONLY, READWRITE on a cache with cluster mode disabled.
pub const CLUSTER_DISABLED: &str = "ERR This instance has cluster support disabled";
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

/// A remote partition's node could not be reached or refused the request.
pub fn node_unavailable(why: &str) -> String {
    format!("CLUSTERDOWN partition unavailable: {why}")
}

/// EXEC refused for `why` (an error reply's text): the transaction is
/// discarded (Redis's `execCommandAbort`).
pub fn execabort_because(why: &str) -> String {
    format!("EXECABORT Transaction discarded because of: {why}")
}

/// `luaL_argerror`: `bad argument #<n> to '<function>' (<problem>)`.
pub fn lua_bad_argument(narg: usize, function: &str, problem: &str) -> String {
    format!("bad argument #{narg} to '{function}' ({problem})")
}

// ---- The script sandbox's libraries: cjson, cmsgpack, bit, struct ----
// (the texts of Redis 7.0's deps/lua/src/lua_cjson.c, lua_cmsgpack.c,
// lua_bit.c and lua_struct.c; the sandbox puts Lua's position in front)

/// `cjson.encode`/`decode` called with other than one argument.
pub const CJSON_ONE_ARGUMENT: &str = "expected 1 argument";
/// A `cjson` setting function called with too many arguments.
pub const CJSON_TOO_MANY_ARGUMENTS: &str = "found too many arguments";
pub const CJSON_SPARSE_ARRAY: &str = "excessively sparse array";
pub const CJSON_NAN_OR_INF: &str = "must not be NaN or Inf";
pub const CJSON_KEY_TYPE: &str = "table key must be a number or string";
pub const CJSON_TYPE_NOT_SUPPORTED: &str = "type not supported";
pub const CJSON_UTF16: &str = "JSON parser does not support UTF-16 or UTF-32";

/// A `cjson` integer setting out of its range.
pub fn cjson_integer_range(min: i32, max: i32) -> String {
    format!("expected integer between {min} and {max}")
}

/// `cjson.encode` met a value it cannot write.
pub fn cjson_cannot_serialise(type_name: &str, reason: &str) -> String {
    format!("Cannot serialise {type_name}: {reason}")
}

/// `cjson.encode` went deeper than its maximum depth.
pub fn cjson_excessive_nesting(depth: usize) -> String {
    format!("Cannot serialise, excessive nesting ({depth})")
}

/// `cjson.decode` met an unexpected token (`at` counts from 1).
pub fn cjson_expected(expected: &str, found: &str, at: usize) -> String {
    format!("Expected {expected} but found {found} at character {at}")
}

/// `cjson.decode` went deeper than its maximum depth.
pub fn cjson_too_deep(depth: usize, at: usize) -> String {
    format!("Found too many nested data structures ({depth}) at character {at}")
}

/// `luaL_checkoption`'s problem for a name not in the list.
pub fn lua_invalid_option(name: &str) -> String {
    format!("invalid option '{name}'")
}

pub const MSGPACK_NEEDS_INPUT: &str = "MessagePack pack needs input.";
pub const MSGPACK_MISSING_BYTES: &str = "Missing bytes in input.";
pub const MSGPACK_BAD_FORMAT: &str = "Bad data format in input.";
pub const MSGPACK_ARRAY_STACK: &str = "stack overflow (in function mp_decode_to_lua_array)";
pub const MSGPACK_TOO_MANY_VALUES: &str =
    "stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)";

/// `cmsgpack.unpack_*` with a negative offset or limit (Redis prints the
/// input's length as the limit).
pub fn msgpack_bad_request(offset: i64, len: i64) -> String {
    format!("Invalid request to unpack with offset of {offset} and limit of {len}.")
}

pub fn msgpack_offset_past_end(offset: i64, len: i64) -> String {
    format!("Start offset {offset} greater than input length {len}.")
}

/// Lua's errors for a table key that cannot be one.
pub const LUA_TABLE_INDEX_NIL: &str = "table index is nil";
pub const LUA_TABLE_INDEX_NAN: &str = "table index is NaN";

pub const STRUCT_SIZE_OVERFLOW: &str = "integral size overflow";
pub const STRUCT_STRING_TOO_SHORT: &str = "string too short";
pub const STRUCT_OFFSET: &str = "offset must be 1 or greater";
pub const STRUCT_DATA_TOO_SHORT: &str = "data string too short";
pub const STRUCT_TOO_MANY_RESULTS: &str = "stack overflow (too many results)";
pub const STRUCT_C0_NEEDS_SIZE: &str = "format 'c0' needs a previous size";
pub const STRUCT_UNFINISHED_STRING: &str = "unfinished string in data";
pub const STRUCT_S_NO_SIZE: &str = "option 's' has no fixed size";
pub const STRUCT_C0_NO_SIZE: &str = "option 'c0' has no fixed size";

pub fn struct_integer_too_large(size: usize) -> String {
    format!("integral size {size} is larger than limit of 32")
}

pub fn struct_alignment(align: usize) -> String {
    format!("alignment {align} is not a power of 2")
}

pub fn struct_invalid_option(opt: u8) -> String {
    format!(
        "invalid format option '{}'",
        String::from_utf8_lossy(&[opt])
    )
}

/// `luaL_argerror` when a method's argument number goes below 1.
pub fn lua_bad_argument_signed(narg: i64, function: &str, problem: &str) -> String {
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

/// `<error> script: <sha>, on @<chunk>:<line>.`: how a failing script's
/// error reaches the client (the suffix only when the line is known). The
/// chunk is `user_script` for `EVAL` bodies, `user_function` for function
/// libraries, and a function is named by its name.
pub fn script_error(msg: &str, sha: &str, chunk: &str, line: Option<usize>) -> String {
    let msg = printable(msg.as_bytes(), 4096);
    match line {
        Some(line) => format!("{msg} script: {sha}, on @{chunk}:{line}."),
        None => msg,
    }
}

// Functions (FUNCTION, FCALL, FCALL_RO, `redis.register_function`): Redis
// 7.0's texts.
pub const FUNCTION_NOT_FOUND: &str = "ERR Function not found";
pub const FUNCTION_BAD_NUMKEYS: &str = "ERR Bad number of keys provided";
pub const FUNCTION_RO_WITH_WRITE_FLAG: &str =
    "ERR Can not execute a script with write flag using *_ro command.";
pub const FUNCTION_LOAD_TIMEOUT: &str = "ERR FUNCTION LOAD timeout";
pub const FUNCTION_CODE_MISSING: &str = "ERR Function code is missing";
pub const FUNCTION_NO_FUNCTIONS: &str = "ERR No functions registered";
pub const FUNCTION_MISSING_METADATA: &str = "ERR Missing library metadata";
pub const FUNCTION_INVALID_METADATA: &str = "ERR Invalid library metadata";
pub const FUNCTION_NAME_TWICE: &str =
    "ERR Invalid metadata value, name argument was given multiple times";
pub const FUNCTION_NO_LIBRARY_NAME: &str = "ERR Library name was not given";
/// Redis 7.0 says "Library names" for function names too.
pub const FUNCTION_BAD_NAME: &str = "ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";
pub const FUNCTION_LIBRARY_NOT_FOUND: &str = "ERR Library not found";
pub const FUNCTION_LIST_NO_NAME: &str = "ERR library name argument was not given";
pub const FUNCTION_FLUSH_OPTION: &str = "ERR FUNCTION FLUSH only supports SYNC|ASYNC option";
pub const FUNCTION_RESTORE_POLICY: &str =
    "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.";
pub const FUNCTION_BAD_PAYLOAD: &str = "ERR DUMP payload version or checksum are wrong";
pub const FUNCTION_PAYLOAD_TYPE: &str = "ERR given type is not a function";
pub const FUNCTION_PAYLOAD_READ_TYPE: &str = "ERR can not read data type";
pub const FUNCTION_PAYLOAD_LIBRARY: &str = "ERR Failed loading library payload";
pub const FUNCTION_PAYLOAD_OLD: &str = "ERR Failed loading the given functions payload";
/// `BUSY` while a function runs (the `SCRIPT KILL` form is [`BUSY`]).
pub const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";
/// Raised inside `redis.register_function` (become `ERR Error registering
/// functions: <this>`).
pub const REGISTER_ONLY_ON_LOAD: &str =
    "ERR redis.register_function can only be called on FUNCTION LOAD command";
pub const REGISTER_ARGS: &str = "ERR wrong number of arguments to redis.register_function";
pub const REGISTER_SINGLE_ARG: &str = "ERR calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).";
pub const REGISTER_KEY_NOT_STRING: &str =
    "ERR named argument key given to redis.register_function is not a string";
pub const REGISTER_NAME_NOT_STRING: &str =
    "ERR function_name argument given to redis.register_function must be a string";
pub const REGISTER_DESC_NOT_STRING: &str =
    "ERR description argument given to redis.register_function must be a string";
pub const REGISTER_CALLBACK_NOT_FUNCTION: &str =
    "ERR callback argument given to redis.register_function must be a function";
pub const REGISTER_FLAGS_NOT_TABLE: &str =
    "ERR flags argument to redis.register_function must be a table representing function flags";
pub const REGISTER_UNKNOWN_FLAG: &str = "ERR unknown flag given";
pub const REGISTER_UNKNOWN_ARG: &str = "ERR unknown argument given to redis.register_function";
pub const REGISTER_NO_NAME: &str = "ERR redis.register_function must get a function name argument";
pub const REGISTER_NO_CALLBACK: &str = "ERR redis.register_function must get a callback argument";
pub const REGISTER_FIRST_NOT_STRING: &str =
    "ERR first argument to redis.register_function must be a string";
pub const REGISTER_SECOND_NOT_FUNCTION: &str =
    "ERR second argument to redis.register_function must be a function";
pub const REGISTER_DUPLICATE: &str = "ERR Function already exists in the library";

/// `ERR Error registering functions: <error>` (the library's code failed).
pub fn function_register_error(msg: &str) -> String {
    format!(
        "ERR Error registering functions: {}",
        printable(msg.as_bytes(), 4096)
    )
}

/// `ERR Error compiling function: <lua message>`
pub fn function_compile_error(msg: &str) -> String {
    format!(
        "ERR Error compiling function: {}",
        printable(msg.as_bytes(), 1024)
    )
}

/// `ERR Library '<name>' already exists` (FUNCTION LOAD without REPLACE).
pub fn function_library_exists(name: &str) -> String {
    format!(
        "ERR Library '{}' already exists",
        printable(name.as_bytes(), 256)
    )
}

/// `ERR Library <name> already exists` (FUNCTION RESTORE APPEND).
pub fn function_library_exists_restore(name: &str) -> String {
    format!(
        "ERR Library {} already exists",
        printable(name.as_bytes(), 256)
    )
}

/// `ERR Function <name> already exists` (in another library).
pub fn function_exists(name: &str) -> String {
    format!(
        "ERR Function {} already exists",
        printable(name.as_bytes(), 256)
    )
}

/// `ERR Invalid metadata value given: <part>`
pub fn function_metadata_value(part: &[u8]) -> String {
    format!("ERR Invalid metadata value given: {}", printable(part, 256))
}

/// `ERR Engine '<engine>' not found`
pub fn function_engine(engine: &[u8]) -> String {
    format!("ERR Engine '{}' not found", printable(engine, 256))
}

/// `ERR Unknown option given: <option>` (FUNCTION LOAD).
pub fn function_load_option(opt: &[u8]) -> String {
    format!("ERR Unknown option given: {}", printable(opt, 256))
}

/// `ERR Unknown argument <arg>` (FUNCTION LIST).
pub fn function_list_argument(arg: &[u8]) -> String {
    format!("ERR Unknown argument {}", printable(arg, 256))
}

/// Stratus's own: a cache keeps at most so many libraries and bytes of code.
pub fn function_store_full(libraries: usize, bytes: usize) -> String {
    format!(
        "ERR this cache's function libraries are at their limit ({libraries} libraries, {} MiB of code)",
        bytes >> 20
    )
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
/// A command the user's access string denies (`name` as `get` or
/// `client|kill`), as Redis 7.2 words it.
pub fn noperm_command(user: &str, name: &str) -> String {
    format!("NOPERM User {user} has no permissions to run the '{name}' command")
}

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

/// `ERR CONFIG SET failed (possibly related to argument '<name>') - <why>`
pub fn config_set_failed(name: &str, why: &str) -> String {
    format!(
        "ERR CONFIG SET failed (possibly related to argument '{}') - {why}",
        printable(name.as_bytes(), 128)
    )
}

/// Error strings may not hold CR/LF; other bytes are shown lossily, at most `max`.
fn printable(bytes: &[u8], max: usize) -> String {
    let cut = &bytes[..bytes.len().min(max)];
    String::from_utf8_lossy(cut).replace(['\r', '\n'], " ")
}

// Introspection (OBJECT, MEMORY, SLOWLOG, LATENCY, CONFIG, CLIENT): help texts and errors.
pub const OBJECT_HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];
pub const MEMORY_HELP: &[&str] = &[
    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return memory problems reports.",
    "MALLOC-STATS",
    "    Return internal statistics report from the memory allocator.",
    "PURGE",
    "    Attempt to purge dirty pages for reclamation by the allocator.",
    "STATS",
    "    Return information about the memory usage of the server.",
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value. Nested values are",
    "    sampled up to <count> times (default: 5, 0 means sample all).",
    "HELP",
    "    Prints this help.",
];
pub const SLOWLOG_HELP: &[&str] = &[
    "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
    "HELP",
    "    Prints this help.",
];
pub const LATENCY_HELP: &[&str] = &[
    "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return a human readable latency analysis report.",
    "GRAPH <event>",
    "    Return an ASCII latency graph for the <event> class.",
    "HISTORY <event>",
    "    Return time-latency samples for the <event> class.",
    "LATEST",
    "    Return the latest latency samples for all events.",
    "RESET [<event> ...]",
    "    Reset latency data of one or more <event> classes.",
    "    (default: reset all data for all event classes)",
    "HISTOGRAM [COMMAND ...]",
    "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
    "    If no commands are specified then all histograms are replied.",
    "HELP",
    "    Prints this help.",
];
pub const CONFIG_HELP: &[&str] = &[
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "SET <directive> <value>",
    "    Set the configuration <directive> to <value>.",
    "RESETSTAT",
    "    Reset statistics reported by the INFO command.",
    "REWRITE",
    "    Rewrite the configuration file.",
    "HELP",
    "    Prints this help.",
];
pub const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "GETREDIR",
    "    Return the client ID we are redirecting to when tracking is enabled.",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "TRACKINGINFO",
    "    Report tracking status for the current connection.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "HELP",
    "    Prints this help.",
];
pub const MEMORY_DOCTOR_FINE: &str = "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n";
pub const MALLOC_STATS_UNSUPPORTED: &str = "Stats not supported for the current allocator";
pub const OBJECT_FREQ_NOT_LFU: &str = "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
pub const NO_SUCH_CLIENT: &str = "ERR No such client";
pub const CLIENT_TIMEOUT_NOT_INTEGER: &str = "ERR timeout is not an integer or out of range";
pub const CLIENT_TIMEOUT_NEGATIVE: &str = "ERR timeout is negative";
pub const INVALID_CLIENT_ID: &str = "ERR client-id should be greater than 0";
pub const CONFIG_REWRITE_NO_FILE: &str = "ERR The server is running without a config file";
pub const UNBLOCKED: &str = "UNBLOCKED client unblocked via CLIENT UNBLOCK";
pub const CLIENT_UNBLOCK_REASON: &str = "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR";
/// SLOWLOG GET with too many arguments (the subcommand as given).
pub fn slowlog_get_args(sub: &[u8]) -> String {
    format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try SLOWLOG HELP.",
        String::from_utf8_lossy(sub)
    )
}
pub const LATENCY_DOCTOR_DISABLED: &str = "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n";
pub const LATENCY_DOCTOR_NONE: &str = "Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think things over.\n";
pub const LATENCY_DOCTOR_SPIKES: &str = "Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n";
pub const SLOWLOG_COUNT: &str = "ERR count should be greater than or equal to -1";

/// `CONFIG SET` of a parameter Redis does not have.
pub fn config_unknown(name: &[u8]) -> String {
    format!(
        "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
        String::from_utf8_lossy(name)
    )
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
