/*
 * test_decide.c: candidate filtering and ordering (src/decide.c), pure:
 * every filter reason in the contract's order, the pinned vendor, the
 * least_busy order from in-flight counts, weighted order passing through,
 * and the answers when nothing is left.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "conf.h"
#include "decide.h"
#include "routes.h"
#include "vendor.h"

static struct conf *c;

static const char conf_text[] =
    "{\"listen\": \"127.0.0.1:8080\", \"routes_dir\": \"/nonexistent\","
    " \"redis\": {\"host\": \"127.0.0.1\"},"
    " \"vendors\": {"
    "  \"clouddialer\": {\"base_url\": \"http://127.0.0.1:9\"},"
    "  \"callerdesk\": {\"base_url\": \"http://127.0.0.1:9\"},"
    "  \"ccai\": {\"base_url\": \"http://127.0.0.1:9\"},"
    "  \"getdesk\": {\"base_url\": \"http://127.0.0.1:9\"}},"
    " \"tenants\": ["
    "  {\"id\": \"acme\", \"api_key_sha256\": "
    "\"0000000000000000000000000000000000000000000000000000000000000001\","
    "   \"default_country\": \"IN\", \"webhook_secret\": \"whsec_Y2FsbGdhdGUtdGVzdC1zaWduaW5nLXNlY3JldC0zMmI=\", \"vendors\": [\"clouddialer\", \"callerdesk\", \"ccai\"]},"
    "  {\"id\": \"globex\", \"api_key_sha256\": "
    "\"0000000000000000000000000000000000000000000000000000000000000002\","
    "   \"default_country\": \"US\", \"webhook_secret\": \"whsec_Y2FsbGdhdGUtdGVzdC1zaWduaW5nLXNlY3JldC0zMmI=\", \"vendors\": [\"clouddialer\", \"getdesk\"]}]}";

static void
setup(void)
{
    char *errors = NULL;

    c = conf_load_string(conf_text, "test.json", &errors);
    cr_assert_not_null(c, "%s", errors);
}

static void
teardown(void)
{
    conf_unref(c);
}

TestSuite(decide, .init = setup, .fini = teardown, .timeout = 10);

static struct route_vendor three[] = {
    {"callerdesk", 1}, {"clouddialer", 1}, {"ccai", 1}};

static struct route_rule
rule_of(enum route_strategy st)
{
    struct route_rule r;

    memset(&r, 0, sizeof(r));
    r.name = "r";
    r.strategy = st;
    r.vendors = three;
    r.nvendors = 3;
    return r;
}

static const char *
drop_of(json_t *considered, const char *vendor)
{
    size_t i;

    for (i = 0; i < json_array_size(considered); i++) {
        json_t *o = json_array_get(considered, i);
        if (strcmp(json_string_value(json_object_get(o, "vendor")), vendor) == 0) {
            json_t *d = json_object_get(o, "dropped");
            return d != NULL ? json_string_value(d) : "kept";
        }
    }
    return "absent";
}

Test(decide, capability_filter_and_rule_order)
{
    struct route_rule r = rule_of(ROUTE_PRIORITY);
    struct decide_input in = {.tenant = conf_tenant_find(c, "acme"), .rule = &r,
                              .needs = VENDOR_CAP_INBOUND, .call_id = "call_1",
                              .raw_agent = "x"};
    struct decide_output out;
    const char *slug = NULL, *detail = NULL;

    cr_assert_eq(decide(&in, &out, &slug, &detail), 0);
    cr_assert_eq(out.n, 1);
    cr_assert_str_eq(out.vendors[0], "ccai");
    cr_assert_str_eq(drop_of(out.considered, "callerdesk"), "capability");
    cr_assert_str_eq(drop_of(out.considered, "clouddialer"), "capability");
    cr_assert_str_eq(drop_of(out.considered, "ccai"), "kept");
    json_decref(out.considered);

    in.needs = VENDOR_CAP_OUTBOUND;
    cr_assert_eq(decide(&in, &out, &slug, &detail), 0);
    cr_assert_eq(out.n, 3);
    cr_assert_str_eq(out.vendors[0], "callerdesk");
    cr_assert_str_eq(out.vendors[1], "clouddialer");
    cr_assert_str_eq(out.identities[0], "x", "without a directory the id goes as it is");
    json_decref(out.considered);
}

Test(decide, tenant_filter_and_the_answers_when_nothing_is_left)
{
    struct route_rule r = rule_of(ROUTE_PRIORITY);
    struct decide_input in = {.tenant = conf_tenant_find(c, "globex"), .rule = &r,
                              .needs = VENDOR_CAP_OUTBOUND, .call_id = "call_1"};
    struct decide_output out;
    const char *slug = NULL, *detail = NULL;

    cr_assert_eq(decide(&in, &out, &slug, &detail), 0);
    cr_assert_eq(out.n, 1);
    cr_assert_str_eq(drop_of(out.considered, "callerdesk"), "tenant-not-allowed");
    cr_assert_str_eq(drop_of(out.considered, "ccai"), "tenant-not-allowed");
    json_decref(out.considered);

    /* globex can place inbound calls nowhere: 422, not "no route". */
    in.needs = VENDOR_CAP_INBOUND;
    cr_assert_eq(decide(&in, &out, &slug, &detail), 422);
    cr_assert_str_eq(slug, "unsupported-by-vendor");
    json_decref(out.considered);

    /* A rule naming only vendors the tenant may not use, while another could: 503 no-route. */
    {
        struct route_vendor only[] = {{"ccai", 1}};
        r.vendors = only;
        r.nvendors = 1;
        in.needs = VENDOR_CAP_OUTBOUND;
        cr_assert_eq(decide(&in, &out, &slug, &detail), 503);
        cr_assert_str_eq(slug, "no-route");
        json_decref(out.considered);
    }
}

Test(decide, agent_identity_filter)
{
    struct route_rule r = rule_of(ROUTE_PRIORITY);
    json_t *agent = json_loads("{\"id\": \"asha\", \"status\": \"available\", \"vendors\": "
                               "{\"clouddialer\": {\"crm_username\": \"asha.k\"}, "
                               "\"callerdesk\": {\"member_id\": \"42\"}}}",
                               0, NULL);
    struct decide_input in = {.tenant = conf_tenant_find(c, "acme"), .rule = &r,
                              .needs = VENDOR_CAP_OUTBOUND, .call_id = "call_1",
                              .agent = agent};
    struct decide_output out;
    const char *slug = NULL, *detail = NULL;

    cr_assert_eq(decide(&in, &out, &slug, &detail), 0);
    cr_assert_eq(out.n, 2);
    cr_assert_str_eq(out.vendors[0], "callerdesk");
    cr_assert_str_eq(out.identities[0], "member:42");
    cr_assert_str_eq(out.vendors[1], "clouddialer");
    cr_assert_str_eq(out.identities[1], "asha.k");
    cr_assert_str_eq(drop_of(out.considered, "ccai"), "agent-has-no-identity");
    json_decref(out.considered);

    /* Only the vendor the agent lacks could take the call: 422. */
    in.needs = VENDOR_CAP_SCHEDULED;
    cr_assert_eq(decide(&in, &out, &slug, &detail), 422);
    cr_assert_str_eq(slug, "unsupported-by-vendor");
    json_decref(out.considered);
    json_decref(agent);
}

Test(decide, least_busy_orders_by_in_flight_counts)
{
    struct route_rule r = rule_of(ROUTE_LEAST_BUSY);
    long long load[3] = {5, 2, 2}; /* callerdesk, clouddialer, ccai */
    struct decide_input in = {.tenant = conf_tenant_find(c, "acme"), .rule = &r,
                              .needs = VENDOR_CAP_OUTBOUND, .call_id = "call_1",
                              .raw_agent = "x", .inflight = load};
    struct decide_output out;
    const char *slug = NULL, *detail = NULL;

    cr_assert_eq(decide(&in, &out, &slug, &detail), 0);
    cr_assert_eq(out.n, 3);
    cr_assert_str_eq(out.vendors[0], "clouddialer", "ties keep the rule's order");
    cr_assert_str_eq(out.vendors[1], "ccai");
    cr_assert_str_eq(out.vendors[2], "callerdesk");
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(out.considered, 2),
                                                    "in_flight")),
                 5);
    json_decref(out.considered);

    /* Without counts (Redis did not answer) the rule's order stands. */
    in.inflight = NULL;
    cr_assert_eq(decide(&in, &out, &slug, &detail), 0);
    cr_assert_str_eq(out.vendors[0], "callerdesk");
    json_decref(out.considered);
}

Test(decide, pinned_vendor_bypasses_the_rule_not_the_filters)
{
    struct decide_input in = {.tenant = conf_tenant_find(c, "acme"), .pinned = "ccai",
                              .needs = VENDOR_CAP_OUTBOUND, .call_id = "call_1",
                              .raw_agent = "a@b.c"};
    struct decide_output out;
    const char *slug = NULL, *detail = NULL;

    cr_assert_eq(decide(&in, &out, &slug, &detail), 0);
    cr_assert_eq(out.n, 1);
    cr_assert_str_eq(out.vendors[0], "ccai");
    json_decref(out.considered);
    in.pinned = "clouddialer";
    in.needs = VENDOR_CAP_FLAGS;
    cr_assert_eq(decide(&in, &out, &slug, &detail), 422);
    cr_assert_str_eq(drop_of(out.considered, "clouddialer"), "capability");
    json_decref(out.considered);
}

Test(decide, weighted_order_comes_from_the_rule)
{
    struct route_vendor w[] = {{"clouddialer", 70}, {"callerdesk", 30}};
    struct route_rule r = rule_of(ROUTE_WEIGHTED);
    struct decide_input in = {.tenant = conf_tenant_find(c, "acme"), .rule = &r,
                              .needs = VENDOR_CAP_OUTBOUND, .raw_agent = "x"};
    struct decide_output out;
    const char *slug = NULL, *detail = NULL;
    char id[32];
    int i, first_cd = 0;

    r.vendors = w;
    r.nvendors = 2;
    for (i = 0; i < 1000; i++) {
        const char *first;
        snprintf(id, sizeof(id), "call_%d", i);
        in.call_id = id;
        cr_assert_eq(decide(&in, &out, &slug, &detail), 0);
        cr_assert_eq(out.n, 2);
        first = out.vendors[0];
        first_cd += strcmp(first, "clouddialer") == 0;
        json_decref(out.considered);
        /* The same id gives the same order (a retry picks the same vendor). */
        cr_assert_eq(decide(&in, &out, &slug, &detail), 0);
        cr_assert_str_eq(out.vendors[0], first);
        json_decref(out.considered);
    }
    cr_assert(first_cd > 600 && first_cd < 800, "70%% first picks, got %d of 1000", first_cd);
}

Test(decide, quiet_decides_the_same_without_the_list)
{
    struct route_rule r = rule_of(ROUTE_PRIORITY);
    json_t *agent = json_loads("{\"id\": \"asha\", \"vendors\": {\"clouddialer\": "
                               "{\"crm_username\": \"asha.k\"}}}",
                               0, NULL);
    struct decide_input in = {.tenant = conf_tenant_find(c, "acme"), .rule = &r,
                              .needs = VENDOR_CAP_OUTBOUND, .call_id = "call_1",
                              .agent = agent, .quiet = 1};
    struct decide_output out;
    const char *slug = NULL, *detail = NULL;

    cr_assert_eq(decide(&in, &out, &slug, &detail), 0);
    cr_assert_null(out.considered);
    cr_assert_eq(out.n, 1);
    cr_assert_str_eq(out.vendors[0], "clouddialer");
    cr_assert_eq(out.dropped_identity, 2);
    in.needs = VENDOR_CAP_SCHEDULED;
    cr_assert_eq(decide(&in, &out, &slug, &detail), 422);
    cr_assert_str_eq(slug, "unsupported-by-vendor");
    json_decref(agent);
}
