/*
 * test_breaker.c: the per-vendor circuit breaker (src/breaker.c) on a
 * clock the test drives: both triggers, the single half-open probe, and
 * the figures /admin/vendors shows.
 */
#include <criterion/criterion.h>
#include <jansson.h>

#include "breaker.h"

static const struct breaker_opts opts = {
    .consecutive = 3, .window = 10, .min_attempts = 6, .ratio_pct = 50, .open_ms = 1000};

TestSuite(breaker, .timeout = 10);

Test(breaker, consecutive_failures_open_and_a_success_resets_the_count)
{
    struct breaker *b = breaker_new(&opts);

    cr_assert(breaker_allow(b, "cd", 0));
    breaker_report(b, "cd", 1, 10, 0);
    breaker_report(b, "cd", 1, 10, 0);
    breaker_report(b, "cd", 0, 10, 0); /* resets the run */
    breaker_report(b, "cd", 1, 10, 0);
    breaker_report(b, "cd", 1, 10, 0);
    cr_assert_eq(breaker_peek(b, "cd", 0), BREAKER_CLOSED);
    breaker_report(b, "cd", 1, 10, 0);
    cr_assert_eq(breaker_peek(b, "cd", 0), BREAKER_OPEN);
    cr_assert_not(breaker_allow(b, "cd", 500));
    cr_assert(breaker_allow(b, "other", 500), "vendors are independent");
    breaker_free(b);
}

Test(breaker, failure_ratio_opens_once_enough_attempts)
{
    struct breaker_opts o = opts;
    struct breaker *b;
    int i;

    o.consecutive = 0; /* ratio only */
    b = breaker_new(&o);
    for (i = 0; i < 5; i++) {
        breaker_report(b, "cd", i % 2, 10, 0); /* 0 1 0 1 0 */
    }
    cr_assert_eq(breaker_peek(b, "cd", 0), BREAKER_CLOSED, "fewer than min_attempts");
    breaker_report(b, "cd", 1, 10, 0); /* 3 of 6 failed */
    cr_assert_eq(breaker_peek(b, "cd", 0), BREAKER_OPEN);
    breaker_free(b);
}

Test(breaker, half_open_lets_one_probe_through)
{
    struct breaker *b = breaker_new(&opts);
    int i;

    for (i = 0; i < 3; i++) {
        breaker_report(b, "cd", 1, 10, 0);
    }
    cr_assert_not(breaker_allow(b, "cd", 999));
    cr_assert_eq(breaker_peek(b, "cd", 1000), BREAKER_HALF_OPEN);
    cr_assert(breaker_allow(b, "cd", 1000), "the probe");
    cr_assert_not(breaker_allow(b, "cd", 1001), "only one probe at a time");
    breaker_report(b, "cd", 1, 10, 1100); /* the probe failed */
    cr_assert_eq(breaker_peek(b, "cd", 1100), BREAKER_OPEN);
    cr_assert_not(breaker_allow(b, "cd", 2000));
    cr_assert(breaker_allow(b, "cd", 2100), "open again for open_ms, then a new probe");
    breaker_report(b, "cd", 0, 10, 2150);
    cr_assert_eq(breaker_peek(b, "cd", 2150), BREAKER_CLOSED);
    cr_assert(breaker_allow(b, "cd", 2151));
    breaker_free(b);
}

Test(breaker, figures)
{
    struct breaker *b = breaker_new(&opts);
    json_t *j, *cd;
    int i;

    for (i = 1; i <= 4; i++) {
        breaker_report(b, "cd", i == 4, i * 10.0, 0);
    }
    j = breaker_json(b, 0);
    cd = json_object_get(j, "cd");
    cr_assert_str_eq(json_string_value(json_object_get(cd, "circuit")), "closed");
    cr_assert_eq(json_integer_value(json_object_get(cd, "recent_attempts")), 4);
    cr_assert_eq(json_integer_value(json_object_get(cd, "recent_failures")), 1);
    cr_assert_float_eq(json_real_value(json_object_get(cd, "recent_error_rate")), 0.25, 1e-9);
    cr_assert_float_eq(json_real_value(json_object_get(cd, "recent_p50_ms")), 30.0, 1e-6);
    cr_assert(json_is_null(json_object_get(cd, "opened_at")));
    json_decref(j);
    breaker_free(b);
}

Test(breaker, an_unsent_probe_goes_back_and_a_lost_one_is_written_off)
{
    struct breaker *b = breaker_new(&opts);
    int i;

    for (i = 0; i < 3; i++) {
        breaker_report(b, "cd", 1, 10, 0);
    }
    cr_assert(breaker_allow(b, "cd", 1000), "the probe");
    /* A vendor cap or the retry budget kept it from being sent. */
    breaker_cancel(b, "cd");
    cr_assert(breaker_allow(b, "cd", 1001), "the probe is free again");
    /* This one is never reported (lost): after open_ms another may go. */
    cr_assert_not(breaker_allow(b, "cd", 1500));
    cr_assert(breaker_allow(b, "cd", 2001));
    cr_assert_eq(breaker_peek(b, "cd", 2001), BREAKER_HALF_OPEN);
    breaker_free(b);
}
