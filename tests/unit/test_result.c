/* Result entry layout (docs/contract.md section 2): store_result_fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "store.h"

static const char *value_of(const struct store_field *f, size_t n,
                            const char *name)
{
    static char buf[4096];

    for (size_t i = 0; i < n; i++) {
        if (strcmp(f[i].name, name) == 0) {
            memcpy(buf, f[i].value, f[i].len);
            buf[f[i].len] = '\0';
            return buf;
        }
    }
    return NULL;
}

static void test_success_fields_in_order(void **state)
{
    struct store_result r = {
        .id = "job-1",
        .status = "SUCCESS",
        .action = "imagine",
        .task_id = "1320098173412546",
        .image_url = "https://cdn/x.png",
        .fail_reason = "",
        .task = "{\"id\":\"1320098173412546\"}",
        .buttons = "[{\"customId\":\"MJ::JOB::upsample::1::h\"}]",
        .meta = "{\"user\":7}",
        .started_ms = 1700000000000LL,
        .finished_ms = 1700000001234LL,
        .submits = 1,
        .polls = 3,
    };
    struct store_field f[STORE_RESULT_FIELDS];
    static const char *const order[] = {
        "id",          "status",  "action", "task_id", "image_url",
        "task",        "buttons", "meta",   "worker",  "started_ms",
        "finished_ms", "submits", "polls",
    };
    size_t n = store_result_fields(&r, "w-1", f, STORE_RESULT_FIELDS);

    (void)state;
    assert_int_equal(n, sizeof(order) / sizeof(order[0]));
    for (size_t i = 0; i < n; i++)
        assert_string_equal(f[i].name, order[i]);
    assert_string_equal(value_of(f, n, "id"), "job-1");
    assert_string_equal(value_of(f, n, "image_url"), "https://cdn/x.png");
    assert_string_equal(value_of(f, n, "worker"), "w-1");
    assert_string_equal(value_of(f, n, "started_ms"), "1700000000000");
    assert_string_equal(value_of(f, n, "finished_ms"), "1700000001234");
    assert_string_equal(value_of(f, n, "submits"), "1");
    assert_string_equal(value_of(f, n, "polls"), "3");
    /* An empty fail_reason is left out, not written empty. */
    assert_null(value_of(f, n, "fail_reason"));
}

static void test_failure_has_reason_no_image(void **state)
{
    struct store_result r = {
        .id = "j2",
        .status = "FAILURE",
        .action = "action",
        .task_id = "",
        .fail_reason = "banned prompt: 可能包含敏感词",
    };
    struct store_field f[STORE_RESULT_FIELDS];
    size_t n = store_result_fields(&r, "w", f, STORE_RESULT_FIELDS);

    (void)state;
    assert_string_equal(value_of(f, n, "fail_reason"),
                        "banned prompt: 可能包含敏感词");
    assert_null(value_of(f, n, "task_id"));
    assert_null(value_of(f, n, "image_url"));
    assert_null(value_of(f, n, "buttons"));
    assert_null(value_of(f, n, "meta"));
    assert_string_equal(value_of(f, n, "submits"), "0");
}

static void test_invalid_without_id_or_action(void **state)
{
    struct store_result r = {
        .status = "INVALID",
        .fail_reason = "invalid job: (payload): not valid JSON",
    };
    struct store_field f[STORE_RESULT_FIELDS];
    size_t n = store_result_fields(&r, "w", f, STORE_RESULT_FIELDS);

    (void)state;
    /* id and action are always present, empty when unreadable. */
    assert_string_equal(f[0].name, "id");
    assert_int_equal(f[0].len, 0);
    assert_string_equal(f[2].name, "action");
    assert_int_equal(f[2].len, 0);
    assert_string_equal(value_of(f, n, "status"), "INVALID");
}

static void test_meta_json_null_kept(void **state)
{
    struct store_result r = {.id = "m", .status = "SUCCESS", .meta = "null"};
    struct store_field f[STORE_RESULT_FIELDS];
    size_t n = store_result_fields(&r, "w", f, STORE_RESULT_FIELDS);

    (void)state;
    assert_string_equal(value_of(f, n, "meta"), "null");
}

static void test_too_small_array_refused(void **state)
{
    struct store_result r = {.id = "x", .status = "SUCCESS"};
    struct store_field f[STORE_RESULT_FIELDS];

    (void)state;
    assert_int_equal(store_result_fields(&r, "w", f, 3), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_success_fields_in_order),
        cmocka_unit_test(test_failure_has_reason_no_image),
        cmocka_unit_test(test_invalid_without_id_or_action),
        cmocka_unit_test(test_meta_json_null_kept),
        cmocka_unit_test(test_too_small_array_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
