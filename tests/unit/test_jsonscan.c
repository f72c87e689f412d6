/* jsonscan: validation, member spans and string decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jsonscan.h"

static int valid(const char *s)
{
    return jsonscan_valid(s, strlen(s)) == 0;
}

static void test_valid_documents(void **state)
{
    static const char *const ok[] = {
        "{}",
        " [ ] ",
        "0",
        "-0.5e+10",
        "\"\\u00e9\\n\\\\\\/\"",
        "{\"a\":[1,2,{\"b\":null}],\"c\":true,\"d\":false}",
        "\"日本語 😀\"",
        "12345678901234567890",
    };
    (void)state;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (!valid(ok[i]))
            fail_msg("rejected valid JSON: %s", ok[i]);
}

static void test_invalid_documents(void **state)
{
    static const char *const bad[] = {
        "",
        "{",
        "{\"a\":1",
        "{\"a\" 1}",
        "{a:1}",
        "[1,]",
        "{\"a\":1,}",
        "01",
        "1.",
        "-",
        ".5",
        "1e",
        "tru",
        "nul",
        "\"abc",
        "\"\\x\"",
        "\"\\u12g4\"",
        "{} {}",
        "[1] x",
        "\"a\tb\"",
        "\"\xc3\"",
        "\"\xc0\xaf\"",
        "\"\xed\xa0\x80\"",
        "\"\xf5\x80\x80\x80\"",
    };
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (valid(bad[i]))
            fail_msg("accepted invalid JSON #%zu: %s", i, bad[i]);
}

static void test_depth_limit(void **state)
{
    char deep[1200];
    size_t n = 0;
    (void)state;

    for (int i = 0; i < 300; i++)
        deep[n++] = '[';
    for (int i = 0; i < 300; i++)
        deep[n++] = ']';
    assert_int_equal(jsonscan_valid(deep, n), -1);
    /* 200 levels are fine. */
    assert_int_equal(jsonscan_valid(deep + 100, 400), 0);
}

static void test_member_spans(void **state)
{
    const char *doc =
        "{\"a\":\"x\\\"}\",\"buttons\":[{\"l\":\"}\"}],\"n\":-12.5,"
        "\"o\":{\"buttons\":1},\"z\":null}";
    size_t off, len;
    (void)state;

    assert_int_equal(jsonscan_member(doc, strlen(doc), "buttons", &off, &len),
                     0);
    assert_int_equal(len, strlen("[{\"l\":\"}\"}]"));
    assert_memory_equal(doc + off, "[{\"l\":\"}\"}]", len);
    assert_int_equal(jsonscan_member(doc, strlen(doc), "n", &off, &len), 0);
    assert_memory_equal(doc + off, "-12.5", len);
    assert_int_equal(jsonscan_member(doc, strlen(doc), "z", &off, &len), 0);
    assert_memory_equal(doc + off, "null", len);
    /* Only top-level members count. */
    assert_int_equal(jsonscan_member("{\"o\":{\"k\":1}}", 13, "k", &off, &len),
                     -1);
    assert_int_equal(jsonscan_member("[1]", 3, "k", &off, &len), -1);
}

static void test_string_decoding(void **state)
{
    char out[64];
    const char *s = "\"a\\u00e9\\ud83d\\ude00\\t\\\"\"";
    (void)state;

    assert_int_equal(jsonscan_string(s, strlen(s), out, sizeof(out)), 0);
    assert_string_equal(out, "aé😀\t\"");
    /* Truncation keeps whole characters. */
    assert_int_equal(jsonscan_string(s, strlen(s), out, 4), 0);
    assert_string_equal(out, "aé");
    assert_int_equal(jsonscan_string("abc", 3, out, sizeof(out)), -1);
    assert_int_equal(jsonscan_string("\"\\q\"", 4, out, sizeof(out)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_documents),
        cmocka_unit_test(test_invalid_documents),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_member_spans),
        cmocka_unit_test(test_string_decoding),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
