#!/usr/bin/env bash
# Fuzz the HTTP/1.1 server (src/http1.c) with clang's libFuzzer, open-ended
# or for a while: the target is tests/fuzz_http1.c, the one `make check` runs
# over seeds and a bounded number of mutations (tests/test_http1.c).
#
#   contrib/fuzz/http1.sh [seconds]        default 60; needs clang (Debian: clang)
#
# Builds into build/fuzz with -fsanitize=fuzzer,address,undefined, keeps the
# corpus in build/fuzz/corpus-http1 and any crash in build/fuzz/.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-60}
case $secs in *[!0-9]*|'') echo "seconds: a number" >&2; exit 2 ;; esac
command -v clang >/dev/null || { echo "clang is needed (Debian: apt-get install clang)" >&2; exit 2; }
out=$top/build/fuzz
mkdir -p "$out/corpus-http1"
flags=(-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -D_GNU_SOURCE -I"$top/src" -I"$top/tests")
# shellcheck disable=SC2046
clang "${flags[@]}" -o "$out/fuzz_http1" "$top/tests/fuzz_http1.c" "$top/src/http1.c" \
  "$top/src/util.c" "$top/src/cglog.c" \
  $(pkg-config --cflags --libs libevent jansson) -lhttp_parser
cd "$out"
# A few seeds (byte 0: how the input is cut; byte 1: limits and answer mode).
printf '\0\0GET / HTTP/1.1\r\nHost: a\r\n\r\n' >corpus-http1/seed-get
printf '\1\2POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n' \
  >corpus-http1/seed-chunked
printf '\3\1POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabcGET /x HTTP/1.1\r\n\r\n' \
  >corpus-http1/seed-pipelined
exec ./fuzz_http1 -max_total_time="$secs" -max_len=8192 corpus-http1
