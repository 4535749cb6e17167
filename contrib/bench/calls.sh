#!/usr/bin/env bash
# Measure POST /v1/calls through the whole hot path: bearer check, Redis
# (idempotency claim and call record, Lua), a CloudDialer placement over a
# kept-alive connection to the simulator, the final Redis write. Every
# request has its own Idempotency-Key. Loopback only; each run is bounded by
# time (default 10 s) and the script stops everything it started.
#
#   contrib/bench/calls.sh [seconds] [connections...]     e.g. contrib/bench/calls.sh 10 16 64
#
# Prints one line per run: connections, requests/s, p50, p99, errors, and
# callgate's CPU time per request (from /proc, user+system).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/deps.sh"
command -v wrk >/dev/null || { [ "$(id -u)" -eq 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
# shellcheck source=contrib/lib.sh
. "$here/lib.sh"

secs=${1:-10}; shift || true
conns=("$@"); [ ${#conns[@]} -gt 0 ] || conns=(16 64)
[ "$secs" -le 120 ] || { echo "at most 120 s per run" >&2; exit 2; }

cg_build plain
bin="$CG_TOP/build/plain"
run=$(mktemp -d /tmp/callgate-bench.XXXXXX)
CG_PIDS=()
trap 'for p in "${CG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; [ -n "${CG_BENCH_KEEP:-}" ] || rm -rf "$run"' EXIT

cg_stack_ports
gw_port=$CG_GW_PORT
# Long simulated calls and no result push: the run measures placement only.
cg_stack_up "$bin" "$run" ".log_level=\"${CG_BENCH_LOG_LEVEL:-warn}\"" --call-ms 600000 --quiet \
  || { echo "the stack did not come up; logs in $run" >&2; exit 1; }
gw_pid=${CG_PIDS[2]}
# Every placement looks its agent up in the directory (and marks it busy).
cg_demo_agent >/dev/null

cpu_ticks() { awk '{print $14 + $15}' "/proc/$gw_pid/stat"; }
hz=$(getconf CLK_TCK)
printf '%-6s %10s %9s %9s %8s %10s\n' conns req/s p50_ms p99_ms errors cpu_us/req
for c in "${conns[@]}"; do
  t0=$(cpu_ticks)
  out=$(wrk -t 2 -c "$c" -d "${secs}s" --latency -s "$here/bench/calls.lua" "http://127.0.0.1:$gw_port" 2>&1)
  t1=$(cpu_ticks)
  line=$(grep '^RESULT' <<<"$out")
  rps=$(sed 's/.*rps=\([0-9]*\).*/\1/' <<<"$line")
  reqs=$(sed 's/.*requests=\([0-9]*\).*/\1/' <<<"$line")
  p50=$(sed 's/.*p50_ms=\([0-9.]*\).*/\1/' <<<"$line")
  p99=$(sed 's/.*p99_ms=\([0-9.]*\).*/\1/' <<<"$line")
  errs=$(sed 's/.*errors=\([0-9]*\).*/\1/' <<<"$line")
  cpu=$(( (t1 - t0) * 1000000 / hz / (reqs > 0 ? reqs : 1) ))
  printf '%-6s %10s %9s %9s %8s %10s\n' "$c" "$rps" "$p50" "$p99" "$errs" "$cpu"
done
