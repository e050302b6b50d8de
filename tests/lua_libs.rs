//! The Lua libraries Redis 7 gives scripts — `cjson`, `cmsgpack`, `bit`,
//! `struct` — over real TCP, each script run on Stratus and on a real
//! `redis-server` with the replies compared byte for byte (results, packed
//! bytes, number formatting, error texts with the script's SHA and line);
//! then what differs on purpose (settings last for one run) and the limits
//! (nesting, memory, time) that keep a script from hurting the server.

mod common;

use std::time::{Duration, Instant};

use common::*;
use stratus::config::ServeConfig;

/// Hex of a string, in Lua, for packed bytes.
const HEX: &str = "local function hex(s) local h = {} for i = 1, #s do \
                   h[i] = string.format('%02x', string.byte(s, i)) end \
                   return table.concat(h) end ";

/// A server whose scripts may run a minute: these tests compare replies,
/// and debug builds on a busy machine run the big ones slowly.
async fn start_patient() -> stratus::server::Running {
    start(ServeConfig {
        script_time_limit_ms: 60_000,
        ..ServeConfig::default()
    })
    .await
}

/// Runs each script (no keys) on both servers and asserts the same reply.
async fn same_scripts(pair: &mut Pair, scripts: &[&str]) {
    for body in scripts {
        pair.same(&["EVAL", body, "0"]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cjson_matches_real_redis() {
    let server = start_patient().await;
    let mut pair = Pair::new(server.resp_addr).await;
    let scripts = [
        // Encoding: numbers as %.14g, '/' escaped, control bytes as \u00XX,
        // arrays and objects in Lua's table order, holes as null.
        "return cjson.encode({1, 2, 'a/b', {x = 1}, 0.1, 1e20, 1/3, '\\1\\127\"\\\\\\n\\t'})",
        "return cjson.encode({a = 1, b = 2, c = {}, d = {1, nil, 3}, [1.5] = 2, [7] = 'x'})",
        "return cjson.encode({one = 'one', [1] = 'one'})",
        "return cjson.encode({[1] = 1, [2] = 2, [4] = 4})",
        "return cjson.encode({true, false, cjson.null, -0.0, 123456789012345678, 2^53, -1e-7})",
        "return cjson.encode('plain') .. cjson.encode(12) .. cjson.encode(nil) .. cjson.encode(true)",
        "return cjson.encode({{{{{'deep'}}}}})",
        // Decoding.
        "return table.concat(cjson.decode('[0.0, -5e3, -1, 0.3e-3, 1023.2, 0e10]'), ' ')",
        "local d = cjson.decode('{\"keya\": \"a\", \"keyb\": \"b\"}') return {d.keya, d.keyb}",
        "return cjson.encode(cjson.decode('{\"a\":null,\"b\":[true,false,null],\"c\":\"\\\\u00e9\\\\ud83d\\\\ude00\\\\/\\\\b\"}'))",
        "return cjson.encode(cjson.decode('[-0, 0x10, 1.5e-7, 123456789012345678, +1, 1E2, \"\\\\u0041\"]'))",
        "return {cjson.decode('[1e400]')[1] == math.huge, cjson.decode('null') == cjson.null}",
        "return cjson.decode(' \\r\\n\\t12 ')",
        "return cjson.decode(12)",
        "return type(cjson.decode('[nan]')[1])",
        // Decoding errors: what was expected, what was found, where.
        "return cjson.decode('[1,2')",
        "return cjson.decode('{\"a\":x}')",
        "return cjson.decode('  ')",
        "return cjson.decode('[1,]')",
        "return cjson.decode('{1:2}')",
        "return cjson.decode('{\"a\" 2}')",
        "return cjson.decode('{\"a\":2 \"b\"}')",
        "return cjson.decode('nul')",
        "return cjson.decode('\"abc')",
        "return cjson.decode('[1] x')",
        "return cjson.decode('-')",
        "return cjson.decode('\"\\\\u12\"')",
        "return cjson.decode('\"\\\\ud800\\\\u0041\"')",
        "return cjson.decode('\"\\\\q\"')",
        "return cjson.decode('a\\0')",
        "return cjson.decode()",
        "return cjson.decode({})",
        // Encoding errors.
        "return cjson.encode(function() end)",
        "return cjson.encode({[true] = 1})",
        "return cjson.encode({[20] = 1})",
        "return cjson.encode({0/0})",
        "return cjson.encode({1/0})",
        "return cjson.encode()",
        "return cjson.encode(1, 2)",
        "return {pcall(cjson.encode, {1, 2}, 3)}",
        "local t = {} t[1] = t return cjson.encode(t)",
        // Settings, each put back in the same script (Redis keeps them).
        "local r = {cjson.encode_max_depth(2)} \
         local ok, e = pcall(cjson.encode, {{{1}}}) r[2] = e \
         cjson.encode_max_depth(1000) return r",
        "local r = {cjson.decode_max_depth(2)} \
         local ok, e = pcall(cjson.decode, '[[[1]]]') r[2] = e \
         r[3] = cjson.decode_max_depth(1000) return r",
        "local r = {cjson.encode_invalid_numbers(true), cjson.encode({0/0, 1/0, -1/0})} \
         r[3] = cjson.encode_invalid_numbers('null') r[4] = cjson.encode({0/0, 1/0}) \
         r[5] = tostring(cjson.encode_invalid_numbers('off')) return r",
        "local r = {cjson.encode_number_precision(3), cjson.encode({math.pi, 1234.5})} \
         cjson.encode_number_precision(14) return r",
        "local a, b, c = cjson.encode_sparse_array(true, 3, 4) \
         local r = {tostring(a), b, c, cjson.encode({[20] = 1, [1] = 2})} \
         cjson.encode_sparse_array(false, 2, 10) return r",
        "return {tostring(cjson.encode_keep_buffer(false)), tostring(cjson.encode_keep_buffer(true)), \
         tostring(cjson.decode_invalid_numbers())}",
        "return cjson.encode_max_depth(0)",
        "return cjson.encode_number_precision(15)",
        "return cjson.encode_invalid_numbers('x')",
        "return cjson.encode_max_depth(1, 2)",
        "return cjson.encode_sparse_array(1, 2, 3, 4)",
        "local r = {cjson.decode_invalid_numbers(false)} \
         r[2] = select(2, pcall(cjson.decode, '+1')) r[3] = select(2, pcall(cjson.decode, '0x10')) \
         cjson.decode_invalid_numbers(true) return r",
        // The library is read-only and has Redis's fields.
        "cjson.x = 1",
        "return {cjson._NAME, cjson._VERSION}",
    ];
    same_scripts(&mut pair, &scripts).await;
    // Redis's own "JSON smoke test" (unit/scripting).
    let smoke = r#"
        local some_map = {s1="Some string", n1=100, a1={"Some","String","Array"},
                          nil1=nil, b1=true, b2=false}
        local encoded = cjson.encode(some_map)
        local decoded = cjson.decode(encoded)
        assert(table.concat(some_map) == table.concat(decoded))
        cjson.encode_keep_buffer(false)
        encoded = cjson.encode(some_map)
        decoded = cjson.decode(encoded)
        assert(table.concat(some_map) == table.concat(decoded))
        local table1 = {one="one", [1]="one"}
        encoded = cjson.encode(table1)
        decoded = cjson.decode(encoded)
        assert(decoded["one"] == table1["one"])
        assert(decoded["1"] == table1[1])
        local invalid_map = {}
        invalid_map[false] = "false"
        local ok, encoded = pcall(cjson.encode, invalid_map)
        assert(ok == false)
        cjson.encode_max_depth(1)
        ok, encoded = pcall(cjson.encode, some_map)
        assert(ok == false)
        cjson.decode_max_depth(1)
        ok, decoded = pcall(cjson.decode, '{"obj": {"array": [1,2,3,4]}}')
        assert(ok == false)
        ok, encoded = pcall(cjson.encode, {num1=0/0})
        assert(ok == false)
        cjson.encode_invalid_numbers(true)
        ok, encoded = pcall(cjson.encode, {num1=0/0})
        assert(ok == true)
        cjson.decode_max_depth(1000)
        cjson.encode_max_depth(1000)
        cjson.encode_invalid_numbers(false)
        cjson.encode_keep_buffer(true)
        return encoded
    "#;
    pair.same(&["EVAL", smoke, "0"]).await;
    // The same through a function library (FCALL): the libraries are there.
    let lib = "#!lua name=jsonlib\n\
               redis.register_function('tojson', function(keys, args) \
               return cjson.encode({args[1], tonumber(args[2])}) end)";
    pair.same(&["FUNCTION", "LOAD", lib]).await;
    pair.same(&["FCALL", "tojson", "0", "a/b", "2.5"]).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cmsgpack_matches_real_redis() {
    let server = start_patient().await;
    let mut pair = Pair::new(server.resp_addr).await;
    let pack_hex = |expr: &str| format!("{HEX}return hex(cmsgpack.pack({expr}))");
    let packs = [
        "0.1",
        "-1099511627776",
        "0, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296, 2^53",
        "-1, -32, -33, -128, -129, -32768, -32769, -2147483648, -2147483649, -2^63",
        "1.5, -0.25, 1/0, -1/0, 2^64, 1e300",
        "'', 'abc', string.rep('x', 31), string.rep('y', 32)",
        "string.rep('z', 255), string.rep('w', 256)",
        "true, false, nil",
        "{}, {1, 2, 3}, {a = 1}, {1, 2, nil, 4}, {[1] = 'a', [3] = 'c'}, {[0] = 1}",
        "{a = {b = {c = {1, {d = 'e'}}}}, x = {1.5, 'y'}}",
        "{[1.5] = 1, [-1] = 2, [true] = 3}",
    ];
    for p in packs {
        let body = pack_hex(p);
        pair.same(&["EVAL", &body, "0"]).await;
    }
    let show = "local function show(...) local t = {} \
                for i = 1, select('#', ...) do local v = select(i, ...) \
                t[i] = type(v) .. ':' .. tostring(v) end return t end ";
    let scripts = [
        // Long strings and big arrays: headers of every size.
        format!(
            "{HEX}local s = cmsgpack.pack(string.rep('a', 65535), string.rep('b', 65536)) \
             return {{#s, hex(s:sub(1, 4)), hex(s:sub(65539, 65544))}}"
        ),
        format!(
            "{HEX}local t = {{}} for i = 1, 70000 do t[i] = i end local s = cmsgpack.pack(t) \
             return {{#s, hex(s:sub(1, 8))}}"
        ),
        format!(
            "{HEX}local t = {{}} for i = 1, 20 do t['k' .. i] = i end local s = cmsgpack.pack(t) \
             return {{#s, hex(s:sub(1, 3))}}"
        ),
        // Circular references: a copy 16 levels deep.
        format!(
            "{HEX}local a = {{x = nil, y = 5}} local b = {{x = a}} a['x'] = b \
             local re = cmsgpack.unpack(cmsgpack.pack(a)) \
             return {{hex(cmsgpack.pack(a)), re.x.x.y == re.y, \
             re.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x.x == nil}}"
        ),
        // Unpacking.
        format!(
            "{show}return show(cmsgpack.unpack(cmsgpack.pack(1, -1, 1.5, 'a', true, false, nil, 2^40, -2^40)))"
        ),
        format!(
            "{show}return show(cmsgpack.unpack('\\204\\255\\205\\1\\0\\206\\255\\255\\255\\255\\207\\255\\255\\255\\255\\255\\255\\255\\255'))"
        ),
        format!(
            "{show}return show(cmsgpack.unpack('\\208\\128\\209\\128\\0\\210\\128\\0\\0\\0\\211\\128\\0\\0\\0\\0\\0\\0\\0\\224\\202\\63\\192\\0\\0'))"
        ),
        format!(
            "{show}return show(cmsgpack.unpack('\\217\\3abc\\218\\0\\1x\\219\\0\\0\\0\\1y\\161z'))"
        ),
        "local t = cmsgpack.unpack(cmsgpack.pack({a = {1, 2, {b = 'c'}}, [5] = true})) \
         return {t.a[1], t.a[3].b, t[5]}"
            .to_string(),
        format!("{show}return show(cmsgpack.unpack_one(cmsgpack.pack('a', 'b'), 0))"),
        format!("{show}return show(cmsgpack.unpack_one(cmsgpack.pack('a', 'b'), 2))"),
        format!("{show}return show(cmsgpack.unpack_one(cmsgpack.pack('a', 'b')))"),
        format!("{show}return show(cmsgpack.unpack_limit('\\1\\2\\3', 2, 1))"),
        format!("{show}return show(cmsgpack.unpack_limit('\\1\\2\\3', 0, 0))"),
        format!("{show}return show(cmsgpack.unpack_limit('\\1\\2\\3', 5))"),
        format!("{show}return show(cmsgpack.unpack(''))"),
        // Errors.
        "return cmsgpack.pack()".to_string(),
        "return cmsgpack.unpack('\\193')".to_string(),
        "return cmsgpack.unpack('\\205\\1')".to_string(),
        "return cmsgpack.unpack('\\219\\0\\0\\1\\0abc')".to_string(),
        "return cmsgpack.unpack('\\129\\192\\1')".to_string(),
        "return cmsgpack.unpack_one('abc', -1)".to_string(),
        "return cmsgpack.unpack_one('abc', 5)".to_string(),
        "return cmsgpack.unpack_limit('abc')".to_string(),
        "return cmsgpack.unpack()".to_string(),
        "return cmsgpack.unpack(string.rep('\\1', 9000))".to_string(),
        "return {cmsgpack._NAME, cmsgpack._VERSION}".to_string(),
    ];
    for body in &scripts {
        pair.same(&["EVAL", body, "0"]).await;
    }
    // Redis's own "cmsgpack pack/unpack smoke test" (unit/scripting).
    let smoke = r#"
        local str_lt_32 = string.rep("x", 30)
        local str_lt_255 = string.rep("x", 250)
        local str_lt_65535 = string.rep("x", 65530)
        local str_long = string.rep("x", 100000)
        local array_big = {}
        for i=1, 100000 do array_big[i] = i end
        local map_big = {}
        for i=1, 100000 do map_big[tostring(i)] = i end
        local some_map = {s1=str_lt_32, s2=str_lt_255, s3=str_lt_65535, s4=str_long,
            d1=0.1, i1=1, i2=250, i3=65530, i4=100000, i5=2^40, i6=-1, i7=-120,
            i8=-32000, i9=-100000, i10=-3147483648, a1={1, 2, 3, 4, 5},
            a3=array_big, m1={a=1, b=2}, m2=map_big, b1=false, b2=true, n=nil}
        local encoded = cmsgpack.pack(some_map)
        local decoded = cmsgpack.unpack(encoded)
        assert(table.concat(some_map) == table.concat(decoded))
        local offset, decoded_one = cmsgpack.unpack_one(encoded, 0)
        assert(table.concat(some_map) == table.concat(decoded_one))
        assert(offset == -1)
        local encoded_multiple = cmsgpack.pack(str_lt_32, str_lt_255, str_lt_65535, str_long)
        local offset, obj = cmsgpack.unpack_limit(encoded_multiple, 1, 0)
        assert(obj == str_lt_32)
        offset, obj = cmsgpack.unpack_limit(encoded_multiple, 1, offset)
        assert(obj == str_lt_255)
        offset, obj = cmsgpack.unpack_limit(encoded_multiple, 1, offset)
        assert(obj == str_lt_65535)
        offset, obj = cmsgpack.unpack_limit(encoded_multiple, 1, offset)
        assert(obj == str_long)
        assert(offset == -1)
        return {#encoded, decoded.a3[100000], decoded.m2['77'], decoded.i10}
    "#;
    pair.same(&["EVAL", smoke, "0"]).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bit_and_struct_match_real_redis() {
    let server = start_patient().await;
    let mut pair = Pair::new(server.resp_addr).await;
    let scripts = [
        // bit: 32-bit results as signed numbers, numbers wrapped and rounded.
        "return {bit.tobit(1), bit.tobit(2^32 + 5), bit.tobit(-1), bit.tobit(2^31), \
         bit.tobit(1.5), bit.tobit(2.5), bit.tobit('12'), bit.tobit(0xffffffff)}",
        "return {bit.band(1), bit.bxor(1, 2), bit.bor(1, 2, 4, 8, 16, 32, 64, 128), \
         bit.band(0xff, 0x0f, 0x3c), bit.bnot(0), bit.bnot(-1), bit.bnot(5)}",
        "return {bit.lshift(1, 31), bit.lshift(1, 32), bit.lshift(1, 33), bit.rshift(-1, 28), \
         bit.arshift(-256, 4), bit.rshift(256, -28), bit.rol(0x12345678, 12), \
         bit.ror(0x12345678, 12), bit.rol(1, 0), bit.bswap(0x12345678)}",
        "return {bit.tohex(255), bit.tohex(-1, -4), bit.tohex(0x1234abcd, 2), \
         bit.tohex(1, 12), bit.tohex(0xabcdef, -8), bit.tohex(7, 0)}",
        "return bit.tobit()",
        "return bit.band(1, 'x')",
        "return bit.bor(1, {})",
        "return bit.tohex(1, nil)",
        "return bit.lshift(1)",
        "bit.x = 1",
        // struct: pack, unpack and size with endianness and alignment.
        &format!(
            "{HEX}return {{hex(struct.pack('>i2<H!4d', 5, 6, 1.5)), hex(struct.pack('bBhHlLT', -1, 255, -2, 65535, -3, 2^40, 7)), \
             hex(struct.pack('>i3', -2)), hex(struct.pack('<i16', -1)), hex(struct.pack('xc3s', 'abcd', 'ef')), \
             hex(struct.pack('c0', 'whole')), hex(struct.pack('>f', 0.5)), hex(struct.pack('!8bd', 1, 2)), \
             hex(struct.pack(' < I'))}}"
        ),
        "return {struct.size('i!8d'), struct.size('bhi'), struct.size('!bhid'), \
         struct.size('>c10x'), struct.size('z'), struct.size('!2bi')}",
        "local a, b, c, d = struct.unpack('>i2<H!4d', struct.pack('>i2<H!4d', -5, 6, 1.5)) \
         return {a, b, tostring(c), d}",
        "return {struct.unpack('>i2', '\\255\\254')}",
        "return {struct.unpack('BbHhI3i3', '\\255\\255\\1\\128\\1\\128\\1\\2\\255\\1\\2\\255')}",
        "return {struct.unpack('s', 'abc\\0def\\0'), struct.unpack('ss', 'abc\\0def\\0')}",
        "return {struct.unpack('bc0', '\\3xyzw')}",
        "return {struct.unpack('c2', 'abcdef', 3)}",
        "return {struct.unpack('>d>f', struct.pack('>d>f', 0.1, 0.5))}",
        "return {struct.unpack('>i8', '\\255\\255\\255\\255\\255\\255\\255\\254')}",
        // struct errors.
        "return struct.pack('z', 1)",
        "return struct.pack('i40', 1)",
        "return struct.pack('i99999999999', 1)",
        "return struct.pack('!3i', 1)",
        "return struct.pack('c5', 'abc')",
        "return struct.pack('i', 'x')",
        "return struct.pack('d')",
        "return struct.unpack('i4', 'ab')",
        "return struct.unpack('i', 'abcd', 0)",
        "return struct.unpack('c0', 'abc')",
        "return struct.unpack('s', 'abc')",
        "return struct.size('s')",
        "return struct.size('c0')",
        "return struct.size('!3')",
        "return struct.unpack(string.rep('b', 9000), string.rep('a', 9000))",
        "struct.x = 1",
    ];
    same_scripts(&mut pair, &scripts).await;
    server.shutdown().await;
}

/// Where Stratus differs on purpose: the interpreter serves every cache on
/// its thread, so `cjson`'s settings last for one run (Redis keeps them
/// until `SCRIPT FLUSH`); one run's settings never reach the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cjson_settings_last_for_one_run() {
    let server = start_patient().await;
    let mut raw = Raw::connect(server.resp_addr).await;
    let set = "cjson.encode_max_depth(5) cjson.encode_invalid_numbers(true) \
               return cjson.encode({0/0})";
    assert_eq!(raw.cmd(&["EVAL", set, "0"]).await, bulk("[nan]"));
    let read = "return {cjson.encode_max_depth(), tostring(cjson.encode_invalid_numbers())}";
    assert_eq!(
        raw.cmd(&["EVAL", read, "0"]).await,
        Resp::Array(vec![int(1000), bulk("false")])
    );
    server.shutdown().await;
}

/// The libraries run in Rust, where Lua's instruction hook does not see
/// them: nesting is bounded, output stays under the script's memory limit,
/// and a long call stops at the time limit like any script.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_calls_are_bounded() {
    let config = ServeConfig {
        script_time_limit_ms: 300,
        ..ServeConfig::default()
    };
    let server = start(config).await;
    let mut raw = Raw::connect(server.resp_addr).await;
    // Nesting: deeper than 1000 is an error, whatever the setting.
    let deep = "cjson.decode_max_depth(100000) \
                return cjson.decode(string.rep('[', 5000) .. string.rep(']', 5000))";
    let got = raw.cmd(&["EVAL", deep, "0"]).await;
    assert!(
        matches!(&got, Resp::Error(e) if e.contains("Found too many nested data structures (1001)")),
        "{got:?}"
    );
    let deep = "cjson.encode_max_depth(100000) local t = {} t[1] = t return cjson.encode(t)";
    let got = raw.cmd(&["EVAL", deep, "0"]).await;
    assert!(
        matches!(&got, Resp::Error(e) if e.contains("Cannot serialise, excessive nesting (1001)")),
        "{got:?}"
    );
    let deep = "return cmsgpack.unpack(string.rep('\\145', 5000) .. '\\1')";
    let got = raw.cmd(&["EVAL", deep, "0"]).await;
    assert!(
        matches!(&got, Resp::Error(e) if e.contains("stack overflow (in function mp_decode_to_lua_array)")),
        "{got:?}"
    );
    // A table holding itself eight times packs as 8^16 values: the run
    // stops (time or memory) instead of building them.
    let huge = "local t = {} for i = 1, 8 do t[i] = t end return #cmsgpack.pack(t)";
    let started = Instant::now();
    let got = raw.cmd(&["EVAL", huge, "0"]).await;
    assert!(
        matches!(&got, Resp::Error(e) if e.starts_with("ERR Script killed after running too long")
            || e.starts_with("ERR Script used too much memory")),
        "{got:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // The server and the interpreter go on.
    assert_eq!(
        raw.cmd(&["EVAL", "return cjson.encode({1})", "0"]).await,
        bulk("[1]")
    );
    server.shutdown().await;
}

/// Output past the script's memory limit fails before it is built (the
/// encoders check the room left under the limit as they write).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_output_stays_under_the_memory_limit() {
    let server = start_patient().await;
    let mut raw = Raw::connect(server.resp_addr).await;
    for body in [
        "local s = string.rep('\\1', 16 * 1024 * 1024) return #cjson.encode({s, s})",
        "local s = string.rep('x', 24 * 1024 * 1024) return #cmsgpack.pack(s, s)",
        "local s = string.rep('x', 24 * 1024 * 1024) return #struct.pack('c0c0', s, s)",
    ] {
        let got = raw.cmd(&["EVAL", body, "0"]).await;
        assert!(
            matches!(&got, Resp::Error(e) if e.starts_with("ERR Script used too much memory")),
            "{body}: {got:?}"
        );
    }
    assert_eq!(
        raw.cmd(&["EVAL", "return cmsgpack.unpack(cmsgpack.pack(5))", "0"])
            .await,
        int(5)
    );
    server.shutdown().await;
}

/// What the cache has been charged for scripts so far, in ECPU.
async fn scripting_ecpu(http: &Http, cache: &str) -> f64 {
    http.get(&format!("/v1/caches/{cache}/usage")).await.json()["ecpu_by_family"]["scripting"]
        .as_f64()
        .unwrap_or(0.0)
}

/// Library calls are metered by the bytes they read and write, as the
/// string functions are: encoding a 1 MB string costs its bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_calls_are_metered() {
    let server = start(closed_config()).await;
    let http = Http::new(server.http_addr);
    let token = http.create_cache("libs").await;
    let mut raw = raw_auth(server.resp_addr, "libs", &token).await;
    let without = "local s = string.rep('x', 1000000) return #s";
    assert_eq!(raw.cmd(&["EVAL", without, "0"]).await, int(1_000_000));
    let base = scripting_ecpu(&http, "libs").await;
    let with = "local s = string.rep('x', 1000000) return #cjson.encode(s)";
    assert_eq!(raw.cmd(&["EVAL", with, "0"]).await, int(1_000_002));
    let encoded = scripting_ecpu(&http, "libs").await - base;
    // About 2 MB read and written at the string functions' rate.
    use stratus::cmd::script::KIB_WORK_MILLI;
    let bytes_work = 2.0 * 1_000_000.0 / 1024.0 * KIB_WORK_MILLI as f64 / 1000.0;
    assert!(
        encoded > base + 0.9 * bytes_work,
        "without {base}, with {encoded}, bytes {bytes_work}"
    );
    let packed = "local s = string.rep('x', 1000000) return #cmsgpack.pack(s, s)";
    let before = scripting_ecpu(&http, "libs").await;
    assert_eq!(raw.cmd(&["EVAL", packed, "0"]).await, int(2_000_010));
    let packing = scripting_ecpu(&http, "libs").await - before;
    assert!(
        packing > base + 0.9 * bytes_work,
        "without {base}, with {packing}"
    );
    server.shutdown().await;
}

/// Redis 7's global protection: every global, the `redis` table and the
/// libraries are read-only (assigning `redis`, `_G`, `redis.call` or
/// `cjson.encode` fails), `setmetatable(_G, ...)` is refused and
/// `getmetatable(_G)` gives a read-only table — with Redis's error texts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_protection_matches_real_redis() {
    let server = start_patient().await;
    let mut pair = Pair::new(server.resp_addr).await;
    let scripts = [
        "setmetatable(_G, {})",
        "local g = getmetatable(_G) g.__index = {}",
        "return type(getmetatable(_G))",
        "redis = function() return 1 end",
        "_G = {}",
        "KEYS = {}",
        "redis.call = function() return 1 end",
        "cjson.encode = function() return 1 end",
        "cmsgpack.pack = function() return 1 end",
        "bit.lshift = function() return 1 end",
        "struct.size = 1",
        "string.x = 1",
        "setmetatable(cjson, {})",
        "return {pcall(setmetatable, _G, {})}",
        "return setmetatable({}, 5)",
        "local t = setmetatable({}, {__metatable = 1}) setmetatable(t, {})",
        "return {pcall(setmetatable, 1, {})}",
        "local t = setmetatable({}, {__index = function(_, k) return k .. '!' end}) return t.x",
        "print('some data')",
        "dofile('/etc/passwd')",
        "loadfile('/etc/passwd')",
        "return loadstring(string.dump(function() return 1 end))()",
        "return redis.acl_check_cmd('invalid-cmd', 'arg')",
        "return redis.acl_check_cmd()",
        "return redis.acl_check_cmd('get', {})",
        "return _G.redis.sha1hex('')",
    ];
    same_scripts(&mut pair, &scripts).await;
    pair.same(&[
        "EVAL",
        "return redis.acl_check_cmd('set', KEYS[1], 1)",
        "1",
        "xx",
    ])
    .await;
    server.shutdown().await;
}

/// Commands that behave differently inside a script, as in Redis: XREAD
/// and XREADGROUP refuse BLOCK, and SORT BY a constant sorts a set
/// alphabetically (a set's own order must not reach the script's result).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_in_scripts_match_real_redis() {
    let server = start_patient().await;
    let mut pair = Pair::new(server.resp_addr).await;
    for body in [
        "return redis.pcall('xread', 'BLOCK', 0, 'STREAMS', KEYS[1], '$')",
        "return redis.pcall('XREADGROUP', 'GROUP', 'g', 'c', 'BLOCK', 0, 'STREAMS', KEYS[1], '>')",
        "return redis.call('xread', 'COUNT', 1, 'BLOCK', 0, 'STREAMS', KEYS[1], '$')",
        "return redis.pcall('xread', 'STREAMS', KEYS[1], '$')",
    ] {
        pair.same(&["EVAL", body, "1", "s"]).await;
    }
    pair.same(&[
        "SADD", "myset", "a", "b", "c", "d", "e", "f", "g", "h", "i", "l", "m", "n", "o", "p", "q",
        "r", "s", "t", "u", "v", "z", "aa", "aaa", "azz", "10", "9",
    ])
    .await;
    for body in [
        "return redis.call('sort', KEYS[1], 'by', '_')",
        "return redis.call('sort', KEYS[1], 'by', 'nosort', 'desc', 'limit', 0, 3)",
        "return redis.call('sort', KEYS[1], 'alpha')",
    ] {
        pair.same(&["EVAL", body, "1", "myset"]).await;
    }
    server.shutdown().await;
}
