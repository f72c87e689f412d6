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
    char *argv[32];
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_env_then_flags),
        cmocka_unit_test(test_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
