#!/usr/bin/env bash
# ctest-timeout: 60
# `mjq health [URL]`, the container HEALTHCHECK: 0 on HTTP 2xx, 1 on any
# other status or no answer, 64 on usage errors, 78 on a config file it
# cannot load; the default URL comes from MJQ_HTTP_LISTEN, else from the
# config file's admin.listen, with a wildcard host replaced by loopback.
# The simulator serves GET /healthz (200) and 404 elsewhere.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_sim

health()
{
    st=0
    "$MJQ_BIN" health "$@" >"$E2E_DIR/out" 2>"$E2E_DIR/err" || st=$?
}
err() { cat "$E2E_DIR/err"; }

health "http://127.0.0.1:$SIM_PORT/healthz"
assert_eq "$st" 0 "explicit URL ($(err))"
assert_eq "$(cat "$E2E_DIR/out")" \
    "http://127.0.0.1:$SIM_PORT/healthz: HTTP 200" "success line"
MJQ_HTTP_LISTEN=0.0.0.0:$SIM_PORT health
assert_eq "$st" 0 "default URL from MJQ_HTTP_LISTEN=0.0.0.0:PORT ($(err))"
MJQ_HTTP_LISTEN=:$SIM_PORT health --timeout 2
assert_eq "$st" 0 "MJQ_HTTP_LISTEN=:PORT ($(err))"
MJQ_HTTP_LISTEN=127.0.0.1:$SIM_PORT health --timeout=3
assert_eq "$st" 0 "MJQ_HTTP_LISTEN=127.0.0.1:PORT ($(err))"
pass "2xx: exit 0"

health "http://127.0.0.1:$SIM_PORT/nope"
assert_eq "$st" 1 "404"
grep -q "HTTP 404" "$E2E_DIR/err" || fail "404 reason: $(err)"
port=$(free_port)
MJQ_HTTP_LISTEN=0.0.0.0:$port health --timeout 2
assert_eq "$st" 1 "nothing listening"
grep -q "^mjq health: http://127.0.0.1:$port/healthz: " "$E2E_DIR/err" ||
    fail "refused reason names the URL: $(err)"
MJQ_HTTP_LISTEN="[::]:$port" health --timeout 2
assert_eq "$st" 1 "nothing listening on [::1]"
grep -q "^mjq health: http://\[::1\]:$port/healthz: " "$E2E_DIR/err" ||
    fail "[::] becomes [::1]: $(err)"
pass "non-2xx and no answer: exit 1"

health ftp://127.0.0.1/
assert_eq "$st" 64 "not http"
health --timeout 0
assert_eq "$st" 64 "--timeout 0"
health a b
assert_eq "$st" 64 "two URLs"
MJQ_HTTP_LISTEN=nocolon health
assert_eq "$st" 64 "bad MJQ_HTTP_LISTEN"
health --help
assert_eq "$st" 0 "--help"
pass "usage: exit 64"

# --- admin.listen from the config file -------------------------------------------------
unset MJQ_HTTP_LISTEN MJQ_CONFIG
conf=$E2E_DIR/mjq.conf
# Only admin.listen is read: the bad worker setting must not matter.
printf 'admin:\n{\n    listen = "0.0.0.0:%s";\n};\nworker:\n{\n    concurrency = 0;\n};\n' \
    "$SIM_PORT" >"$conf"
health --config "$conf"
assert_eq "$st" 0 "admin.listen from --config ($(err))"
assert_eq "$(cat "$E2E_DIR/out")" \
    "http://127.0.0.1:$SIM_PORT/healthz: HTTP 200" "URL from admin.listen"
health --config="$conf"
assert_eq "$st" 0 "--config=FILE ($(err))"
MJQ_CONFIG=$conf health
assert_eq "$st" 0 "admin.listen from MJQ_CONFIG ($(err))"
assert_eq "$(cat "$E2E_DIR/out")" \
    "http://127.0.0.1:$SIM_PORT/healthz: HTTP 200" "URL from MJQ_CONFIG's admin.listen"
MJQ_HTTP_LISTEN=127.0.0.1:$port health --config "$conf" --timeout 2
assert_eq "$st" 1 "MJQ_HTTP_LISTEN wins over the file"
grep -q "http://127.0.0.1:$port/healthz" "$E2E_DIR/err" ||
    fail "MJQ_HTTP_LISTEN not used: $(err)"
pass "admin.listen from --config or MJQ_CONFIG (other settings ignored); MJQ_HTTP_LISTEN wins"

printf 'admin:\n{\n    listen = "nocolon";\n};\n' >"$conf"
health --config "$conf"
assert_eq "$st" 78 "invalid admin.listen in the file"
grep -qF "config: admin.listen=nocolon: expected HOST:PORT, e.g. 0.0.0.0:9187 ($conf:3)" \
    "$E2E_DIR/err" || fail "the error does not name admin.listen and its line: $(err)"
printf 'admin:\n{\n    listen = 9187;\n};\n' >"$conf"
health --config "$conf"
assert_eq "$st" 78 "admin.listen not a string"
grep -q "admin.listen: must be a string" "$E2E_DIR/err" || fail "not-a-string: $(err)"
printf 'admin:\n{\n    listen = ""\n' >"$conf"
health --config "$conf"
assert_eq "$st" 78 "a file that does not parse"
grep -qF "($conf:" "$E2E_DIR/err" || fail "parse error without file and line: $(err)"
health --config "$E2E_DIR/missing.conf"
assert_eq "$st" 78 "missing config file"
grep -qF "$E2E_DIR/missing.conf" "$E2E_DIR/err" || fail "missing file not named: $(err)"
printf 'admin:\n{\n    listen = "";\n};\n' >"$conf"
health --config "$conf"
assert_eq "$st" 64 "admin.listen empty: nothing to check"
grep -q "admin.listen in $conf is empty; pass a URL" "$E2E_DIR/err" ||
    fail "empty admin.listen: $(err)"
printf 'log:\n{\n    level = "info";\n};\n' >"$conf"
health --config "$conf"
assert_eq "$st" 64 "admin.listen not set: nothing to check"
grep -q "admin.listen in $conf is not set; pass a URL" "$E2E_DIR/err" ||
    fail "unset admin.listen: $(err)"
health --config
assert_eq "$st" 64 "--config without FILE"
pass "a bad file or admin.listen is 78 with the key and line; no address is 64"
