#!/usr/bin/env bash
# What --workers does: POST /v1/calls (calls.lua) through callgate with
# --workers 1 and then 2, with nothing pinned (wrk, the stub, Redis and
# callgate's processes share both cores, as on a small box running it all).
# Rounds alternate the two; the table has the median of 3.
#
#   contrib/bench/workers.sh [seconds] [connections]     default: 5 64
#
# cpu_us/req counts every callgate process (supervisor and workers); busy%
# is how busy the whole machine was. On 2 cores with the load generator,
# Redis and the stub on the same machine, a second worker mostly competes
# with them: read the result as what a spare core buys, not as a scale-out.
set -euo pipefail
# shellcheck source=contrib/bench/rig.sh
. "$(dirname "$0")/rig.sh"

secs=${1:-5}
conns=${2:-64}
rig_check_args "$secs" "$conns"

rig_deps
cg_build plain
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
RIG_HARNESS_CPU=0,1
RIG_SUT_CPU=0,1
rig_begin workers

rig_world
rig_conf "$RIG_RUN/callgate.json"
gw=http://127.0.0.1:$RIG_GW_PORT
declare -A rps cpu p99 busy
for round in 1 2 3; do
  for w in 1 2; do
    RIG_CG_ARGS="--workers $w" rig_callgate "$CG_TOP/build/plain" "$RIG_RUN/callgate.json" ||
      { echo "callgate did not come up" >&2; exit 1; }
    rig_wrk "$gw" "$conns" 2 "$RIG_GW_PID" >/dev/null || true # warm-up
    rig_redis_cli flushall >/dev/null; rig_agent
    rig_wrk "$gw" "$conns" "$secs" "$RIG_GW_PID"
    echo "round $round workers=$w: req/s=$RIG_RPS p99_ms=$RIG_P99 errors=$RIG_ERRS" \
         "cpu_us/req=$RIG_CPU busy%=$RIG_HBUSY" >&2
    rps[$w]+="$RIG_RPS "; cpu[$w]+="$RIG_CPU "; p99[$w]+="$RIG_P99 "; busy[$w]+="$RIG_HBUSY "
    rig_callgate_stop
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo "callgate --workers: POST /v1/calls, c=$conns, ${secs} s runs, median of 3 rounds; nothing pinned"
printf '%-8s %8s %8s %11s %6s\n' workers req/s p99_ms cpu_us/req busy%
for w in 1 2; do
  printf '%-8s %8s %8s %11s %6s\n' "$w" "$(median <<<"${rps[$w]}")" "$(median <<<"${p99[$w]}")" \
    "$(median <<<"${cpu[$w]}")" "$(median <<<"${busy[$w]}")"
done
