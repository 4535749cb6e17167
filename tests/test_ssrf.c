/* test_ssrf.c: placeholder; lands with issue 5. */
#include <criterion/criterion.h>

Test(ssrf, placeholder)
{
    cr_assert(1);
}
