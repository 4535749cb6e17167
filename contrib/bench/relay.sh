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
CG_PIDS=()
trap 'for p in "${CG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; [ -n "${CG_BENCH_KEEP:-}" ] || rm -rf "$run"' EXIT

cg_stack_ports
gw_port=$CG_GW_PORT
cg_free_port; recv_port=$CG_PORT
# Long calls and no pushes of its own: every event comes from relay_bench.
cg_stack_up "$bin" "$run" ".log_level=\"warn\" | .webhooks.poll_interval_ms=20
  | .tenants[0].callback_url=\"http://127.0.0.1:$recv_port/events\"" --call-ms 600000 --quiet \
  || { echo "the stack did not come up; logs in $run" >&2; exit 1; }
cg_demo_agent >/dev/null

for c in "${concs[@]}"; do
  "$bin/contrib/bench/relay_bench" "$gw_port" "$recv_port" demo-acme-key \
    "$ACME_CLOUDDIALER_TOKEN" "$events" "$c" | sed "s/^/concurrency=$c /"
done
