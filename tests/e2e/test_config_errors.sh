#!/usr/bin/env bash
# ctest-timeout: 60
# Fatal configuration errors of `mjq worker` and `mjq run`: exit 78 (never
# respawned) with exactly one line on stderr that names the offending key
# and value (or the file and line), never the API key; --help exits 0.
# No Redis is needed: a process that gets past its configuration would
# hang trying to connect, so each run is bounded by `timeout`.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
e2e_need_bin

SECRET=secret-xyz
unset MJQ_CONFIG MJQ_API_KEY MJQ_API_KEY_FILE
port=$(free_port)
export MJQ_REDIS_URL="redis://127.0.0.1:$port/0"

# cfg_run CMD [ENV=VALUE...] [-- ARGS...]: runs `mjq CMD ARGS` with the
# extra environment; $st, $E2E_DIR/out and $E2E_DIR/err.
cfg_run()
{
    local cmd=$1
    local -a envs=()
    shift
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        envs+=("$1")
        shift
    done
    [ $# -gt 0 ] && shift
    st=0
    env "${envs[@]}" timeout 20 "$MJQ_BIN" "$cmd" "$@" \
        >"$E2E_DIR/out" 2>"$E2E_DIR/err" </dev/null || st=$?
}

err() { cat "$E2E_DIR/err"; }

# expect_fatal DESC WORD...: exit 78, one stderr line containing every
# WORD (fixed strings), nothing on stdout, no secret anywhere.
expect_fatal()
{
    local desc=$1 word
    shift
    assert_eq "$st" 78 "$desc: exit status (stderr: $(err))"
    assert_eq "$(wc -l <"$E2E_DIR/err")" 1 "$desc: stderr lines ($(err))"
    for word in "$@"; do
        grep -qF -- "$word" "$E2E_DIR/err" ||
            fail "$desc: stderr does not name '$word': $(err)"
    done
    [ ! -s "$E2E_DIR/out" ] || fail "$desc: stdout not empty: $(cat "$E2E_DIR/out")"
    if grep -qF -- "$SECRET" "$E2E_DIR/err" "$E2E_DIR/out"; then
        fail "$desc: the API key leaked: $(err)"
    fi
}

# --- bad environment values ---------------------------------------------------
cfg_run worker MJQ_CONCURRENCY=abc
expect_fatal "MJQ_CONCURRENCY=abc" MJQ_CONCURRENCY abc
cfg_run worker MJQ_REDIS_URL=http://x
expect_fatal "MJQ_REDIS_URL=http://x" MJQ_REDIS_URL http://x
cfg_run worker MJQ_POLL_SCHEDULE_MS=
expect_fatal "MJQ_POLL_SCHEDULE_MS=" MJQ_POLL_SCHEDULE_MS
grep -qE 'MJQ_POLL_SCHEDULE_MS=(""|'"''"'|$|[: ])' "$E2E_DIR/err" ||
    fail "empty value not shown as empty: $(err)"
cfg_run worker MJQ_LOG_LEVEL=loud
expect_fatal "MJQ_LOG_LEVEL=loud" MJQ_LOG_LEVEL loud
cfg_run worker MJQ_CONCURRENCY=0
expect_fatal "MJQ_CONCURRENCY=0" MJQ_CONCURRENCY 0
cfg_run worker MJQ_MAX_JOB_BYTES=12XB
expect_fatal "MJQ_MAX_JOB_BYTES=12XB" MJQ_MAX_JOB_BYTES 12XB
pass "bad environment values: 78, one line naming key and value"

# --- bad configuration files ----------------------------------------------------
printf 'worker:\n{\n    concurrency = 10;\n};\nbogus_key = 1;\n' \
    >"$E2E_DIR/unknown.conf"
cfg_run worker -- --config "$E2E_DIR/unknown.conf"
expect_fatal "unknown key" bogus_key "$E2E_DIR/unknown.conf"
printf 'worker:\n{\n    concurrency = 10\n    heartbeat_ms = ;\n};\n' \
    >"$E2E_DIR/syntax.conf"
cfg_run worker -- --config "$E2E_DIR/syntax.conf"
expect_fatal "syntax error" "$E2E_DIR/syntax.conf"
grep -qiE 'syntax|parse' "$E2E_DIR/err" || fail "syntax error not said: $(err)"
printf 'worker:\n{\n    concurrency = "abc";\n};\n' >"$E2E_DIR/value.conf"
cfg_run worker MJQ_CONFIG="$E2E_DIR/value.conf"
expect_fatal "bad value in a file (MJQ_CONFIG)" concurrency abc \
    "$E2E_DIR/value.conf"
cfg_run worker -- --config "$E2E_DIR/missing.conf"
expect_fatal "missing config file" "$E2E_DIR/missing.conf"
pass "bad files: unknown key, syntax error, bad value, missing file"

# --- the API key never appears in an error ---------------------------------------
cfg_run worker MJQ_API_KEY=$SECRET MJQ_CONCURRENCY=abc
expect_fatal "API key + bad concurrency" MJQ_CONCURRENCY abc
cfg_run worker MJQ_API_KEY=$SECRET MJQ_API_BASE_URL=ftp://x
expect_fatal "API key + bad base url" MJQ_API_BASE_URL
cfg_run worker MJQ_API_KEY="$SECRET bad" MJQ_CONCURRENCY=5
expect_fatal "API key with a space" MJQ_API_KEY
cfg_run worker MJQ_API_KEY=$SECRET MJQ_API_KEY_FILE="$E2E_DIR/none"
expect_fatal "API key + key file" MJQ_API_KEY
cfg_run worker MJQ_REDIS_URL="redis://u:$SECRET@127.0.0.1:notaport/0"
expect_fatal "Redis password in a bad URL" MJQ_REDIS_URL notaport
printf 'api:\n{\n    key = "%s";\n    timeout_ms = 5;\n};\n' "$SECRET" \
    >"$E2E_DIR/key.conf"
cfg_run worker -- --config "$E2E_DIR/key.conf"
expect_fatal "key in file + bad timeout" timeout_ms 5 "$E2E_DIR/key.conf"
cfg_run run MJQ_API_KEY=$SECRET MJQ_WORKERS=abc
expect_fatal "run: API key + bad workers" MJQ_WORKERS abc
pass "the API key is never printed"

# --- mjq run -----------------------------------------------------------------------
cfg_run run MJQ_CONCURRENCY=abc
expect_fatal "run: MJQ_CONCURRENCY=abc" MJQ_CONCURRENCY abc
grep -q '^mjq run: ' "$E2E_DIR/err" || fail "run: message prefix: $(err)"
cfg_run run MJQ_LOG_LEVEL=loud
expect_fatal "run: MJQ_LOG_LEVEL=loud" MJQ_LOG_LEVEL loud
cfg_run run -- --config "$E2E_DIR/syntax.conf"
expect_fatal "run: syntax error" "$E2E_DIR/syntax.conf"
cfg_run run -- --config "$E2E_DIR/unknown.conf"
expect_fatal "run: unknown key" bogus_key
cfg_run run -- --workers 0
expect_fatal "run: --workers 0" workers 0
pass "mjq run: 78 on a bad configuration"

# --- usage ---------------------------------------------------------------------------
for cmd in worker run; do
    cfg_run "$cmd" -- --help
    assert_eq "$st" 0 "$cmd --help exit"
    grep -q "usage: mjq $cmd" "$E2E_DIR/out" || fail "$cmd --help text"
    grep -q -- "MJQ_CONCURRENCY" "$E2E_DIR/out" ||
        fail "$cmd --help lacks the settings"
    cfg_run "$cmd" -- --no-such-flag 1
    assert_eq "$st" 64 "$cmd with an unknown flag"
done
pass "--help exits 0, unknown flags 64"
