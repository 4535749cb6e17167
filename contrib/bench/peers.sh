#!/usr/bin/env bash
# callgate against its peers on POST /v1/calls (contrib/bench/README.md):
#   stub      the CloudDialer vendor stub (nginx return 200), hit directly: the limit
#   nginx     nginx proxy_pass to the stub with upstream keep-alive: the reference
#   node      contrib/bench/node: the hot path as a small Node.js service would do it
#   callgate  the whole hot path, routed to CloudDialer = the stub
# wrk (calls.lua, a unique Idempotency-Key per request), the stub and Redis run
# on CPU 0, the peer under test alone on CPU 1, one worker each. Three rounds,
# the peer order rotated each round; every figure is the median of the rounds.
#
#   contrib/bench/peers.sh [seconds] [connections...]   default: 10 16 64 256
#
# Installs wrk, nginx and node/npm from Debian when missing (as root), builds
# callgate (build/plain), loopback only; stops everything it started.
set -euo pipefail
# shellcheck source=contrib/bench/rig.sh
. "$(dirname "$0")/rig.sh"

secs=${1:-10}; shift || true
conns=("$@"); [ ${#conns[@]} -gt 0 ] || conns=(16 64 256)
rounds=${RIG_ROUNDS:-3}
case $secs in '' | *[!0-9]*) echo "seconds: a number" >&2; exit 2 ;; esac
[ "$secs" -ge 1 ] && [ "$secs" -le 60 ] || { echo "1 to 60 s per run" >&2; exit 2; }
for c in "${conns[@]}"; do
  case $c in '' | *[!0-9]*) echo "connections: numbers" >&2; exit 2 ;; esac
  [ "$c" -ge 1 ] && [ "$c" -le 1000 ] || { echo "1 to 1000 connections" >&2; exit 2; }
done
[ "$(nproc)" -ge 2 ] || { echo "needs 2 CPUs (harness and peer under test)" >&2; exit 2; }

rig_deps
cg_build plain
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
rig_begin peers

rig_world
rig_nginx_proxy
rig_node
rig_conf "$RIG_RUN/callgate.json" '.limits.max_connections=20000'
rig_callgate "$CG_TOP/build/plain" "$RIG_RUN/callgate.json" ||
  { echo "callgate did not come up; see $RIG_RUN (CG_BENCH_KEEP=1 keeps it)" >&2; exit 1; }

peers=(stub nginx node callgate)
declare -A url pids
url[stub]=http://127.0.0.1:$RIG_STUB_PORT;   pids[stub]=$RIG_STUB_PID
url[nginx]=http://127.0.0.1:$RIG_NGINX_PORT; pids[nginx]=$RIG_NGINX_PID
url[node]=http://127.0.0.1:$RIG_NODE_PORT;   pids[node]=$RIG_NODE_PID
url[callgate]=http://127.0.0.1:$RIG_GW_PORT; pids[callgate]=$RIG_GW_PID

# Every peer must answer one call with 2xx before anything is measured.
for p in "${peers[@]}"; do
  s=$(rig_post "${url[$p]}")
  case $s in 2??) ;; *) echo "$p answered $s: $(cat "$RIG_RUN/post.out")" >&2; exit 1 ;; esac
done

# Fresh Redis for each run of a peer that uses it (records pile up otherwise).
before_run() {
  case $1 in
    node) rig_redis_cli flushall >/dev/null ;;
    callgate) rig_redis_cli flushall >/dev/null; rig_agent ;;
  esac
}

echo "warm-up: 3 s per peer at 64 connections" >&2
for p in "${peers[@]}"; do
  before_run "$p"
  rig_wrk "${url[$p]}" 64 3 "${pids[$p]}" || true
done

declare -A R # R[peer,conns,round,field]
for r in $(seq 1 "$rounds"); do
  for c in "${conns[@]}"; do
    n=${#peers[@]}
    for i in $(seq 0 $((n - 1))); do
      p=${peers[$(((i + r - 1) % n))]}
      before_run "$p"
      rig_wrk "${url[$p]}" "$c" "$secs" "${pids[$p]}" || true
      for f in RPS P50 P99 ERRS CPU HBUSY SBUSY OWN; do v="RIG_$f"; R[$p,$c,$r,$f]=${!v}; done
      printf 'round %d c=%-4s %-9s req/s=%-7s p50=%-7s p99=%-8s errors=%-5s cpu_us/req=%-6s own%%=%-3s cores%%=%s/%s\n' \
        "$r" "$c" "$p" "$RIG_RPS" "$RIG_P50" "$RIG_P99" "$RIG_ERRS" "$RIG_CPU" "$RIG_OWN" "$RIG_HBUSY" \
        "$RIG_SBUSY" >&2
    done
  done
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { local p=$1 c=$2 f=$3 r out=(); for r in $(seq 1 "$rounds"); do out+=("${R[$p,$c,$r,$f]}"); done; median "${out[@]}"; }
# Median over the rounds of callgate's figure divided by a peer's, same round.
ratio() {
  local ref=$1 c=$2 f=$3 r out=()
  for r in $(seq 1 "$rounds"); do
    out+=("$(awk -v a="${R[callgate,$c,$r,$f]}" -v b="${R[$ref,$c,$r,$f]}" \
             'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')")
  done
  median "${out[@]}"
}

echo
echo "callgate peers: POST /v1/calls, ${secs} s runs, median of $rounds rounds;" \
     "wrk -t$RIG_WRK_THREADS + stub + Redis on CPU $RIG_HARNESS_CPU, peer on CPU $RIG_SUT_CPU"
printf '%-6s %-9s %9s %8s %8s %7s %11s %5s %6s %5s   %s\n' conns peer req/s p50_ms p99_ms errors \
  cpu_us/req own% harn% sut% "req/s of the rounds"
for c in "${conns[@]}"; do
  for p in "${peers[@]}"; do
    all=""; errs=0
    for r in $(seq 1 "$rounds"); do
      all="$all${all:+, }${R[$p,$c,$r,RPS]}"; errs=$((errs + R[$p,$c,$r,ERRS]))
    done
    printf '%-6s %-9s %9s %8s %8s %7s %11s %5s %6s %5s   %s\n' "$c" "$p" "$(field "$p" "$c" RPS)" \
      "$(field "$p" "$c" P50)" "$(field "$p" "$c" P99)" "$errs" "$(field "$p" "$c" CPU)" \
      "$(field "$p" "$c" OWN)" "$(field "$p" "$c" HBUSY)" "$(field "$p" "$c" SBUSY)" "$all"
  done
done
echo
echo "callgate's ratios (median of the per-round ratios; errors are the sum over the rounds)"
printf '%-6s %-9s %10s %12s %10s\n' conns vs "req/s x" "cpu/req x" "p99 x"
for c in "${conns[@]}"; do
  for ref in nginx node; do
    printf '%-6s %-9s %10s %12s %10s\n' "$c" "$ref" "$(ratio "$ref" "$c" RPS)" \
      "$(ratio "$ref" "$c" CPU)" "$(ratio "$ref" "$c" P99)"
  done
done
