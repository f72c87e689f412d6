#!/usr/bin/env bash
# ctest-timeout: 60
# `mjq config`: loads the configuration as run and worker do (defaults <
# file < MJQ_* < flags), prints the effective settings with secrets
# masked, exits 78 with the reason on an invalid one and 64 on a usage
# error. The shipped conf/mjq.conf is valid. Contacts nothing.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init

cfg()
{
    st=0
    "$MJQ_BIN" config "$@" >"$E2E_DIR/out" 2>"$E2E_DIR/err" || st=$?
}
out() { cat "$E2E_DIR/out"; }
err() { cat "$E2E_DIR/err"; }
value() { sed -n "s/^$1 = //p" "$E2E_DIR/out"; }

unset MJQ_CONFIG MJQ_CONCURRENCY MJQ_API_KEY MJQ_REDIS_URL
cfg
assert_eq "$st" 0 "defaults ($(err))"
assert_eq "$(value worker.concurrency)" 100 "default concurrency"
assert_eq "$(value api.key)" "(unset)" "no key"
assert_eq "$(value redis.url)" "redis://127.0.0.1:6379/0" "default url"

cfg --config "$MJQ_SRC/conf/mjq.conf"
assert_eq "$st" 0 "conf/mjq.conf is valid ($(err))"

printf 'worker: { concurrency = 5; shutdown_timeout_s = 20; };\n' \
    >"$E2E_DIR/a.conf"
cfg --config "$E2E_DIR/a.conf"
assert_eq "$(value worker.concurrency)" 5 "file"
assert_eq "$(value worker.shutdown_timeout_s)" 20 "file shutdown"
MJQ_CONFIG=$E2E_DIR/a.conf MJQ_CONCURRENCY=7 cfg
assert_eq "$(value worker.concurrency)" 7 "env beats file"
MJQ_CONFIG=$E2E_DIR/a.conf MJQ_CONCURRENCY=7 cfg --concurrency 9
assert_eq "$(value worker.concurrency)" 9 "flag beats env"
pass "precedence"

MJQ_API_KEY=sk-very-secret-1 cfg --redis-url 'redis://:pw-secret-2@h:1/0'
assert_eq "$st" 0 "secrets ($(err))"
assert_eq "$(value api.key)" "(set)" "api.key masked"
assert_eq "$(value redis.url)" "redis://:***@h:1/0" "password masked"
grep -q -e sk-very-secret-1 -e pw-secret-2 "$E2E_DIR/out" "$E2E_DIR/err" &&
    fail "a secret was printed: $(out)"
pass "secrets masked"

printf 'worker: { concurency = 5; };\n' >"$E2E_DIR/typo.conf"
cfg --config "$E2E_DIR/typo.conf"
assert_eq "$st" 78 "unknown key"
grep -q "worker.concurency" "$E2E_DIR/err" || fail "reason names the key: $(err)"
assert_eq "$(out)" "" "nothing printed on stdout for an invalid config"
MJQ_API_KEY=sk-very-secret-1 cfg --api-key-file "$E2E_DIR/missing"
assert_eq "$st" 78 "unreadable key file"
cfg --config "$E2E_DIR/nope.conf"
assert_eq "$st" 78 "missing file"
cfg --bogus 1
assert_eq "$st" 64 "unknown option"
cfg extra
assert_eq "$st" 64 "stray argument"
cfg --help
assert_eq "$st" 0 "--help"
grep -q '^usage: mjq config' "$E2E_DIR/out" || fail "--help: $(out)"
pass "exit codes 78, 64, 0"
