#!/usr/bin/env bash
# Measure the webhook relay end to end: a CloudDialer result push into
# callgate, stored in Redis, turned into a signed tenant event, delivered
# through the durable queue, answered 2xx by the tenant. relay_bench plays
# both the vendor and the tenant on loopback; each run is bounded by its
# event count and a 2-minute deadline, and the script stops everything it
# started.
#
#   contrib/bench/relay.sh [events] [concurrency...]     e.g. contrib/bench/relay.sh 2000 8 32
#
# Prints one line per run: events, delivered, errors, events/s (first push
# to last delivery), and the push-to-delivery latency p50/p99/max.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/deps.sh"
# shellcheck source=contrib/lib.sh
. "$here/lib.sh"

events=${1:-2000}; shift || true
concs=("$@"); [ ${#concs[@]} -gt 0 ] || concs=(8 32)
[ "$events" -le 20000 ] || { echo "at most 20000 events per run" >&2; exit 2; }

cg_build plain
bin="$CG_TOP/build/plain"
run=$(mktemp -d /tmp/callgate-relaybench.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; [ -n "${CG_BENCH_KEEP:-}" ] || rm -rf "$run"' EXIT

cg_free_port; redis_port=$CG_PORT
cg_free_port; sim_port=$CG_PORT
cg_free_port; gw_port=$CG_PORT
cg_free_port; recv_port=$CG_PORT
export CLOUDDIALER_API_KEY=cd-test-key
export ACME_WEBHOOK_SECRET=whsec_Y2FsbGdhdGUtZGVtby1zaWduaW5nLXNlY3JldC0zMmI=
export ACME_CLOUDDIALER_TOKEN=acme-cd-token-0123456789
export CCAI_CREDENTIAL=ccai-test:ccai-test-token
export ACME_CCAI_TOKEN=acme-ccai-token-0123456789
export ACME_CCAI_HOOK_AUTH=ccai-hook:ccai-hook-secret
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$run" \
  >"$run/redis.log" 2>&1 &
pids+=($!)
# Long calls and no pushes of its own: every event comes from relay_bench.
"$bin/contrib/vendorsim/vendorsim" --listen "127.0.0.1:$sim_port" --call-ms 600000 --quiet \
  >"$run/vendorsim.log" 2>&1 &
pids+=($!)
jq --arg listen "127.0.0.1:$gw_port" --argjson rport "$redis_port" \
   --arg routes "$CG_TOP/routes" --arg vendor "http://127.0.0.1:$sim_port" \
   --arg cb "http://127.0.0.1:$recv_port/events" \
   '.listen=$listen | .redis.port=$rport | .routes_dir=$routes | .log_level="warn"
    | .vendors.clouddialer.base_url=$vendor | .vendors.ccai.base_url=$vendor
    | .tenants[0].callback_url=$cb | .webhooks.poll_interval_ms=20' \
   "$CG_TOP/conf/callgate.json" >"$run/callgate.json"
"$bin/src/callgate" -c "$run/callgate.json" >"$run/callgate.log" 2>&1 &
pids+=($!)
cg_wait_port "$gw_port"
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$gw_port/readyz" >/dev/null && break; sleep 0.1; done
curl -sf -X PUT "http://127.0.0.1:$gw_port/v1/agents/agent.017" \
  -H 'Authorization: Bearer demo-acme-key' -H 'Content-Type: application/json' \
  -d '{"name": "Bench", "vendors": {"clouddialer": {"crm_username": "agent.017"}}}' >/dev/null

for c in "${concs[@]}"; do
  "$bin/contrib/bench/relay_bench" "$gw_port" "$recv_port" demo-acme-key \
    "$ACME_CLOUDDIALER_TOKEN" "$events" "$c" | sed "s/^/concurrency=$c /"
done
