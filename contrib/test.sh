#!/usr/bin/env bash
# callgate's whole test run: install what is missing, then build and run
# every suite twice -- a plain build and an AddressSanitizer +
# UndefinedBehaviorSanitizer build -- against real redis-server processes and
# the vendor simulator on loopback (the suites start and stop them), then the
# OpenAPI live check and `make distcheck`. The last line is "N passed, N
# failed" over every test of both builds, the OpenAPI check's own count, and
# one for distcheck; the exit code is non-zero when anything failed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/deps.sh" || exit 1
# shellcheck source=contrib/lib.sh
. "$here/lib.sh"

passed=0
failed=0
status=0

# Sum criterion's "Synthesis" lines of one build's test logs; a suite log
# without one (a crash before the summary) counts as one failure.
count_build() {
  local dir=$1 log p f c
  for log in "$dir"/tests/test_*.log; do
    [ -f "$log" ] || continue
    line=$(grep -a 'Synthesis:' "$log" | tail -1)
    if [ -z "$line" ]; then
      echo "  $(basename "$log" .log): no summary (crashed?)"
      failed=$((failed + 1))
      continue
    fi
    p=$(sed -n 's/.*Passing: \([0-9]*\).*/\1/p' <<<"$line")
    f=$(sed -n 's/.*Failing: \([0-9]*\).*/\1/p' <<<"$line")
    c=$(sed -n 's/.*Crashing: \([0-9]*\).*/\1/p' <<<"$line")
    passed=$((passed + p))
    failed=$((failed + f + c))
    # A suite whose tests all passed can still fail as a whole (a sanitizer
    # report at exit, a crash in teardown): automake's .trs says so.
    if [ "$f" = 0 ] && [ "$c" = 0 ] && grep -q '^:test-result: FAIL' "${log%.log}.trs" 2>/dev/null; then
      echo "  $(basename "$log" .log): failed as a whole (see $log)"
      failed=$((failed + 1))
    fi
    echo "  $(basename "$log" .log): $line"
  done
}

run_build() {
  local name=$1; shift
  echo "== $name build"
  if ! cg_build "$name" "$@"; then
    echo "  build failed"
    failed=$((failed + 1))
    status=1
    return
  fi
  # Suites run one after another; criterion runs each suite's tests on both cores.
  if ! CRITERION_JOBS=2 make -C "$CG_TOP/build/$name" check >"$CG_TOP/build/$name/check.out" 2>&1; then
    status=1
    grep -E '^(FAIL|ERROR)' "$CG_TOP/build/$name/check.out" || tail -20 "$CG_TOP/build/$name/check.out"
  fi
  count_build "$CG_TOP/build/$name"
}

# The OpenAPI document: valid, and the running gateway's answers fit it.
run_openapi() {
  local out line p f
  echo "== openapi: contrib/openapi.yaml against live answers"
  out=$(bash "$here/openapi/check.sh" 2>&1)
  line=$(tail -1 <<<"$out")
  if [[ "$line" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    p=${BASH_REMATCH[1]}
    f=${BASH_REMATCH[2]}
  else
    p=0
    f=1
  fi
  grep -E '^(FAIL|skip)' <<<"$out" | head -20
  echo "  openapi: $line"
  passed=$((passed + p))
  failed=$((failed + f))
}

# The release tarball: `make distcheck` in build/dist builds it, then builds
# it read-only out of tree, runs every suite there, installs, runs the
# installed binary on the installed example configuration, and uninstalls.
# One pass or one fail. Serial make: its check must not run suites side by
# side (criterion already uses both cores within a suite). Every suite is
# built there, but only these run (TESTS= reaches the inner make through
# MAKEFLAGS): the ones that read conf/, routes/ and tests/fixtures from the
# tarball plus two that start Redis, the simulator and the daemon -- the
# rest ran twice above, and all of them would add about 4 minutes.
DIST_TESTS="tests/test_phone tests/test_crypto tests/test_conf tests/test_upstream
  tests/test_clouddialer tests/test_getdesk tests/test_callerdesk tests/test_ccai
  tests/test_routes tests/test_decide tests/test_breaker tests/test_callrec tests/test_ssrf
  tests/test_api tests/test_workers"
run_distcheck() {
  local dir="$CG_TOP/build/dist" t0=$(date +%s)
  echo "== distcheck (build/dist)"
  mkdir -p "$dir"
  if (cd "$dir" && { [ -f Makefile ] || "$CG_TOP/configure" >configure.out 2>&1; } \
        && CRITERION_JOBS=2 make distcheck TESTS="$(echo $DIST_TESTS)" >distcheck.out 2>&1); then
    echo "  distcheck: passed in $(( $(date +%s) - t0 )) s"
    passed=$((passed + 1))
  else
    grep -E '^(FAIL|ERROR):|rror' "$dir/distcheck.out" | head -20
    echo "  distcheck: FAILED after $(( $(date +%s) - t0 )) s (see build/dist/distcheck.out)"
    failed=$((failed + 1))
  fi
}

start=$(date +%s)
run_build plain
run_build asan --enable-asan
run_openapi
run_distcheck
echo "== done in $(( $(date +%s) - start )) s; logs in build/*/tests/*.log"
[ $failed -gt 0 ] && status=1
echo "$passed passed, $failed failed"
exit $status
