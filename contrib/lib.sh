# Shared by the scripts: build directories, free ports, and the demo stack.
# shellcheck shell=bash

CG_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Build callgate in $CG_TOP/build/<name> (out of tree) with extra configure flags.
cg_build() {
  local name=$1; shift
  local dir="$CG_TOP/build/$name"
  if [ ! -x "$CG_TOP/configure" ] || [ "$CG_TOP/configure.ac" -nt "$CG_TOP/configure" ] \
     || [ "$CG_TOP/Makefile.am" -nt "$CG_TOP/Makefile.in" ]; then
    (cd "$CG_TOP" && autoreconf -fi >/dev/null 2>&1) || { echo "autoreconf failed" >&2; return 1; }
  fi
  mkdir -p "$dir"
  if [ ! -f "$dir/Makefile" ] || [ "$CG_TOP/configure" -nt "$dir/Makefile" ]; then
    (cd "$dir" && "$CG_TOP/configure" "$@" >configure.out 2>&1) \
      || { cat "$dir/configure.out" >&2; return 1; }
  fi
  make -C "$dir" -j"$(nproc)" >"$dir/make.out" 2>&1 || { tail -40 "$dir/make.out" >&2; return 1; }
}

# A TCP port on 127.0.0.1 that nothing listens on right now. Drawn below
# Linux's ephemeral range (32768 and up) so that it is not the local end of
# some outgoing connection, and never one handed out earlier by this shell.
# Sets CG_PORT (called directly, not in $(...), which would lose the record).
CG_PORTS_TAKEN=" "
cg_free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$(( 20000 + RANDOM % 12000 ))
    case "$CG_PORTS_TAKEN" in *" $p "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      CG_PORTS_TAKEN="$CG_PORTS_TAKEN$p "
      CG_PORT=$p
      return 0
    fi
  done
  return 1
}

# Wait until something accepts on 127.0.0.1:$1 (up to ~10 s).
cg_wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# The demo secrets conf/callgate.json reads from the environment ("$ENV").
# The simulator's defaults; the demo tenant's API key is demo-acme-key.
cg_demo_env() {
  export CLOUDDIALER_API_KEY=cd-test-key
  export ACME_WEBHOOK_SECRET=whsec_Y2FsbGdhdGUtZGVtby1zaWduaW5nLXNlY3JldC0zMmI=
  export ACME_CLOUDDIALER_TOKEN=acme-cd-token-0123456789
  export CCAI_CREDENTIAL=ccai-test:ccai-test-token
  export ACME_CCAI_TOKEN=acme-ccai-token-0123456789
  export ACME_CCAI_HOOK_AUTH=ccai-hook:ccai-hook-secret
}

# Free ports for the three processes: CG_REDIS_PORT, CG_SIM_PORT, CG_GW_PORT.
cg_stack_ports() {
  cg_free_port; CG_REDIS_PORT=$CG_PORT
  cg_free_port; CG_SIM_PORT=$CG_PORT
  cg_free_port; CG_GW_PORT=$CG_PORT
}

# cg_stack_up BIN RUN JQ_FILTER [SIMULATOR ARGS...]: start redis-server, the
# vendor simulator and callgate (from build dir BIN, files in RUN) on the
# ports of cg_stack_ports, with conf/callgate.json pointed at them and then
# changed by JQ_FILTER ("." for nothing). Appends the pids to the array
# CG_PIDS; returns non-zero when one of them does not come up.
cg_stack_up() {
  local bin=$1 run=$2 filter=$3
  shift 3
  cg_demo_env
  redis-server --port "$CG_REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$run" >"$run/redis.log" 2>&1 &
  CG_PIDS+=($!)
  "$bin/contrib/vendorsim/vendorsim" --listen "127.0.0.1:$CG_SIM_PORT" "$@" \
    >"$run/vendorsim.log" 2>&1 &
  CG_PIDS+=($!)
  jq --arg listen "127.0.0.1:$CG_GW_PORT" --argjson rport "$CG_REDIS_PORT" \
     --arg routes "$CG_TOP/routes" --arg vendor "http://127.0.0.1:$CG_SIM_PORT" \
     '.listen=$listen | .redis.port=$rport | .routes_dir=$routes
      | .vendors.clouddialer.base_url=$vendor | .vendors.ccai.base_url=$vendor' \
     "$CG_TOP/conf/callgate.json" | jq "$filter" >"$run/callgate.json" || return 1
  "$bin/src/callgate" -t -c "$run/callgate.json" >/dev/null || return 1
  "$bin/src/callgate" -c "$run/callgate.json" >"$run/callgate.log" 2>&1 &
  CG_PIDS+=($!)
  cg_wait_port "$CG_REDIS_PORT" && cg_wait_port "$CG_SIM_PORT" && cg_wait_port "$CG_GW_PORT" \
    || return 1
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$CG_GW_PORT/readyz" >/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# Put the demo agent agent.017 (CloudDialer identity agent.017) in the directory.
cg_demo_agent() {
  curl -sS -X PUT "http://127.0.0.1:$CG_GW_PORT/v1/agents/agent.017" \
    -H 'Authorization: Bearer demo-acme-key' -H 'Content-Type: application/json' \
    -d '{"name": "Asha K", "groups": ["sales"], "vendors": {"clouddialer": {"crm_username": "agent.017"}}}'
}
