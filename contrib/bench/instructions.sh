#!/usr/bin/env bash
# Instructions per POST /v1/calls inside callgate, counted by callgrind: a
# figure that does not drift with the machine's load, for comparing two
# builds of the hot path (contrib/bench/README.md). The rig of peers.sh
# (Redis and the vendor stub), callgate under valgrind's callgrind, wrk at 8
# connections: 3 s of warm-up, then SECONDS counted. Prints the calls
# answered, the user-space instructions per call (the kernel's are not
# counted) and the functions with the most instructions, callees included.
#
#   contrib/bench/instructions.sh [seconds] [build dir]    default: 5 build/plain
#
# The build dir is any configured tree with src/callgate (default: the plain
# build, made if needed). Keeps callgrind.out in $CG_BENCH_OUT if set.
set -euo pipefail
# shellcheck source=contrib/bench/rig.sh
. "$(dirname "$0")/rig.sh"

secs=${1:-5}
rig_check_args "$secs" 8
rig_deps
command -v valgrind >/dev/null || {
  [ "$(id -u)" -eq 0 ] || { echo "valgrind is needed (Debian: valgrind)" >&2; exit 2; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind >/dev/null
}
if [ -n "${2:-}" ]; then
  bin=$(cd "$2" && pwd)
else
  cg_build plain
  bin=$CG_TOP/build/plain
fi
[ -x "$bin/src/callgate" ] || { echo "no $bin/src/callgate" >&2; exit 2; }

rig_begin instructions
rig_world
rig_conf "$RIG_RUN/callgate.json"
"$bin/src/callgate" -t -c "$RIG_RUN/callgate.json" >"$RIG_RUN/check.log" 2>&1 ||
  { cat "$RIG_RUN/check.log" >&2; exit 1; }
# Counting starts off (start-up is not a call) and is switched on for the run.
taskset -c "$RIG_SUT_CPU" valgrind --tool=callgrind --instr-atstart=no \
  --callgrind-out-file="$RIG_RUN/callgrind.out" "$bin/src/callgate" -c "$RIG_RUN/callgate.json" \
  >"$RIG_RUN/callgate.log" 2>&1 &
RIG_GW_PID=$!
RIG_PIDS+=("$RIG_GW_PID")
gw=http://127.0.0.1:$RIG_GW_PORT
for _ in $(seq 1 300); do
  curl -sf "$gw/readyz" >/dev/null && break
  kill -0 "$RIG_GW_PID" 2>/dev/null || { cat "$RIG_RUN/callgate.log" >&2; exit 1; }
  sleep 0.2
done
rig_agent
taskset -c "$RIG_HARNESS_CPU" wrk -t 1 -c 8 -d 3s -s "$RIG_DIR/calls.lua" "$gw" >/dev/null 2>&1 || true
callgrind_control -i on "$RIG_GW_PID" >/dev/null 2>&1
out=$(taskset -c "$RIG_HARNESS_CPU" wrk -t 1 -c 8 -d "${secs}s" -s "$RIG_DIR/calls.lua" "$gw" 2>&1) || true
callgrind_control -i off "$RIG_GW_PID" >/dev/null 2>&1
kill -INT "$RIG_GW_PID"
wait "$RIG_GW_PID" 2>/dev/null || true

line=$(grep '^RESULT' <<<"$out" || true)
[ -n "$line" ] || { echo "wrk failed: $out" >&2; exit 1; }
calls=$(sed 's/.*requests=\([0-9]*\).*/\1/' <<<"$line")
errs=$(sed 's/.*errors=\([0-9]*\).*/\1/' <<<"$line")
callgrind_annotate --inclusive=yes "$RIG_RUN/callgrind.out" >"$RIG_RUN/annotate.txt" 2>/dev/null
total=$(awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }' "$RIG_RUN/annotate.txt")
[ "${calls:-0}" -gt 0 ] && [ -n "$total" ] || { echo "nothing counted" >&2; exit 1; }
echo "calls=$calls errors=$errs instructions/call=$((total / calls))  ($bin, ${secs}s at 8 connections)"
echo "== most instructions per call, callees included (callgrind)"
# One line per function (callgrind names some twice, by two paths to their
# file); libraries without symbols show addresses, which are left out.
awk -v n="$calls" '/^ *[0-9,]+ +\([ 0-9.]+%\) +[^ ]/ {
    ir = $1; gsub(",", "", ir); name = $0; sub(/^ *[0-9,]+ +\([ 0-9.]+%\) +/, "", name)
    lib = ""; if (match(name, / \[.*\]$/)) { lib = substr(name, RSTART + 2, RLENGTH - 3); sub(/.*\//, "", lib) }
    sub(/ \[.*\]$/, "", name); sub(/.*:/, "", name)
    if (name ~ /^0x/ || name ~ /TOTALS$/ || seen[name]++) next
    printf "  %8d  %s%s\n", ir / n, name, (lib != "" && lib != "callgate" ? "  (" lib ")" : "") }' \
  "$RIG_RUN/annotate.txt" | sed -n '1,30p'
if [ -n "${CG_BENCH_OUT:-}" ]; then
  mkdir -p "$CG_BENCH_OUT" && cp "$RIG_RUN/callgrind.out" "$CG_BENCH_OUT/"
  echo "callgrind.out is in $CG_BENCH_OUT"
fi
