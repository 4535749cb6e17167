#!/usr/bin/env bash
# callgate quickstart: install what is missing, build, start a throwaway
# redis-server, the vendor simulator (playing CloudDialer and a tenant's
# callback endpoint) and callgate on free loopback ports, then place a call
# through POST /v1/calls, show its status as the simulated call ends, and
# show the signed event relayed to the tenant. Everything is stopped at the
# end; --keep leaves it running and prints how to reach it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/deps.sh"
# shellcheck source=contrib/lib.sh
. "$here/lib.sh"

keep=0
[ "${1:-}" = "--keep" ] && keep=1

echo "== building"
cg_build plain
bin="$CG_TOP/build/plain"

run=$(mktemp -d /tmp/callgate-quickstart.XXXXXX)
pids=()
failed=0
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ $failed -eq 1 ]; then
    for f in "$run"/*.log; do echo "---- $f"; tail -20 "$f"; done >&2
  fi
  rm -rf "$run"
}
if [ $keep -eq 0 ]; then trap cleanup EXIT; fi
fail() { echo "quickstart: $*" >&2; failed=1; exit 1; }

cg_free_port; redis_port=$CG_PORT
cg_free_port; sim_port=$CG_PORT
cg_free_port; gw_port=$CG_PORT
# Demo secrets; conf/callgate.json reads them from the environment.
export CLOUDDIALER_API_KEY=cd-test-key
export ACME_WEBHOOK_SECRET=whsec_Y2FsbGdhdGUtZGVtby1zaWduaW5nLXNlY3JldC0zMmI=
export ACME_CLOUDDIALER_TOKEN=acme-cd-token-0123456789
export CCAI_CREDENTIAL=ccai-test:ccai-test-token        # the simulator's defaults
export ACME_CCAI_TOKEN=acme-ccai-token-0123456789
export ACME_CCAI_HOOK_AUTH=ccai-hook:ccai-hook-secret
api_key=demo-acme-key   # conf/callgate.json holds only its SHA-256

echo "== starting redis-server :$redis_port, vendorsim :$sim_port, callgate :$gw_port"
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$run" >"$run/redis.log" 2>&1 &
pids+=($!)
"$bin/contrib/vendorsim/vendorsim" --listen "127.0.0.1:$sim_port" --call-ms 1500 \
  --push-url "http://127.0.0.1:$gw_port/v1/webhooks/clouddialer/$ACME_CLOUDDIALER_TOKEN" \
  --ccai-push-url "http://127.0.0.1:$gw_port/v1/webhooks/ccai/$ACME_CCAI_TOKEN" \
  >"$run/vendorsim.log" 2>&1 &
pids+=($!)
jq --arg listen "127.0.0.1:$gw_port" --argjson rport "$redis_port" \
   --arg routes "$CG_TOP/routes" --arg vendor "http://127.0.0.1:$sim_port" \
   --arg cb "http://127.0.0.1:$sim_port/_sink/acme" \
   '.listen=$listen | .redis.port=$rport | .routes_dir=$routes
    | .vendors.clouddialer.base_url=$vendor | .vendors.ccai.base_url=$vendor
    | .tenants[0].callback_url=$cb' \
   "$CG_TOP/conf/callgate.json" >"$run/callgate.json"
"$bin/src/callgate" -t -c "$run/callgate.json"
"$bin/src/callgate" -c "$run/callgate.json" >"$run/callgate.log" 2>&1 &
pids+=($!)
cg_wait_port "$redis_port" || fail "redis-server did not start"
cg_wait_port "$sim_port" || fail "the vendor simulator did not start"
cg_wait_port "$gw_port" || fail "callgate did not start"
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$gw_port/readyz" >/dev/null && break
  sleep 0.1
done
gw="http://127.0.0.1:$gw_port"

echo
echo "== the agent, once, in the directory (Redis): PUT /v1/agents/agent.017"
curl -sS -X PUT "$gw/v1/agents/agent.017" \
  -H "Authorization: Bearer $api_key" -H 'Content-Type: application/json' \
  -d '{"name": "Asha K", "groups": ["sales"], "vendors": {"clouddialer": {"crm_username": "agent.017"}}}' \
  | jq -c '{id, status, vendors}'

echo
echo "== place a call: POST /v1/calls"
set -x
curl -sS -i -X POST "$gw/v1/calls" \
  -H "Authorization: Bearer $api_key" -H 'Content-Type: application/json' \
  -H "Idempotency-Key: quickstart-$$" \
  -d '{"to": "+91 98765-43210", "agent": "agent.017", "reference": "crm-123"}' | tee "$run/placed"
set +x
echo
id=$(sed -n 's/.*"id":"\(call_[a-z0-9]*\)".*/\1/p' "$run/placed")
[ -n "$id" ] || fail "no call was placed"

echo "== its status right away: GET /v1/calls/$id"
curl -sS "$gw/v1/calls/$id" -H "Authorization: Bearer $api_key" | jq -c '{id, status, vendor, to}'
echo "== the simulated call rings, is answered and ends; CloudDialer pushes its result ..."
for _ in $(seq 1 50); do
  st=$(curl -sS "$gw/v1/calls/$id" -H "Authorization: Bearer $api_key" | jq -r .status)
  [ "$st" = completed ] && break
  sleep 0.1
done
curl -sS "$gw/v1/calls/$id" -H "Authorization: Bearer $api_key" | jq .
echo "== the agent is available again now that the call has ended:"
curl -sS "$gw/v1/agents/agent.017" -H "Authorization: Bearer $api_key" | jq -c '{id, status, call_id}'
echo "== the event relayed to the tenant's callback (signed, Standard Webhooks):"
for _ in $(seq 1 50); do
  n=$(curl -sS "http://127.0.0.1:$sim_port/_sink/acme" | jq '.count')
  [ "$n" -ge 1 ] && break
  sleep 0.1
done
curl -sS "http://127.0.0.1:$sim_port/_sink/acme" \
  | jq '.events[] | {headers: (.headers | with_entries(select(.key | startswith("webhook-")))),
                     event: (.body | fromjson | {id, type, call: .data.id, status: .data.status})}'

if [ $keep -eq 1 ]; then
  echo
  echo "still running (pids ${pids[*]}): gateway $gw, simulator http://127.0.0.1:$sim_port,"
  echo "redis 127.0.0.1:$redis_port; logs in $run. Stop with: kill ${pids[*]}"
fi
