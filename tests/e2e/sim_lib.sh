# shellcheck shell=bash
# The harness of the simulator's own tests (test_sim.sh,
# test_sim_accounts.sh), sourced after `set -euo pipefail`:
#
#   sim_init NAME        $dir (a temporary directory), cleanup trap
#   SIM_ARGS=(...)       arguments every `start` passes (e.g. --key K)
#   start NAME ARGS...   `mjq sim` on a free port; PORT[NAME], PID[NAME]
#   AUTH=...             the auth header `req` sends ("" for none)
#   req NAME METHOD PATH [BODY]   sets CODE and BODY; every body is also
#                        appended to $dir/replies
#   submit NAME ACTION BODY       req POST /mj/submit/ACTION
#   j FILTER             jq -r FILTER on BODY
#   expect GOT WANT MSG  fail unless GOT == WANT
#   stop_all             SIGTERM every simulator; fail unless each exits 0
#   fail MSG / ok MSG
#
# Needs MJQ_BIN (ctest sets it), curl and jq. Every wait is bounded.

: "${MJQ_BIN:?MJQ_BIN must point to the mjq binary}"
declare -A PID=() PORT=()
declare -a SIM_ARGS=()
AUTH=""

sim_init()
{
    dir=$(mktemp -d "${TMPDIR:-/tmp}/mjq-$1.XXXXXX")
    trap cleanup EXIT
}

cleanup()
{
    local rc=$? name _
    set +e
    for name in "${!PID[@]}"; do
        kill -TERM "${PID[$name]}" 2>/dev/null
    done
    for name in "${!PID[@]}"; do
        for _ in $(seq 1 50); do
            kill -0 "${PID[$name]}" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "${PID[$name]}" 2>/dev/null
        wait "${PID[$name]}" 2>/dev/null
    done
    if [ "$rc" -ne 0 ]; then
        for f in "$dir"/*.log; do
            [ -f "$f" ] || continue
            echo "----- last 20 lines of $f -----" >&2
            tail -n 20 "$f" >&2
        done
    fi
    rm -rf "$dir"
    exit "$rc"
}

fail()
{
    echo "FAIL: $*" >&2
    exit 1
}

ok()
{
    echo "ok: $*"
}

# start NAME ARGS...: a simulator on a free port, waits for its port file.
start()
{
    local name=$1 _
    shift
    "$MJQ_BIN" sim --listen 127.0.0.1:0 --port-file "$dir/$name.port" \
        "${SIM_ARGS[@]}" --duration-ms 300 "$@" >"$dir/$name.log" 2>&1 &
    PID[$name]=$!
    for _ in $(seq 1 50); do
        if [ -s "$dir/$name.port" ]; then
            PORT[$name]=$(cat "$dir/$name.port")
            return 0
        fi
        kill -0 "${PID[$name]}" 2>/dev/null || fail "sim $name died at start"
        sleep 0.1
    done
    fail "sim $name wrote no port file within 5 s"
}

req()
{
    local name=$1 method=$2 path=$3 data=${4-}
    local -a args=(-s -o "$dir/body" -w '%{http_code}' --max-time 5
        -X "$method")
    [ -n "$AUTH" ] && args+=(-H "$AUTH")
    [ $# -ge 4 ] && args+=(-H 'Content-Type: application/json'
        --data-binary "$data")
    CODE=$(curl "${args[@]}" "http://127.0.0.1:${PORT[$name]}$path") ||
        fail "curl $method $path on $name"
    BODY=$(cat "$dir/body")
    printf '%s\n' "$BODY" >>"$dir/replies"
}

j()
{
    jq -r "$1" <<<"$BODY"
}

expect()
{
    [ "$1" = "$2" ] || fail "$3: got '$1', want '$2' (HTTP $CODE: $BODY)"
}

submit()
{
    req "$1" POST "/mj/submit/$2" "$3"
}

stop_all()
{
    local name st
    for name in "${!PID[@]}"; do
        kill -TERM "${PID[$name]}"
    done
    for name in "${!PID[@]}"; do
        st=0
        wait "${PID[$name]}" || st=$?
        [ "$st" = 0 ] || fail "sim $name exited with $st after SIGTERM"
        unset "PID[$name]"
    done
}
