#!/usr/bin/env bash
# ctest-timeout: 90
# Recovery through the sweep, and its limit: a job taken over from a dead
# worker is resumed by its task id (no second submit) and counted; past
# worker.max_recoveries it ends FAILURE and its payload goes to mjq:dead.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init

start_redis
start_sim --duration-ms 4000
export MJQ_POLL_SCHEDULE_MS=200 MJQ_HEARTBEAT_MS=500 MJQ_HEARTBEAT_TTL_MS=1500

# kill9_child RUN: kill -9 the (single) worker of a supervisor once its job
# has a recorded task id.
kill_worker_of() {
    local run=$1 id=$2 child
    wait_until 10 "$id submitted" eval \
        '[ -n "$(rcli HGET mjq:job:'"$id"' task_id)" ]'
    child=$(proc_children "$run" | head -n 1)
    [ -n "$child" ] || fail "no worker child of $run"
    kill -KILL "$child"
}

# 1. Default limit (3): the job is resumed and finishes, one submit.
start_run a --workers 1
enqueue_json '{"id":"r1","action":"imagine","body":{"prompt":"a heron"}}'
kill_worker_of a r1
wait_until 20 "a result for r1" result_field r1 status
assert_eq "$(result_field r1 status)" SUCCESS "r1 status after recovery"
assert_eq "$(sim_accepted_for r1)" 1 "r1 accepted submits"
assert_eq "$(rcli HGET mjq:job:r1 recoveries)" 1 "r1 recoveries"
rcli --json XRANGE mjq:events - + | jq -s -e \
    'any(.[][] | .[1] as $kv | [range(0; $kv | length; 2)
         | {($kv[.]): $kv[. + 1]}] | add;
         .type == "recovered" and .id == "r1" and .recoveries == "1")' \
    >/dev/null || fail "no recovered event for r1"
pass "a dead worker's job is resumed by its task id: one submit, recovered event"
stop_proc a

# 2. Limit 0: the first take-over fails the job and keeps the payload.
MJQ_MAX_RECOVERIES=0 start_run b --workers 1
enqueue_json '{"id":"r2","action":"imagine","body":{"prompt":"a crane"}}'
kill_worker_of b r2
wait_until 20 "a result for r2" result_field r2 status
assert_eq "$(result_field r2 status)" FAILURE "r2 status past the limit"
result_field r2 fail_reason | grep -q "recovered 1 times" ||
    fail "r2 fail_reason: $(result_field r2 fail_reason)"
assert_eq "$(results_for r2)" 1 "r2 results"
assert_eq "$(sim_accepted_for r2)" 1 "r2 accepted submits"
rcli --json XRANGE mjq:dead - + | jq -e \
    'any(.[] | .[1] as $kv | [range(0; $kv | length; 2)
         | {($kv[.]): $kv[. + 1]}] | add; .id == "r2")' >/dev/null ||
    fail "r2 payload not on mjq:dead"
pass "past max_recoveries: FAILURE 'recovered N times', payload on mjq:dead"
stop_proc b
