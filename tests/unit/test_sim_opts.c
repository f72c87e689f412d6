/* Unit tests for src/sim/sim_opts.c: defaults, environment, flags. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sim/sim_opts.h"

static int parse(struct sim_opts *o, struct sim_opts_error *err, ...)
{
    char *argv[64];
    int argc = 0;
    va_list ap;
    const char *a;

    argv[argc++] = (char *)"sim";
    va_start(ap, err);
    while ((a = va_arg(ap, const char *)) != NULL)
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    return sim_opts_parse(o, argc, argv, stdout, err);
}

static void test_defaults(void **state)
{
    struct sim_opts o;
    struct sim_opts_error err;
    (void)state;

    assert_int_equal(parse(&o, &err, NULL), 0);
    assert_string_equal(o.listen_host, "127.0.0.1");
    assert_string_equal(o.listen_port, "8080");
    assert_null(o.key);
    assert_null(o.port_file);
    assert_int_equal(o.dialect, SIM_DIALECT_TRUEAI);
    assert_int_equal(o.duration_ms, 3000);
    assert_int_equal(o.queue_ms, 0);
    assert_int_equal(o.progress_steps, 4);
    assert_int_equal(o.slow_ms, 5000);
    assert_false(o.seed_set);
    assert_false(o.numeric_ids);
    for (int i = 0; i < SIM_FAULT_COUNT; i++)
        assert_true(o.rate[i] == 0.0);
    sim_opts_free(&o);
}

static void test_env_then_flags(void **state)
{
    struct sim_opts o;
    struct sim_opts_error err;
    (void)state;

    setenv("MJQ_SIM_DIALECT", "novicezk", 1);
    setenv("MJQ_SIM_DURATION_MS", "250", 1);
    setenv("MJQ_SIM_RATE_429", "0.25", 1);
    setenv("MJQ_SIM_NUMERIC_IDS", "1", 1);
    setenv("MJQ_SIM_KEY", "from-env", 1);
    assert_int_equal(parse(&o, &err, "--dialect", "newapi", "--listen",
                           "[::1]:0", "--rate-queue-full=1", "--seed", "42",
                           "--key", "from-flag", NULL),
                     0);
    assert_int_equal(o.dialect, SIM_DIALECT_NEWAPI);
    assert_int_equal(o.duration_ms, 250);
    assert_true(o.rate[SIM_FAULT_429] == 0.25);
    assert_true(o.rate[SIM_FAULT_QUEUE_FULL] == 1.0);
    assert_true(o.numeric_ids);
    assert_true(o.seed_set);
    assert_int_equal(o.seed, 42);
    assert_string_equal(o.listen_host, "::1");
    assert_string_equal(o.listen_port, "0");
    assert_string_equal(o.key, "from-flag");
    sim_opts_free(&o);
    unsetenv("MJQ_SIM_DIALECT");
    unsetenv("MJQ_SIM_DURATION_MS");
    unsetenv("MJQ_SIM_RATE_429");
    unsetenv("MJQ_SIM_NUMERIC_IDS");
    unsetenv("MJQ_SIM_KEY");
}

static void test_errors(void **state)
{
    struct sim_opts o;
    struct sim_opts_error err;
    (void)state;

    assert_int_equal(parse(&o, &err, "--rate-500", "1.5", NULL), -1);
    assert_non_null(strstr(err.text, "--rate-500"));
    sim_opts_free(&o);
    assert_int_equal(parse(&o, &err, "--duration-ms", "12x", NULL), -1);
    sim_opts_free(&o);
    assert_int_equal(parse(&o, &err, "--duration-ms", "-1", NULL), -1);
    sim_opts_free(&o);
    assert_int_equal(parse(&o, &err, "--listen", "8080", NULL), -1);
    sim_opts_free(&o);
    assert_int_equal(parse(&o, &err, "--listen", "h:70000", NULL), -1);
    sim_opts_free(&o);
    assert_int_equal(parse(&o, &err, "--dialect", "openai", NULL), -1);
    sim_opts_free(&o);
    assert_int_equal(parse(&o, &err, "--bogus", NULL), -1);
    assert_non_null(strstr(err.text, "--bogus"));
    sim_opts_free(&o);
    assert_int_equal(parse(&o, &err, "--seed", NULL), -1);
    assert_non_null(strstr(err.text, "needs a value"));
    sim_opts_free(&o);
    setenv("MJQ_SIM_VERBOSE", "maybe", 1);
    assert_int_equal(parse(&o, &err, NULL), -1);
    assert_non_null(strstr(err.text, "MJQ_SIM_VERBOSE"));
    sim_opts_free(&o);
    unsetenv("MJQ_SIM_VERBOSE");
    assert_int_equal(parse(&o, &err, "--help", NULL), 1);
    sim_opts_free(&o);
    sim_opts_free(NULL);
}

static void test_accounts_and_limits(void **state)
{
    struct sim_opts o;
    struct sim_opts_error err;
    (void)state;

    assert_int_equal(parse(&o, &err, NULL), 0);
    assert_int_equal(o.naccounts, 0);
    assert_int_equal(o.account_limit, 0);
    assert_false(o.no_batch);
    for (int m = 0; m < SIM_MODE_COUNT; m++)
        assert_int_equal(o.mode_limit[m], 0);
    sim_opts_free(&o);

    assert_int_equal(parse(&o, &err, "--account", "a=k1", "--account",
                           "b.2_x-y=k=2", "--account-limit", "3",
                           "--mode-limit", "fast=1", "--mode-limit=turbo=0",
                           "--no-batch", NULL),
                     0);
    assert_int_equal(o.naccounts, 2);
    assert_string_equal(o.accounts[0].name, "a");
    assert_string_equal(o.accounts[0].key, "k1");
    assert_string_equal(o.accounts[1].name, "b.2_x-y");
    assert_string_equal(o.accounts[1].key, "k=2"); /* split at the first = */
    assert_int_equal(o.account_limit, 3);
    assert_int_equal(o.mode_limit[SIM_MODE_FAST], 1);
    assert_int_equal(o.mode_limit[SIM_MODE_TURBO], 0);
    assert_true(o.no_batch);
    sim_opts_free(&o);

    /* The variables' lists; flags replace the account list and override
     * one mode at a time. */
    setenv("MJQ_SIM_ACCOUNTS", " a=k1, b=k2 ,", 1);
    setenv("MJQ_SIM_MODE_LIMITS", "fast=2,relax=4", 1);
    setenv("MJQ_SIM_ACCOUNT_LIMIT", "7", 1);
    setenv("MJQ_SIM_NO_BATCH", "1", 1);
    assert_int_equal(parse(&o, &err, NULL), 0);
    assert_int_equal(o.naccounts, 2);
    assert_string_equal(o.accounts[1].name, "b");
    assert_string_equal(o.accounts[1].key, "k2");
    assert_int_equal(o.mode_limit[SIM_MODE_FAST], 2);
    assert_int_equal(o.mode_limit[SIM_MODE_RELAX], 4);
    assert_int_equal(o.account_limit, 7);
    assert_true(o.no_batch);
    sim_opts_free(&o);
    assert_int_equal(parse(&o, &err, "--account", "c=k3", "--mode-limit",
                           "fast=5", "--key", "k0", NULL),
                     0);
    assert_int_equal(o.naccounts, 1);
    assert_string_equal(o.accounts[0].name, "c");
    assert_int_equal(o.mode_limit[SIM_MODE_FAST], 5);
    assert_int_equal(o.mode_limit[SIM_MODE_RELAX], 4);
    sim_opts_free(&o);
    unsetenv("MJQ_SIM_ACCOUNTS");
    unsetenv("MJQ_SIM_MODE_LIMITS");
    unsetenv("MJQ_SIM_ACCOUNT_LIMIT");
    unsetenv("MJQ_SIM_NO_BATCH");
}

/* Every refusal names the option; none quotes a key. */
static void test_account_errors(void **state)
{
    static const char *const bad[] = {
        "SECRET",
        "=SECRET",
        "a b=SECRET",
        "a/b=SECRET",
        "a=",
        "a=SE CRET",
        "a=SE\tCRET",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa="
        "SECRET",
    };
    struct sim_opts o;
    struct sim_opts_error err;
    char many[SIM_MAX_ACCOUNTS + 2][32];
    char *argv[2 * (SIM_MAX_ACCOUNTS + 2) + 2];
    int argc = 0;
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(&o, &err, "--account", bad[i], NULL), -1);
        assert_non_null(strstr(err.text, "--account"));
        assert_null(strstr(err.text, "SECRET"));
        assert_null(strstr(err.text, "CRET"));
        sim_opts_free(&o);
    }
    assert_int_equal(parse(&o, &err, "--account", "a=SECRET1", "--account",
                           "a=SECRET2", NULL),
                     -1);
    assert_non_null(strstr(err.text, "same name"));
    assert_null(strstr(err.text, "SECRET"));
    sim_opts_free(&o);
    assert_int_equal(
        parse(&o, &err, "--account", "a=SECRET", "--account", "b=SECRET", NULL),
        -1);
    assert_non_null(strstr(err.text, "same key"));
    assert_null(strstr(err.text, "SECRET"));
    sim_opts_free(&o);
    assert_int_equal(
        parse(&o, &err, "--key", "SECRET", "--account", "b=SECRET", NULL), -1);
    assert_null(strstr(err.text, "SECRET"));
    sim_opts_free(&o);
    assert_int_equal(
        parse(&o, &err, "--key", "SECRET", "--account", "default=K", NULL), -1);
    assert_non_null(strstr(err.text, "default"));
    sim_opts_free(&o);
    setenv("MJQ_SIM_ACCOUNTS", "a=SECRET,b", 1);
    assert_int_equal(parse(&o, &err, NULL), -1);
    assert_non_null(strstr(err.text, "MJQ_SIM_ACCOUNTS"));
    assert_null(strstr(err.text, "SECRET"));
    sim_opts_free(&o);
    unsetenv("MJQ_SIM_ACCOUNTS");

    argv[argc++] = (char *)"sim";
    for (int i = 0; i < SIM_MAX_ACCOUNTS + 1; i++) {
        snprintf(many[i], sizeof(many[i]), "a%d=k%d", i, i);
        argv[argc++] = (char *)"--account";
        argv[argc++] = many[i];
    }
    argv[argc] = NULL;
    assert_int_equal(sim_opts_parse(&o, argc, argv, stdout, &err), -1);
    assert_non_null(strstr(err.text, "more than"));
    sim_opts_free(&o);
    /* Exactly the maximum is fine. */
    assert_int_equal(sim_opts_parse(&o, argc - 2, argv, stdout, &err), 0);
    assert_int_equal(o.naccounts, SIM_MAX_ACCOUNTS);
    sim_opts_free(&o);

    assert_int_equal(parse(&o, &err, "--mode-limit", "slow=1", NULL), -1);
    assert_non_null(strstr(err.text, "--mode-limit"));
    sim_opts_free(&o);
    assert_int_equal(parse(&o, &err, "--mode-limit", "fast=-1", NULL), -1);
    sim_opts_free(&o);
    assert_int_equal(parse(&o, &err, "--mode-limit", "fast", NULL), -1);
    sim_opts_free(&o);
    assert_int_equal(parse(&o, &err, "--mode-limit", "fast=", NULL), -1);
    sim_opts_free(&o);
    assert_int_equal(parse(&o, &err, "--mode-limit",
                           "fast=1111111111111111111111111111", NULL),
                     -1);
    sim_opts_free(&o);
    assert_int_equal(parse(&o, &err, "--account-limit", "-1", NULL), -1);
    assert_non_null(strstr(err.text, "--account-limit"));
    sim_opts_free(&o);
    setenv("MJQ_SIM_NO_BATCH", "maybe", 1);
    assert_int_equal(parse(&o, &err, NULL), -1);
    sim_opts_free(&o);
    unsetenv("MJQ_SIM_NO_BATCH");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_env_then_flags),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_accounts_and_limits),
        cmocka_unit_test(test_account_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
