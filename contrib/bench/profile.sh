#!/usr/bin/env bash
# Where callgate's CPU goes on POST /v1/calls (contrib/bench/README.md): the
# rig of peers.sh with callgate only, wrk at CONNS connections, then
#   1. a plain run: req/s and CPU µs per request;
#   2. perf record -g on callgate for SECONDS: CPU share by library and by
#      symbol, and the kernel's share by syscall;
#   3. Redis commands per call (INFO commandstats before and after);
#   4. strace -f on callgate for 3 s: syscalls per call, split by the peer of
#      the socket (client, Redis, vendor stub) and by name.
#
#   contrib/bench/profile.sh [seconds] [connections]     default: 10 64
#
# Keeps perf.data and the reports in $CG_BENCH_OUT (default: a temp
# directory, removed at the end unless CG_BENCH_KEEP is set).
set -euo pipefail
# shellcheck source=contrib/bench/rig.sh
. "$(dirname "$0")/rig.sh"

secs=${1:-10}
conns=${2:-64}
rig_check_args "$secs" "$conns"
command -v perf >/dev/null || { echo "perf is needed (Debian: linux-perf)" >&2; exit 2; }
command -v strace >/dev/null || { echo "strace is needed" >&2; exit 2; }

rig_deps
cg_build plain
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
rig_begin profile
out=${CG_BENCH_OUT:-$RIG_RUN}
mkdir -p "$out"

rig_world
rig_conf "$RIG_RUN/callgate.json"
rig_callgate "$CG_TOP/build/plain" "$RIG_RUN/callgate.json" ||
  { echo "callgate did not come up" >&2; exit 1; }
gw=http://127.0.0.1:$RIG_GW_PORT
pid=$RIG_GW_PID

rig_wrk "$gw" "$conns" 3 "$pid" >/dev/null || true # warm-up
rig_redis_cli flushall >/dev/null; rig_agent
rig_wrk "$gw" "$conns" "$secs" "$pid"
echo "== plain run: c=$conns ${secs}s: req/s=$RIG_RPS p50_ms=$RIG_P50 p99_ms=$RIG_P99" \
     "errors=$RIG_ERRS callgate cpu_us/req=$RIG_CPU"

# 2. perf, over the middle of a run.
rig_redis_cli flushall >/dev/null; rig_agent
rig_redis_cli config resetstat >/dev/null
# CG_PERF_CALLS=dwarf records whole call chains (libc has no frame pointers).
if [ "${CG_PERF_CALLS:-fp}" = dwarf ]; then calls=(--call-graph dwarf,16384 -F 499); else calls=(-g -F 2999); fi
(sleep 1; perf record -q "${calls[@]}" -p "$pid" -o "$out/perf.data" -- sleep "$secs" \
   >"$out/perf.log" 2>&1) &
perf_job=$!
rig_wrk "$gw" "$conns" $((secs + 2)) "$pid"
wait "$perf_job" || true
reqs=$RIG_REQS
echo "== perf run: req/s=$RIG_RPS (under perf) requests=$reqs"

# 3. Redis commands per call, from the same run.
echo "== Redis commands per call (INFO commandstats / requests)"
rig_redis_cli info commandstats | tr -d '\r' |
  awk -F'[:=,]' -v n="$reqs" '/^cmdstat_/ { sub("cmdstat_", "", $1);
    printf "  %-12s %6.2f per call  %5.1f us each in Redis\n", $1, $3 / n, $7 }'

# Reports go to files first: head closing a pipe early would trip pipefail.
report() { perf report -i "$out/perf.data" --stdio "$@" 2>/dev/null | grep -v -e '^#' -e '^$' || true; }
report --no-children --sort dso -g none >"$out/dso.txt"
report --no-children --sort dso,sym -g none >"$out/sym.txt"
# The kernel's time by syscall entry point (children included).
report --children --sort sym -g none | grep -E '__x64_sys_|do_syscall_64|irq|softirq' >"$out/sys.txt" || true
echo "== CPU by library (perf, self time)"; head -15 "$out/dso.txt"
echo "== top symbols (perf, self time)"; head -40 "$out/sym.txt"
echo "== kernel entry points (perf, with children)"; head -25 "$out/sys.txt"

# 4. Syscalls per call by socket peer: strace -yy names each fd's endpoints.
rig_redis_cli flushall >/dev/null; rig_agent
(sleep 1; timeout -s INT 3 strace -f -yy -qq -o "$out/strace.txt" -p "$pid" >/dev/null 2>&1) &
st_job=$!
taskset -c "$RIG_HARNESS_CPU" wrk -t 1 -c "$conns" -d 5s -s "$RIG_DIR/calls.lua" "$gw" >/dev/null 2>&1 || true
wait "$st_job" || true
# Calls answered while strace ran: the 201 answers written to client sockets.
calls=$(grep -c "127.0.0.1:$RIG_GW_PORT->.*HTTP/1.1 201" "$out/strace.txt" || true)
echo "== syscalls per call under strace (3 s, $calls calls answered; strace slows the daemon)"
awk -v gw="127.0.0.1:$RIG_GW_PORT->" -v rd="->127.0.0.1:$RIG_REDIS_PORT]" \
    -v st="->127.0.0.1:$RIG_STUB_PORT]" -v n="$calls" '
  { line = $0; sub(/^[0-9]+ +/, "", line)
    name = line; sub(/\(.*/, "", name)
    if (name ~ /^[<+-]/ || name == "") next
    peer = "other"
    if (index(line, gw) > 0) peer = "client"
    if (index(line, rd) > 0) peer = "redis"
    if (index(line, st) > 0) peer = "vendor"
    if (name ~ /epoll|poll|select|clock|timerfd/) peer = "-"
    cnt[peer " " name]++ }
  END { for (k in cnt) printf "  %-8s %-16s %6.2f\n", substr(k, 1, index(k, " ") - 1),
          substr(k, index(k, " ") + 1), (n > 0 ? cnt[k] / n : 0) }' "$out/strace.txt" |
  sort -k3 -gr | head -30
[ -z "${CG_BENCH_OUT:-}" ] || echo "perf.data and the reports are in $out"
