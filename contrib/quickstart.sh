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
CG_PIDS=()
failed=0
cleanup() {
  for p in "${CG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ $failed -eq 1 ]; then
    for f in "$run"/*.log; do echo "---- $f"; tail -20 "$f"; done >&2
  fi
  rm -rf "$run"
}
if [ $keep -eq 0 ]; then trap cleanup EXIT; fi
fail() { echo "quickstart: $*" >&2; failed=1; exit 1; }

cg_stack_ports
cg_demo_env
api_key=demo-acme-key   # conf/callgate.json holds only its SHA-256
redis_port=$CG_REDIS_PORT; sim_port=$CG_SIM_PORT; gw_port=$CG_GW_PORT
echo "== starting redis-server :$redis_port, vendorsim :$sim_port, callgate :$gw_port"
cg_stack_up "$bin" "$run" ".tenants[0].callback_url=\"http://127.0.0.1:$sim_port/_sink/acme\"" \
  --call-ms 1500 \
  --push-url "http://127.0.0.1:$gw_port/v1/webhooks/clouddialer/$ACME_CLOUDDIALER_TOKEN" \
  --ccai-push-url "http://127.0.0.1:$gw_port/v1/webhooks/ccai/$ACME_CCAI_TOKEN" \
  || fail "the demo stack did not come up"
gw="http://127.0.0.1:$gw_port"

echo
echo "== the agent, once, in the directory (Redis): PUT /v1/agents/agent.017"
cg_demo_agent | jq -c '{id, status, vendors}'

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
  echo "still running (pids ${CG_PIDS[*]}): gateway $gw, simulator http://127.0.0.1:$sim_port,"
  echo "redis 127.0.0.1:$redis_port; logs in $run. Stop with: kill ${CG_PIDS[*]}"
fi
