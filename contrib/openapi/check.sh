#!/usr/bin/env bash
# The OpenAPI check: contrib/openapi.yaml is a valid OpenAPI 3.1 document, and
# a running callgate answers the way it says.
#
# 1. installs what is missing (node and npm from Debian, the build and run
#    dependencies through contrib/deps.sh), then the validator's pinned npm
#    packages (npm ci, from package-lock.json);
# 2. validates the document (validate.mjs doc);
# 3. builds callgate (build/plain, as the quickstart does), starts a throwaway
#    redis-server, the vendor simulator and callgate on free loopback ports,
#    with conf/callgate.json adapted for the run (an admin token, a Getdesk
#    history vendor and a second tenant added);
# 4. exercises every kind of endpoint and checks each answer against the
#    document (validate.mjs live).
# Everything started here is stopped on exit. The last line is
# "N passed, M failed"; the exit status is non-zero when anything failed.
#
#   --keep   leave the processes running at the end and print how to reach them
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
keep=0
[ "${1:-}" = "--keep" ] && keep=1

die() { echo "openapi check: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    return 1; fi
}

# ---- what is needed -------------------------------------------------------
"$here/../deps.sh" || die "could not install the build dependencies (contrib/deps.sh)"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "openapi check: installing nodejs and npm" >&2
  export DEBIAN_FRONTEND=noninteractive
  { as_root apt-get update -qq && as_root apt-get install -y -qq --no-install-recommends nodejs npm \
      >/dev/null; } || die "could not install nodejs and npm (run as root)"
fi
# shellcheck source=contrib/lib.sh
. "$here/../lib.sh"

echo "== npm ci (contrib/openapi)"
(cd "$here" && timeout 300 npm ci --no-audit --no-fund --loglevel=error >"$here/.npm-ci.log" 2>&1) \
  || { cat "$here/.npm-ci.log" >&2; die "npm ci failed"; }
rm -f "$here/.npm-ci.log"

run=$(mktemp -d /tmp/callgate-openapi.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$run"
}
if [ $keep -eq 0 ]; then trap cleanup EXIT; fi
trap 'exit 130' INT TERM

doc_out="$run/doc.out"
echo "== the document"
timeout 60 node --no-warnings "$here/validate.mjs" doc >"$doc_out" 2>&1
doc_rc=$?
grep -v '^[0-9]* passed, [0-9]* failed$' "$doc_out"
doc_pass=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$doc_out" | tail -1)
doc_fail=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$doc_out" | tail -1)
[ -n "$doc_pass" ] || { doc_pass=0; doc_fail=1; }
[ $doc_rc -eq 0 ] || [ "$doc_fail" -gt 0 ] || doc_fail=1

# ---- build and start ------------------------------------------------------
echo "== building (build/plain)"
cg_build plain || die "the build failed"
bin="$CG_TOP/build/plain"

cg_free_port; redis_port=$CG_PORT
cg_free_port; sim_port=$CG_PORT
cg_free_port; gw_port=$CG_PORT
# Demo secrets, as the quickstart's; conf/callgate.json reads them from the environment.
export CLOUDDIALER_API_KEY=cd-test-key
export ACME_WEBHOOK_SECRET=whsec_Y2FsbGdhdGUtZGVtby1zaWduaW5nLXNlY3JldC0zMmI=
export ACME_CLOUDDIALER_TOKEN=acme-cd-token-0123456789
export CCAI_CREDENTIAL=ccai-test:ccai-test-token        # the simulator's defaults
export ACME_CCAI_TOKEN=acme-ccai-token-0123456789
export ACME_CCAI_HOOK_AUTH=ccai-hook:ccai-hook-secret
export GLOBEX_WEBHOOK_SECRET=whsec_b3BlbmFwaS1jaGVjay1zZWNvbmQtdGVuYW50LWtleSE=
api_key=demo-acme-key          # conf/callgate.json holds only its SHA-256
other_key=demo-globex-key      # the second tenant, added below
admin_token=demo-admin-token-openapi-check
sha() { printf %s "$1" | sha256sum | cut -d' ' -f1; }

echo "== starting redis-server :$redis_port, vendorsim :$sim_port, callgate :$gw_port"
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$run" >"$run/redis.log" 2>&1 &
pids+=($!)
"$bin/contrib/vendorsim/vendorsim" --listen "127.0.0.1:$sim_port" --call-ms 2500 --ring-ms 300 \
  --push-url "http://127.0.0.1:$gw_port/v1/webhooks/clouddialer/$ACME_CLOUDDIALER_TOKEN" \
  --ccai-push-url "http://127.0.0.1:$gw_port/v1/webhooks/ccai/$ACME_CCAI_TOKEN" \
  >"$run/vendorsim.log" 2>&1 &
pids+=($!)
# The example configuration, for this run: loopback ports, the admin API (its
# token's SHA-256), Getdesk for call history (the simulator plays it) and a
# second tenant, so that cross-tenant answers can be checked.
jq --arg listen "127.0.0.1:$gw_port" --argjson rport "$redis_port" \
   --arg routes "$CG_TOP/routes" --arg vendor "http://127.0.0.1:$sim_port" \
   --arg cb "http://127.0.0.1:$sim_port/_sink/acme" \
   --arg admin "$(sha "$admin_token")" --arg other "$(sha "$other_key")" \
   '.listen=$listen | .redis.port=$rport | .routes_dir=$routes
    | .vendors.clouddialer.base_url=$vendor | .vendors.ccai.base_url=$vendor
    | .vendors.getdesk={"base_url": $vendor, "time_zone": "Asia/Kathmandu"}
    | .tenants[0].callback_url=$cb
    | .tenants[0].vendors += [{"vendor": "getdesk", "api_key": "gd-test-token"}]
    | .tenants += [{"id": "globex", "api_key_sha256": [$other], "default_country": "US",
                    "webhook_secret": "$GLOBEX_WEBHOOK_SECRET", "vendors": ["clouddialer"],
                    "rate_limit": {"requests_per_s": 0.2, "burst": 2}}]
    | .admin={"token_sha256": $admin}' \
   "$CG_TOP/conf/callgate.json" >"$run/callgate.json" || die "could not write the run's configuration"
"$bin/src/callgate" -t -c "$run/callgate.json" >"$run/check.log" 2>&1 \
  || { cat "$run/check.log" >&2; die "the run's configuration does not load"; }
"$bin/src/callgate" -c "$run/callgate.json" >"$run/callgate.log" 2>&1 &
pids+=($!)
cg_wait_port "$redis_port" || die "redis-server did not start"
cg_wait_port "$sim_port" || die "the vendor simulator did not start"
cg_wait_port "$gw_port" || die "callgate did not start"
gw="http://127.0.0.1:$gw_port"
for _ in $(seq 1 100); do
  curl -sf -m 2 "$gw/readyz" >/dev/null && break
  sleep 0.1
done

# ---- the live check -------------------------------------------------------
echo "== live answers from $gw"
CALLGATE_OTHER_KEY="$other_key" CALLGATE_TENANT=acme \
CALLGATE_CD_WEBHOOK_TOKEN="$ACME_CLOUDDIALER_TOKEN" \
CALLGATE_SINK_URL="http://127.0.0.1:$sim_port/_sink/acme" CALLGATE_WEBHOOK_SECRET="$ACME_WEBHOOK_SECRET" \
  timeout 240 node --no-warnings "$here/validate.mjs" live "$gw" "$api_key" "$admin_token" >"$run/live.out" 2>&1
live_rc=$?
grep -v '^[0-9]* passed, [0-9]* failed$' "$run/live.out"
live_pass=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$run/live.out" | tail -1)
live_fail=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$run/live.out" | tail -1)
[ -n "$live_pass" ] || { live_pass=0; live_fail=1; echo "FAIL live: the validator ended early (status $live_rc)"; }
[ $live_rc -eq 0 ] || [ "$live_fail" -gt 0 ] || live_fail=1

if [ "$live_fail" -gt 0 ] || [ "$doc_fail" -gt 0 ]; then
  for f in "$run"/callgate.log "$run"/vendorsim.log; do echo "---- tail of $(basename "$f")"; tail -15 "$f"; done >&2
fi
if [ $keep -eq 1 ]; then
  echo "still running (pids ${pids[*]}): gateway $gw (tenant key $api_key, admin token $admin_token),"
  echo "simulator http://127.0.0.1:$sim_port, redis 127.0.0.1:$redis_port; files in $run. Stop with: kill ${pids[*]}"
fi
passed=$((doc_pass + live_pass))
failed=$((doc_fail + live_fail))
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
