#!/usr/bin/env bash
# Instructions per request of a server under callgrind: a figure that does
# not move with the machine's speed (the timed benchmarks here move by
# ±30% within the hour), for changes to the request path's CPU.
#
#   loadtest/callgrind.sh BINARY|redis [redis-benchmark test args]
#   loadtest/callgrind.sh target/release/stratus                 # GET, pipeline 1
#   loadtest/callgrind.sh target/release/stratus -t set -P 16
#   loadtest/callgrind.sh redis -t zadd -P 1                     # redis-server
#
# The server runs under `valgrind --tool=callgrind` (one reactor thread:
# `--threads 1`, as when pinned to one core), 20k SETs of 100 B over 20k
# random keys fill about 63% of them (so about a third of the GETs miss,
# on both servers alike), the counters are zeroed, then redis-benchmark
# sends 50k requests of one test (50 connections, `-r 20000 -d 100`; give
# `-t` and `-P`, not `-n`) and the counters are dumped. Prints the server's
# user-space instructions per request (the kernel's TCP work is not
# counted). The dump stays in $OUT (default /tmp/callgrind-stratus) for
# callgrind_annotate. Needs valgrind and redis-tools, and two CPUs (the
# client runs on CPU 1).
set -euo pipefail
bin="${1:?binary, or redis}"
shift
args=("$@")
requests=50000
[ ${#args[@]} -gt 0 ] || args=(-t get -P 1)
case " ${args[*]} " in
  *" -n "* | *" -t "*,*) echo "one test (-t NAME), and no -n: the script sends $requests" >&2; exit 2 ;;
esac
fail() { echo "$1; the server's log:" >&2; tail -5 "$out/server.log" >&2; exit 1; }
out="${OUT:-/tmp/callgrind-stratus}"
port="${PORT:-7790}"
if redis-cli -p "$port" ping >/dev/null 2>&1; then
  echo "port $port is taken (PORT=... to choose another)" >&2
  exit 1
fi
for tool in valgrind callgrind_control redis-benchmark redis-cli; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install valgrind redis-tools)" >&2; exit 1; }
done
mkdir -p "$out"
rm -f "$out"/callgrind.*
if [ "$bin" = redis ]; then
  server=(redis-server --port "$port" --save '' --appendonly no)
else
  server=("$bin" serve --port "$port" --http-port 0 --memcached-port 0 --threads 1)
fi
valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.%p" "${server[@]}" >"$out/server.log" 2>&1 &
pid=$!
# (Waited for: the next run's server needs the port.)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
up=""
for _ in $(seq 120); do
  kill -0 "$pid" 2>/dev/null || fail "the server exited"
  redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && up=1 && break
  sleep 0.5
done
[ -n "$up" ] || fail "the server did not answer PING within 60 s"
bench() {
  taskset -c 1 redis-benchmark -p "$port" -c 50 -d 100 -r 20000 --threads 1 -q "$@" >/dev/null 2>&1 ||
    fail "redis-benchmark $* failed"
}
bench -t set -n 20000 -P 16
callgrind_control -z "$pid" >/dev/null 2>&1 || fail "callgrind_control -z failed"
bench -n "$requests" "${args[@]}"
callgrind_control -d "$pid" >/dev/null 2>&1 || fail "callgrind_control -d failed"
dump="$(ls "$out"/callgrind.*.1 2>/dev/null)" || fail "no callgrind dump"
total="$(grep -m1 '^summary:' "$dump" | awk '{print $2}')"
[ -n "$total" ] || fail "no summary in $dump"
echo "$(basename "$bin") ${args[*]}: $((total / requests)) instructions per request ($dump)"
