#!/usr/bin/env bash
# ctest-timeout: 60
# Self-test of lib.sh, the harness every other e2e test relies on.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init

# --- redis on a free port, private and empty --------------------------------
start_redis
read -r eph_lo _ </proc/sys/net/ipv4/ip_local_port_range
[[ $REDIS_PORT =~ ^[0-9]+$ ]] && [ "$REDIS_PORT" -ge 1024 ] &&
    [ "$REDIS_PORT" -le 65535 ] || fail "REDIS_PORT '$REDIS_PORT'"
[ "$eph_lo" -le 11000 ] || [ "$REDIS_PORT" -lt "$eph_lo" ] ||
    fail "REDIS_PORT $REDIS_PORT is in the ephemeral range (from $eph_lo)"
assert_eq "$MJQ_REDIS_URL" "redis://127.0.0.1:$REDIS_PORT/0" "MJQ_REDIS_URL"
assert_eq "$(rcli PING)" PONG "ping"
assert_eq "$(rcli DBSIZE)" 0 "fresh redis is empty"
assert_eq "$(rcli CONFIG GET bind | tail -n 1)" 127.0.0.1 "bind"
assert_eq "$(rcli CONFIG GET dir | tail -n 1)" "$E2E_DIR/redis" "dir"
proc_alive redis || fail "proc_alive redis"
if rcli XADD only-a-key >/dev/null 2>&1; then
    fail "rcli succeeded on an error reply"
fi
pass "start_redis"

# --- wait_until ---------------------------------------------------------------
t0=$(now_ms)
if (wait_until 0.5 "a condition that never holds" false) 2>"$E2E_DIR/wu.err"
then
    fail "wait_until returned success on a false condition"
fi
elapsed=$(($(now_ms) - t0))
[ "$elapsed" -ge 450 ] && [ "$elapsed" -lt 3000 ] ||
    fail "wait_until 0.5 took ${elapsed}ms"
grep -q "timed out after 0.5s waiting for: a condition that never holds" \
    "$E2E_DIR/wu.err" || fail "wait_until message: $(cat "$E2E_DIR/wu.err")"
# A helper that fails (exits) inside the condition only fails that attempt.
(sleep 0.3 && rcli SET flag 1 >/dev/null) &
wait_until 5 "flag set" eval '[ "$(rcli GET flag)" = 1 ] || fail not yet'
wait $!
pass "wait_until"

# --- results helpers on hand-written entries -----------------------------------
task=$'{"id": "t1",\n "buttons": [{"customId": "MJ::JOB::upsample::1"}]}'
rcli XADD mjq:results '*' id other status SUCCESS action imagine >/dev/null
rcli XADD mjq:results '*' id j1 status DUPLICATE action imagine \
    fail_reason 'duplicate id' >/dev/null
rcli XADD mjq:results '*' id j1 status SUCCESS action imagine task_id t1 \
    task "$task" image_url 'http://x/1.png' fail_reason '' >/dev/null
rcli XADD mjq:results:r1 '*' id j2 status FAILURE action blend \
    fail_reason 'banned prompt' >/dev/null
assert_eq "$(results_count)" 3 "results_count"
assert_eq "$(results_count r1)" 1 "results_count by reply_to"
assert_eq "$(results_count mjq:results:r1)" 1 "results_count by key"
assert_eq "$(result_field j1 status)" SUCCESS "status skips the DUPLICATE"
assert_eq "$(result_field j1 task)" "$task" "multi-line task JSON"
assert_eq "$(result_field j1 image_url)" 'http://x/1.png' "image_url"
assert_eq "$(result_field j1 fail_reason)" '' "empty value"
assert_eq "$(result_field j2 fail_reason r1)" 'banned prompt' "reply_to"
assert_eq "$(result_json j1 | jq -r .task_id)" t1 "result_json"
assert_eq "$(results_for j1)" 2 "results_for counts DUPLICATEs"
assert_eq "$(results_for nope)" 0 "results_for unknown id"
if result_field j1 no_such_field >/dev/null; then
    fail "result_field of a missing field succeeded"
fi
if result_field nope status >/dev/null; then
    fail "result_field of a missing id succeeded"
fi
wait_results 3 1
pass "results helpers"

enqueue_json '{"id":"q1"}'
enqueue_json '{"id":"q2"}' low
assert_eq "$(rcli LRANGE mjq:queue:default 0 -1)" '{"id":"q1"}' "enqueue_json"
assert_eq "$(rcli LLEN mjq:queue:low)" 1 "enqueue_json queue"
pass "enqueue_json"

# --- processes ------------------------------------------------------------------
start_proc sleeper sleep 300
pid=$(proc_pid sleeper)
proc_alive sleeper || fail "sleeper not alive"
[[ $(cpu_ticks "$pid") =~ ^[0-9]+$ ]] || fail "cpu_ticks"
[[ $(cpu_ticks sleeper) =~ ^[0-9]+$ ]] || fail "cpu_ticks by name"
stop_proc sleeper
assert_eq "$(proc_status sleeper)" 143 "SIGTERM status"
proc_alive "$pid" && fail "sleeper survived stop_proc"

start_proc stubborn bash -c 'trap "" TERM; echo started; sleep 300 & wait'
wait_until 5 "stubborn started" grep -q started "$(log_file stubborn)"
t0=$(now_ms)
stop_proc stubborn TERM 0.5
[ $(($(now_ms) - t0)) -lt 5000 ] || fail "stop_proc escalation took too long"
assert_eq "$(proc_status stubborn)" 137 "escalated to SIGKILL"

start_proc victim sleep 300
kill9 victim
assert_eq "$(proc_status victim)" 137 "kill9 status"

start_proc quick bash -c 'exit 3'
wait_exit quick 5
assert_eq "$(proc_status quick)" 3 "wait_exit status"
pass "process helpers"

# --- restart_redis keeps AOF data, on the same port ------------------------------
stop_redis
proc_alive redis && fail "redis alive after stop_redis"
start_redis --appendonly yes
port=$REDIS_PORT
rcli SET survivor yes >/dev/null
rcli XADD mjq:results '*' id j9 status SUCCESS action imagine >/dev/null
restart_redis
assert_eq "$REDIS_PORT" "$port" "same port after restart"
assert_eq "$(rcli GET survivor)" yes "AOF data after restart"
assert_eq "$(result_field j9 status)" SUCCESS "stream after restart"
stop_redis
restart_redis
assert_eq "$(rcli GET survivor)" yes "restart of a stopped redis"
pass "restart_redis"

# --- the EXIT trap: kill everything, orphans too; keep the dir on failure --------
child=$E2E_DIR/child.sh
lib=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh
cat >"$child" <<EOF
. "$lib"
e2e_init
start_redis
start_proc parent bash -c 'sleep 300 & echo \$! >"\$E2E_DIR/gc"; wait'
wait_until 5 "grandchild" test -s "\$E2E_DIR/gc"
echo "\$E2E_DIR \$(proc_pid redis) \$(cat "\$E2E_DIR/gc")" >"\$1"
exit "\$2"
EOF
for want in 0 1; do
    st=0
    timeout 40 bash "$child" "$E2E_DIR/child.out" "$want" \
        >"$E2E_DIR/child.log" 2>&1 || st=$?
    assert_eq "$st" "$want" "child test status"
    read -r dir rpid gcpid <"$E2E_DIR/child.out"
    proc_alive "$rpid" && fail "child's redis survived its test"
    proc_alive "$gcpid" && fail "child's orphaned grandchild survived"
    if [ "$want" = 0 ]; then
        [ ! -e "$dir" ] || fail "child's dir kept after success"
    else
        [ -d "$dir" ] || fail "child's dir removed after failure"
        grep -q "FAILED (status 1)" "$E2E_DIR/child.log" ||
            fail "no failure summary"
        rm -rf "$dir"
    fi
done
pass "cleanup trap"
