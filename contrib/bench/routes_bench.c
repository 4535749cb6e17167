/* routes_bench.c: placeholder; the routing micro-benchmark lands with issue 4. */
#include <stdio.h>

int
main(void)
{
    puts("routes_bench: not written yet");
    return 0;
}
