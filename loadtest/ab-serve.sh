#!/usr/bin/env bash
# `stratus serve` A/B: two builds of the binary, alternated.
#
#   loadtest/ab-serve.sh OLD_BINARY NEW_BINARY [runs]     (default 5)
#   PIPELINE=1 loadtest/ab-serve.sh ...                   (default 16)
#
# Each run starts the binary fresh pinned to CPU 0 (`serve`, the open
# default cache), then redis-benchmark on CPU 1 sends 2M SETs then 2M GETs
# (50 connections, pipeline $PIPELINE or 16, 100-byte values over 100k keys: the GETs
# find the keys the SETs stored). Prints one
# line per run, "old|new GET-ops/s SET-ops/s GET-user-ns GET-system-ns
# GET-p50-ms" (the server's CPU per GET, from /proc/<pid>/stat), then the
# medians. Build an
# older commit beside this checkout with, e.g.:
#   git worktree add /tmp/ab-old <commit>
#   (cd /tmp/ab-old && CARGO_TARGET_DIR=/tmp/ab-old/target cargo build --release --bin stratus)
set -euo pipefail
old="${1:?old binary}"
new="${2:?new binary}"
runs="${3:-5}"
pipeline="${PIPELINE:-16}"
# Requests per test: 2M at pipeline 16, a fifth of that at pipeline 1.
requests=$((pipeline > 1 ? 2000000 : 400000))
command -v redis-benchmark >/dev/null || { echo "needs redis-benchmark (apt-get install redis-tools)" >&2; exit 1; }

run() { # binary -> "get set"
  local log pid addr g s
  log="$(mktemp)"
  taskset -c 0 "$1" serve --port any --memcached-port 0 --http-port 0 >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do grep -q "stratus serving" "$log" && break; sleep 0.1; done
  addr="$(grep -o 'resp_addr=[^ ]*' "$log" | head -1 | cut -d= -f2)"
  # "ops/s p50-ms" of one test.
  bench() {
    taskset -c 1 redis-benchmark -h "${addr%:*}" -p "${addr##*:}" -t "$1" -n "$requests" -c 50 \
      -P "$pipeline" -d 100 -r 100000 --threads 1 --csv 2>/dev/null | awk -F'"' 'NR==2 { print $4, $10 }'
  }
  read -r s _ < <(bench set)
  # The server's CPU over the GETs, user and system, µs per request
  # (clock ticks of 10 ms from /proc/<pid>/stat).
  read -r u0 k0 < <(awk '{ print $14, $15 }' "/proc/$pid/stat")
  read -r g p50 < <(bench get)
  read -r u1 k1 < <(awk '{ print $14, $15 }' "/proc/$pid/stat")
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  rm -f "$log"
  echo "$g $s $(( (u1 - u0) * 10000000 / requests )) $(( (k1 - k0) * 10000000 / requests )) $p50"
}

results="$(mktemp)"
trap 'rm -f "$results"' EXIT
for _ in $(seq "$runs"); do
  echo "old $(run "$old")" | tee -a "$results"
  echo "new $(run "$new")" | tee -a "$results"
done
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for side in old new; do
  get="$(awk -v s="$side" '$1 == s { print $2 }' "$results" | median)"
  set="$(awk -v s="$side" '$1 == s { print $3 }' "$results" | median)"
  user="$(awk -v s="$side" '$1 == s { print $4 }' "$results" | median)"
  sys="$(awk -v s="$side" '$1 == s { print $5 }' "$results" | median)"
  p50="$(awk -v s="$side" '$1 == s { print $6 }' "$results" | median)"
  echo "median $side: GET $get SET $set; server CPU per GET: user $user ns, system $sys ns; GET p50 $p50 ms"
done
