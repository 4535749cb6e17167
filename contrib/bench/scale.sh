#!/usr/bin/env bash
# callgate's memory and how its cost per call scales (contrib/bench/README.md):
#   1. VmRSS idle, then with 256, 1,000 and 10,000 open keep-alive client
#      connections (each has answered one GET /healthz), and after they close;
#   2. POST /v1/calls (calls.lua, wrk at CONNS connections) with routing tables
#      of 1, 1,000 and 50,000 to_prefix rules, then with 1, 100 and 10,000
#      tenants: req/s, p99 and callgate's CPU µs per request, the median of
#      ROUNDS interleaved rounds (RIG_ROUNDS, default 3).
# Same layout as peers.sh: wrk, the vendor stub and Redis on CPU 0, callgate on
# CPU 1.
#
#   contrib/bench/scale.sh [seconds] [connections]        default: 5 64
set -euo pipefail
# shellcheck source=contrib/bench/rig.sh
. "$(dirname "$0")/rig.sh"

secs=${1:-5}
conns=${2:-64}
rounds=${RIG_ROUNDS:-3}
case $rounds in *[!0-9]*|'') echo "RIG_ROUNDS: a number" >&2; exit 2 ;; esac
rig_check_args "$secs" "$conns"
rig_deps
cg_build plain
# 10,000 client connections and as many accepted ones, plus the rest.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 10240 ] ||
  { echo "needs ulimit -n >= 10240 (hard limit: $(ulimit -Hn))" >&2; exit 2; }
rig_begin scale
py="$RIG_DIR/scale.py"
bin="$CG_TOP/build/plain"

rig_world
# max_connections above the 10,000 held plus wrk's.
rig_conf "$RIG_RUN/base.json" '.limits.max_connections=20000'

# ---- 1. memory ----
rig_callgate "$bin" "$RIG_RUN/base.json" || { echo "callgate did not come up" >&2; exit 1; }
sleep 1
idle=$(rig_rss "$RIG_GW_PID")
echo "callgate RSS (VmRSS, KiB) with open keep-alive client connections"
printf '%-12s %10s %16s\n' connections rss_kib growth_kib/conn
printf '%-12s %10s %16s\n' 0 "$idle" -
for n in 256 1000 10000; do
  rm -f "$RIG_RUN/ready"
  python3 "$py" hold "$n" "$RIG_GW_PORT" "$RIG_RUN/ready" 120 &
  holder=$!
  RIG_PIDS+=("$holder")
  for _ in $(seq 1 1200); do
    [ -f "$RIG_RUN/ready" ] && break
    kill -0 "$holder" 2>/dev/null || break
    sleep 0.1
  done
  [ -f "$RIG_RUN/ready" ] || { echo "could not open $n connections" >&2; exit 1; }
  sleep 0.5
  rss=$(rig_rss "$RIG_GW_PID")
  printf '%-12s %10s %16s\n' "$n" "$rss" \
    "$(awk -v a="$rss" -v b="$idle" -v n="$n" 'BEGIN { printf "%.1f", (a - b) / n }')"
  kill "$holder" 2>/dev/null || true
  wait "$holder" 2>/dev/null || true
  sleep 1
done
printf '%-12s %10s %16s\n' "0 (after)" "$(rig_rss "$RIG_GW_PID")" -
rig_callgate_stop

# ---- 2. cost per call as tables grow ----
setups=(routes:1 routes:1000 routes:50000 tenants:1 tenants:100 tenants:10000)
for s in "${setups[@]}"; do
  kind=${s%%:*}; n=${s#*:}
  if [ "$kind" = routes ]; then
    python3 "$py" routes "$n" "$RIG_RUN/routes-$n"
  else
    python3 "$py" tenants "$n" "$RIG_RUN/base.json" "$RIG_RUN/tenants-$n.json"
  fi
done
# One configuration per setup: the big routing table with the demo tenant,
# and the many tenants with the demo routes.
conf_of() {
  local kind=${1%%:*} n=${1#*:}
  if [ "$kind" = routes ]; then
    RIG_ROUTES="$RIG_RUN/routes-$n" rig_conf "$RIG_RUN/conf-$kind-$n.json" '.limits.max_connections=20000'
  else
    cp "$RIG_RUN/tenants-$n.json" "$RIG_RUN/conf-$kind-$n.json"
  fi
  echo "$RIG_RUN/conf-$kind-$n.json"
}

declare -A R
echo >&2
for r in $(seq 1 "$rounds"); do
  for s in "${setups[@]}"; do
    conf=$(conf_of "$s")
    t0=$(date +%s%N)
    rig_redis_cli flushall >/dev/null
    rig_callgate "$bin" "$conf" || { echo "callgate did not come up with $s" >&2; exit 1; }
    start_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    rig_wrk "http://127.0.0.1:$RIG_GW_PORT" "$conns" 1 "$RIG_GW_PID" || true # warm-up
    rig_wrk "http://127.0.0.1:$RIG_GW_PORT" "$conns" "$secs" "$RIG_GW_PID" || true
    rss=$(rig_rss "$RIG_GW_PID")
    rig_callgate_stop
    for f in RPS P99 ERRS CPU SBUSY; do v="RIG_$f"; R[$s,$r,$f]=${!v}; done
    R[$s,$r,START]=$start_ms; R[$s,$r,RSS]=$rss
    printf 'round %d %-15s req/s=%-7s p99=%-8s errors=%-4s cpu_us/req=%-6s start_ms=%s rss_kib=%s\n' \
      "$r" "$s" "$RIG_RPS" "$RIG_P99" "$RIG_ERRS" "$RIG_CPU" "$start_ms" "$rss" >&2
  done
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { local r out=(); for r in $(seq 1 "$rounds"); do out+=("${R[$1,$r,$2]}"); done; median "${out[@]}"; }
echo
echo "POST /v1/calls as tables grow: c=$conns, ${secs} s runs, median of $rounds rounds" \
     "(start_ms: until /readyz and the demo agent answered)"
printf '%-16s %9s %8s %7s %11s %6s %9s %9s\n' setup req/s p99_ms errors cpu_us/req sut% start_ms rss_kib
for s in "${setups[@]}"; do
  errs=0; for r in $(seq 1 "$rounds"); do errs=$((errs + R[$s,$r,ERRS])); done
  printf '%-16s %9s %8s %7s %11s %6s %9s %9s\n' "$s" "$(field "$s" RPS)" "$(field "$s" P99)" \
    "$errs" "$(field "$s" CPU)" "$(field "$s" SBUSY)" "$(field "$s" START)" "$(field "$s" RSS)"
done
