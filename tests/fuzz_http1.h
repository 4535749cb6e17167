/*
 * fuzz_http1.h: the fuzz target of src/http1.c (libFuzzer's entry point), shared
 * by tests/test_http1.c and contrib/fuzz/http1.sh.
 */
#ifndef CG_FUZZ_HTTP1_H
#define CG_FUZZ_HTTP1_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
