# Shared by peers.sh, scale.sh and profile.sh: install the peers' packages,
# start the processes of the rig pinned to their cores, run wrk and read
# CPU time from /proc. Sourced, not run.
# shellcheck shell=bash

RIG_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=contrib/lib.sh
. "$RIG_DIR/../lib.sh"

# The cores: the rest of the world (wrk, the vendor stub, Redis) on one, the
# peer under test alone on the other.
RIG_HARNESS_CPU=${RIG_HARNESS_CPU:-0}
RIG_SUT_CPU=${RIG_SUT_CPU:-1}
RIG_WRK_THREADS=${RIG_WRK_THREADS:-1}
RIG_PIDS=()

# rig_check_args SECS CONNS: both whole numbers, 1 to 60 s and 1 to 1,000
# connections (every run is bounded); exits with a message otherwise.
rig_check_args() {
  case "$1$2" in *[!0-9]*|'') echo "seconds and connections: numbers" >&2; exit 2 ;; esac
  [ "$1" -ge 1 ] && [ "$1" -le 60 ] || { echo "1 to 60 s per run" >&2; exit 2; }
  [ "$2" -ge 1 ] && [ "$2" -le 1000 ] || { echo "1 to 1000 connections" >&2; exit 2; }
}

# The Debian packages the rig needs beyond callgate's own (contrib/deps.sh).
rig_deps() {
  local missing=() p
  "$RIG_DIR/../deps.sh"
  for p in wrk nginx-light nodejs npm python3; do
    case $p in
      nginx-light) command -v nginx >/dev/null && continue ;;
      nodejs) command -v node >/dev/null && continue ;;
      *) command -v "$p" >/dev/null && continue ;;
    esac
    missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || { echo "run as root to install: ${missing[*]}" >&2; return 1; }
  echo "bench: installing ${missing[*]}" >&2
  local rm_policy=""
  # As in deps.sh: keep the packages from starting system-wide daemons.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    rm_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  local rc=$?
  [ -z "$rm_policy" ] || rm -f /usr/sbin/policy-rc.d
  return $rc
}

# rig_begin NAME: the run directory (RIG_RUN), and the traps that stop
# everything the rig starts and remove it on exit or interruption.
rig_begin() {
  RIG_RUN=$(mktemp -d "/tmp/callgate-$1.XXXXXX")
  chmod 755 "$RIG_RUN"
  trap rig_cleanup EXIT
  trap 'exit 130' INT TERM
}

# rig_world: Redis and the vendor stub on the harness core, and a free port
# for callgate (RIG_GW_PORT).
rig_world() {
  rig_redis
  rig_stub
  cg_free_port; RIG_GW_PORT=$CG_PORT
}

# Stop everything the rig started (the EXIT trap), then remove RIG_RUN.
rig_cleanup() {
  local p
  for p in "${RIG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${RIG_PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  [ -n "${CG_BENCH_KEEP:-}" ] || [ -z "${RIG_RUN:-}" ] || rm -rf "$RIG_RUN"
}

# The CloudDialer success answer callgate accepts (src/vendors/clouddialer.c).
RIG_STUB_BODY='{"status":"success","call_id":"CD-1000001","message":"Call initiated"}'

# rig_nginx NAME CPU PORT LOCATION_BODY [UPSTREAM_PORT]: an nginx with one
# worker on CPU, its files in $RIG_RUN/NAME; the master's pid is appended to
# RIG_PIDS and left in RIG_PID.
rig_nginx() {
  local name=$1 cpu=$2 port=$3 loc=$4 up=${5:-} dir="$RIG_RUN/$1" upstream=""
  mkdir -p "$dir"
  if [ -n "$up" ]; then
    upstream="upstream stub { server 127.0.0.1:$up; keepalive 256; keepalive_requests 1000000; }"
  fi
  cat >"$dir/nginx.conf" <<EOF
user $(id -un);
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path $dir/body; proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fcgi; uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;
  keepalive_requests 1000000; keepalive_timeout 120s;
  $upstream
  server {
    listen 127.0.0.1:$port;
    location / { $loc }
  }
}
EOF
  taskset -c "$cpu" nginx -c "$dir/nginx.conf" -e "$dir/error.log" 2>>"$dir/error.log" &
  RIG_PID=$!
  RIG_PIDS+=("$RIG_PID")
  cg_wait_port "$port"
}

# The vendor stub: CloudDialer's success answer to anything, on the harness core.
rig_stub() {
  cg_free_port; RIG_STUB_PORT=$CG_PORT
  rig_nginx stub "$RIG_HARNESS_CPU" "$RIG_STUB_PORT" \
    "default_type application/json; return 200 '$RIG_STUB_BODY';"
  RIG_STUB_PID=$RIG_PID
}

# nginx proxy_pass to the stub with upstream keep-alive, on the SUT core.
rig_nginx_proxy() {
  cg_free_port; RIG_NGINX_PORT=$CG_PORT
  rig_nginx proxy "$RIG_SUT_CPU" "$RIG_NGINX_PORT" \
    'proxy_pass http://stub; proxy_http_version 1.1; proxy_set_header Connection "";' \
    "$RIG_STUB_PORT"
  RIG_NGINX_PID=$RIG_PID
}

rig_redis() {
  cg_free_port; RIG_REDIS_PORT=$CG_PORT
  # hash-max-listpack-value: the setting README recommends for callgate (its
  # hashes hold one or two values over Redis's default of 64 bytes); the
  # Node peer uses plain strings, which it does not touch.
  # RIG_REDIS_ARGS: other redis-server options, to try (later ones win).
  # shellcheck disable=SC2086
  taskset -c "$RIG_HARNESS_CPU" redis-server --port "$RIG_REDIS_PORT" --bind 127.0.0.1 \
    --save "" --appendonly no --dir "$RIG_RUN" --hash-max-listpack-value 1024 \
    ${RIG_REDIS_ARGS:-} >"$RIG_RUN/redis.log" 2>&1 &
  RIG_REDIS_PID=$!
  RIG_PIDS+=("$RIG_REDIS_PID")
  cg_wait_port "$RIG_REDIS_PORT"
}

rig_redis_cli() { redis-cli -p "$RIG_REDIS_PORT" "$@"; }

# The Node peer: npm ci once (pinned by package-lock.json), one process.
rig_node() {
  local dir="$RIG_DIR/node"
  if [ ! -d "$dir/node_modules/redis" ]; then
    (cd "$dir" && npm ci --silent --no-audit --no-fund >/dev/null 2>&1) ||
      { echo "npm ci failed in $dir" >&2; return 1; }
  fi
  cg_free_port; RIG_NODE_PORT=$CG_PORT
  PORT=$RIG_NODE_PORT UPSTREAM_PORT=$RIG_STUB_PORT REDIS_PORT=$RIG_REDIS_PORT \
    API_KEY_SHA256=$(printf %s demo-acme-key | sha256sum | cut -d' ' -f1) \
    taskset -c "$RIG_SUT_CPU" node "$dir/server.js" >"$RIG_RUN/node.log" 2>&1 &
  RIG_NODE_PID=$!
  RIG_PIDS+=("$RIG_NODE_PID")
  cg_wait_port "$RIG_NODE_PORT"
}

# rig_conf OUT [JQ_FILTER]: conf/callgate.json pointed at the rig's Redis and
# stub (both vendors), quiet, then changed by JQ_FILTER.
rig_conf() {
  local out=$1 filter=${2:-.}
  cg_demo_env
  jq --arg listen "127.0.0.1:$RIG_GW_PORT" --argjson rport "$RIG_REDIS_PORT" \
     --arg routes "${RIG_ROUTES:-$CG_TOP/routes}" --arg vendor "http://127.0.0.1:$RIG_STUB_PORT" \
     --arg level "${CG_BENCH_LOG_LEVEL:-warn}" \
     '.listen=$listen | .redis.port=$rport | .routes_dir=$routes | .log_level=$level
      | .vendors.clouddialer.base_url=$vendor | .vendors.ccai.base_url=$vendor' \
     "$CG_TOP/conf/callgate.json" | jq "$filter" >"$out"
}

# rig_callgate BIN CONF: callgate from build dir BIN on the SUT core; waits for
# /readyz and puts the demo agent in the directory.
rig_callgate() {
  local bin=$1 conf=$2
  "$bin/src/callgate" -t -c "$conf" >"$RIG_RUN/callgate-check.log" 2>&1 ||
    { cat "$RIG_RUN/callgate-check.log" >&2; return 1; }
  # shellcheck disable=SC2086 # RIG_CG_ARGS: extra options, e.g. --workers 2 (workers.sh)
  taskset -c "$RIG_SUT_CPU" "$bin/src/callgate" -c "$conf" ${RIG_CG_ARGS:-} \
    >>"$RIG_RUN/callgate.log" 2>&1 &
  RIG_GW_PID=$!
  RIG_PIDS+=("$RIG_GW_PID")
  # Up to a minute: 10,000 tenants take seconds to check (scale.sh).
  for _ in $(seq 1 6); do
    cg_wait_port "$RIG_GW_PORT" && break
    kill -0 "$RIG_GW_PID" 2>/dev/null || return 1
  done
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$RIG_GW_PORT/readyz" >/dev/null && { rig_agent; return; }
    sleep 0.1
  done
  return 1
}

# Stop the running callgate (scale.sh restarts it with other tables).
rig_callgate_stop() {
  kill "$RIG_GW_PID" 2>/dev/null || true
  wait "$RIG_GW_PID" 2>/dev/null || true
}

# The demo agent agent.017, whom every call of calls.lua names.
rig_agent() {
  CG_GW_PORT=$RIG_GW_PORT cg_demo_agent >/dev/null
}

# Sum of user+system ticks of the given pids and their children (nginx's worker).
rig_ticks() {
  local p c t=0
  for p in "$@"; do
    for c in "$p" $(pgrep -P "$p" 2>/dev/null); do
      [ -r "/proc/$c/stat" ] || continue
      # Field 2 (comm) may hold spaces: count from after its closing paren.
      t=$(( t + $(sed 's/.*) //' "/proc/$c/stat" | awk '{print $12 + $13}') ))
    done
  done
  echo "$t"
}

RIG_HZ=$(getconf CLK_TCK)

# "busy total" jiffies of the CPUs in a list ("1" or "0,1") from /proc/stat.
rig_cpu_jiffies() {
  awk -v list="$1" '
    BEGIN { n = split(list, a, ","); for (i = 1; i <= n; i++) want["cpu" a[i]] = 1 }
    $1 in want { t = 0; for (i = 2; i <= 9; i++) t += $i; busy += t - $5 - $6; tot += t }
    END { print busy + 0, tot + 0 }' /proc/stat
}

# rig_wrk URL CONNS SECS PIDS...: one wrk run with calls.lua on the harness
# core. Sets RIG_RPS RIG_REQS RIG_P50 RIG_P99 RIG_ERRS RIG_CPU (µs per request
# of PIDS and their children), RIG_HBUSY RIG_SBUSY (% busy of the harness and
# SUT cores, whoever used them: other processes on the machine show there),
# RIG_OWN (% of one core the PIDS used).
rig_wrk() {
  local url=$1 conns=$2 secs=$3 t0 t1 out line h0 h1 s0 s1
  shift 3
  h0=$(rig_cpu_jiffies "$RIG_HARNESS_CPU"); s0=$(rig_cpu_jiffies "$RIG_SUT_CPU")
  t0=$(rig_ticks "$@")
  out=$(taskset -c "$RIG_HARNESS_CPU" wrk -t "$RIG_WRK_THREADS" -c "$conns" -d "${secs}s" \
        --latency -s "$RIG_DIR/calls.lua" "$url" 2>&1) || true
  t1=$(rig_ticks "$@")
  h1=$(rig_cpu_jiffies "$RIG_HARNESS_CPU"); s1=$(rig_cpu_jiffies "$RIG_SUT_CPU")
  RIG_HBUSY=$(printf '%s %s\n' "$h0" "$h1" | awk '{ printf "%.0f", ($4 > $2 ? 100 * ($3 - $1) / ($4 - $2) : 0) }')
  RIG_SBUSY=$(printf '%s %s\n' "$s0" "$s1" | awk '{ printf "%.0f", ($4 > $2 ? 100 * ($3 - $1) / ($4 - $2) : 0) }')
  line=$(grep '^RESULT' <<<"$out" || true)
  if [ -z "$line" ]; then
    echo "wrk failed: $out" >&2
    RIG_RPS=0 RIG_REQS=0 RIG_P50=0 RIG_P99=0 RIG_ERRS=-1 RIG_CPU=0 RIG_HBUSY=0 RIG_SBUSY=0 RIG_OWN=0
    return 1
  fi
  RIG_RPS=$(sed 's/.*rps=\([0-9]*\).*/\1/' <<<"$line")
  RIG_REQS=$(sed 's/.*requests=\([0-9]*\).*/\1/' <<<"$line")
  RIG_P50=$(sed 's/.*p50_ms=\([0-9.]*\).*/\1/' <<<"$line")
  RIG_P99=$(sed 's/.*p99_ms=\([0-9.]*\).*/\1/' <<<"$line")
  RIG_ERRS=$(sed 's/.*errors=\([0-9]*\).*/\1/' <<<"$line")
  RIG_OWN=$(awk -v d=$((t1 - t0)) -v hz="$RIG_HZ" -v s="$secs" 'BEGIN { printf "%.0f", 100 * d / hz / s }')
  RIG_CPU=$(awk -v d=$((t1 - t0)) -v hz="$RIG_HZ" -v n="$RIG_REQS" \
            'BEGIN { printf "%.1f", (n > 0 ? d * 1e6 / hz / n : 0) }')
}

# rig_post URL: one call as calls.lua sends it; prints the HTTP status.
rig_post() {
  curl -s -o "$RIG_RUN/post.out" -w '%{http_code}' -X POST "$1/v1/calls" \
    -H 'Authorization: Bearer demo-acme-key' -H 'Content-Type: application/json' \
    -H "Idempotency-Key: smoke-$RANDOM-$RANDOM" \
    -d '{"to":"+919876543210","agent":"agent.017","reference":"bench"}'
}

# VmRSS of a pid in KiB.
rig_rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
