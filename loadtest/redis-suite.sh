#!/usr/bin/env bash
# Runs Redis's own TCL test suite (7.0.15), unit by unit, against a real
# redis-server and against `stratus serve`, and compares the two.
#
#   loadtest/redis-suite.sh <path-to-redis-source-tree> [unit ...]
#
# The Redis tree is given, never fetched (see /work/shared/DEPENDENCIES.md,
# "Redis's own test suite": `git --git-dir <mirror> archive 7.0.15 | tar -x`).
# Needs `tclsh` and `redis-server` on PATH and cargo to build Stratus.
#
# Phases:
# 1. build `stratus` (release) unless STRATUS_BIN names a binary;
# 2. start redis-server and `stratus serve` (default cache, no auth) on free
#    loopback ports. The default cache runs with cluster mode DISABLED
#    (`--default-cache-cluster-mode disabled`): Redis's suite is written for a
#    standalone server (SORT BY patterns, transactions and scripts over
#    unrelated keys), which is what a disabled-mode cache is; the
#    cluster-mode rules (CROSSSLOT) are covered by Stratus's own tests;
# 3. for each unit, run `tests/test_helper.tcl --single unit/<name>` against
#    each server with the same options, under a per-unit timeout (UNIT_TIMEOUT
#    seconds, default 300) so a hang ends that unit only;
# 4. print, per unit and in total: the tests redis-server passed, the tests
#    Stratus passed, and the names of those redis-server passes and Stratus
#    does not (failed, or never reached because the unit aborted).
#
# Logs are kept in $OUT (default: a new temp directory), one per unit and
# server. Both servers are started afresh for each unit.
set -u

if [ $# -lt 1 ] || [ ! -f "$1/tests/test_helper.tcl" ]; then
    echo "usage: $0 <path-to-redis-source-tree> [unit ...]" >&2
    exit 2
fi
REDIS_TREE=$(cd "$1" && pwd)
shift
HERE=$(cd "$(dirname "$0")/.." && pwd)
UNIT_TIMEOUT=${UNIT_TIMEOUT:-300}
OUT=${OUT:-$(mktemp -d /tmp/redis-suite.XXXXXX)}
mkdir -p "$OUT"
TAGS="-needs:debug -needs:repl -needs:config-maxmemory -needs:pfdebug"

# Units that run against an external server (the suite's own list, without
# the integration/ and cluster units, which start servers of their own).
UNITS=(
    printver dump auth protocol keyspace scan info info-command
    type/string type/incr type/list type/list-2 type/list-3 type/set
    type/zset type/hash type/stream type/stream-cgroups
    sort expire other multi quit aofrw acl acl-v2 latency-monitor
    pubsub pubsubshard slowlog scripting functions maxmemory
    introspection introspection-2 limits obuf-limits bitops bitfield geo
    memefficiency hyperloglog lazyfree wait pause querybuf pendingquerybuf
    tracking oom-score-adj shutdown networking client-eviction violations
    replybufsize
)
if [ $# -gt 0 ]; then
    UNITS=("$@")
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
    for _ in $(seq 1 100); do
        if redis-cli -h 127.0.0.1 -p "$1" ping >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# 1. Build.
if [ -z "${STRATUS_BIN:-}" ]; then
    (cd "$HERE" && nice cargo build --release --bin stratus) || exit 1
    STRATUS_BIN="${CARGO_TARGET_DIR:-$HERE/target}/release/stratus"
fi

# 2. Servers (started afresh for each unit).
REDIS_PID=
STRATUS_PID=
start_redis() {
    REDIS_PORT=$(free_port)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$OUT" --logfile "$OUT/redis-server.log" &
    REDIS_PID=$!
    wait_port "$REDIS_PORT" || { echo "redis-server did not start" >&2; exit 1; }
}
start_stratus() {
    STRATUS_PORT=$(free_port)
    local http
    http=$(free_port)
    # Redis's limit on arguments per request (1M), not ElastiCache
    # Serverless's 3,999 that Stratus applies by default: the suite tests
    # Redis's limits (lazyfree and protocol send 10k+ arguments).
    "$STRATUS_BIN" serve --bind 127.0.0.1 --port "$STRATUS_PORT" \
        --http-bind 127.0.0.1 --http-port "$http" --max-args 1048576 --memcached-port 0 \
        --default-cache-cluster-mode disabled >>"$OUT/stratus.log" 2>&1 &
    STRATUS_PID=$!
    wait_port "$STRATUS_PORT" || { echo "stratus serve did not start" >&2; exit 1; }
}
stop_servers() {
    [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null
    [ -n "$STRATUS_PID" ] && kill "$STRATUS_PID" 2>/dev/null
    wait 2>/dev/null
}
trap stop_servers EXIT

# 3. One unit against one server: its log, then the names of the tests that
#    passed (one a line, sorted; a name can repeat).
# The suite's own test server listens on a port from --baseport: a random
# base keeps runs of several users on one machine apart, and a unit whose
# test server lost its port to someone else is run again (up to 3 times).
run_unit() { # <unit> <port> <log>
    local try base
    for try in 1 2 3; do
        base=$((20000 + RANDOM % 30000))
        (cd "$REDIS_TREE" && timeout --kill-after=10 "$UNIT_TIMEOUT" \
            tclsh tests/test_helper.tcl --host 127.0.0.1 --port "$2" --singledb \
            --ignore-encoding --tags "$TAGS" --single "unit/$1" \
            --clients 1 --baseport "$base" --portcount 200) >"$3" 2>&1 </dev/null
        grep -q "couldn't open socket: address already in use" "$3" || return 0
    done
}
passed() { # <log>
    sed -e 's/\x1b\[[0-9;]*m//g' "$1" | sed -n 's/^\[ok\]: \(.*\) ([0-9]* ms)$/\1/p' | LC_ALL=C sort
}

# 4. Compare.
TOTAL_REDIS=0
TOTAL_STRATUS=0
TOTAL_BOTH=0
SUMMARY=""
for unit in "${UNITS[@]}"; do
    safe=${unit//\//_}
    # Each unit starts against fresh servers: a unit that ends early (a
    # failure, a timeout) may leave state behind — a CLIENT PAUSE, keys,
    # configuration — that must not decide the next unit's results.
    stop_servers
    start_redis
    start_stratus
    run_unit "$unit" "$REDIS_PORT" "$OUT/$safe.redis.log"
    kill -0 "$STRATUS_PID" 2>/dev/null || start_stratus
    run_unit "$unit" "$STRATUS_PORT" "$OUT/$safe.stratus.log"
    # A unit that took a server down must not take the next unit with it.
    kill -0 "$REDIS_PID" 2>/dev/null || echo "note: redis-server died during $unit"
    kill -0 "$STRATUS_PID" 2>/dev/null || echo "note: stratus died during $unit"
    passed "$OUT/$safe.redis.log" >"$OUT/$safe.redis.ok"
    passed "$OUT/$safe.stratus.log" >"$OUT/$safe.stratus.ok"
    r=$(wc -l <"$OUT/$safe.redis.ok")
    s=$(wc -l <"$OUT/$safe.stratus.ok")
    # Tests redis-server passes that Stratus does not (as multisets).
    missing=$(LC_ALL=C comm -23 "$OUT/$safe.redis.ok" "$OUT/$safe.stratus.ok")
    both=$(LC_ALL=C comm -12 "$OUT/$safe.redis.ok" "$OUT/$safe.stratus.ok" | wc -l)
    TOTAL_REDIS=$((TOTAL_REDIS + r))
    TOTAL_STRATUS=$((TOTAL_STRATUS + s))
    TOTAL_BOTH=$((TOTAL_BOTH + both))
    line=$(printf '%-22s redis-server %4d  stratus %4d  (both %4d)' "unit/$unit" "$r" "$s" "$both")
    echo "$line"
    SUMMARY+="$line"$'\n'
    if [ -n "$missing" ]; then
        echo "$missing" | sed 's/^/    redis passes, stratus fails: /'
    fi
done

echo
echo "== per unit =="
printf '%s' "$SUMMARY"
echo "== total =="
echo "tests passed by redis-server: $TOTAL_REDIS"
echo "tests passed by stratus:      $TOTAL_STRATUS"
echo "passed by both:               $TOTAL_BOTH"
if [ "$TOTAL_REDIS" -gt 0 ]; then
    echo "stratus passes $((100 * TOTAL_BOTH / TOTAL_REDIS))% of the tests redis-server passes"
fi
echo "logs: $OUT"
