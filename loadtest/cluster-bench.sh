#!/usr/bin/env bash
# The proxy→node hop, measured: `stratus serve` against a proxy in front of
# two nodes (the partitions remote), same cache, same client, same CPU.
#
#   loadtest/cluster-bench.sh [runs]     (default 3)
#
# Every server process is pinned to CPU 0 (serve alone; or the proxy, both
# nodes and control together), redis-benchmark to CPU 1, and the two set-ups
# alternate; each row is the median of the runs. Rows: GET and SET with 50
# connections at pipeline 1 (ops/s, p50, p99) and pipeline 16 (ops/s),
# 100-byte values over 100k keys. Needs target/release/stratus (built if
# missing) and redis-benchmark.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/target/release/stratus"
runs="${1:-3}"
[ -x "$bin" ] || (cd "$root" && cargo build --release --bin stratus)
command -v redis-benchmark >/dev/null || { echo "needs redis-benchmark (apt-get install redis-tools)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'deploy_down; kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
deploy_down() { STRATUS_CLUSTER_DIR="$work/cluster" "$root/deploy/local/cluster" down >/dev/null 2>&1 || true; }

# One redis-benchmark run: "ops p50 p99" for test $1 at pipeline $2 on $3:$4.
bench() {
  local test="$1" pipe="$2" host="$3" port="$4"; shift 4
  taskset -c 1 redis-benchmark -h "$host" -p "$port" "$@" -t "$test" -n 200000 -c 50 \
    -P "$pipe" -d 100 -r 100000 --threads 1 --csv 2>/dev/null |
    awk -F'"' 'NR==2 { print $4, $12, $16 }'
}

# serve: pinned to CPU 0, the open default cache.
serve_rows() {
  taskset -c 0 "$bin" serve --port any --memcached-port 0 --http-port 0 >"$work/serve.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do grep -q "stratus serving" "$work/serve.log" && break; sleep 0.1; done
  local addr; addr="$(grep -o 'resp_addr=[^ ]*' "$work/serve.log" | head -1 | cut -d= -f2)"
  for t in get set; do
    echo "serve $t 1 $(bench "$t" 1 "${addr%:*}" "${addr##*:}")"
    echo "serve $t 16 $(bench "$t" 16 "${addr%:*}" "${addr##*:}")"
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

# cluster: every role pinned to CPU 0, one cache made through control.
cluster_rows() {
  STRATUS_CLUSTER_DIR="$work/cluster" STRATUS_BIN="$bin" taskset -c 0 \
    "$root/deploy/local/cluster" up --nodes 2 --proxies 1 >/dev/null
  # shellcheck disable=SC1091
  . "$work/cluster/env"
  local http="$STRATUS_HTTP" resp="$STRATUS_RESP" token
  token="$(python3 -c '
import json, sys, urllib.request
req = urllib.request.Request("http://" + sys.argv[1] + "/v1/caches", data=b"{\"name\": \"bench\"}",
                             headers={"Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(req))["token"])' "$http")"
  sleep 0.5  # the proxy reads control's caches twice a second
  for t in get set; do
    echo "cluster $t 1 $(bench "$t" 1 "${resp%:*}" "${resp##*:}" --user bench -a "$token")"
    echo "cluster $t 16 $(bench "$t" 16 "${resp%:*}" "${resp##*:}" --user bench -a "$token")"
  done
  deploy_down
}

for r in $(seq "$runs"); do
  serve_rows
  cluster_rows
done >"$work/rows"

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
echo "| set-up | command | pipeline | ops/s | p50 ms | p99 ms |"
echo "|---|---|---|---|---|---|"
for setup in serve cluster; do
  for t in get set; do
    for p in 1 16; do
      rows="$(awk -v s="$setup" -v t="$t" -v p="$p" '$1 == s && $2 == t && $3 == p' "$work/rows")"
      ops="$(echo "$rows" | awk '{ print $4 }' | median)"
      p50="$(echo "$rows" | awk '{ print $5 }' | median)"
      p99="$(echo "$rows" | awk '{ print $6 }' | median)"
      echo "| $setup | $t | $p | $ops | $p50 | $p99 |"
    done
  done
done
