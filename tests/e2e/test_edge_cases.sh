#!/usr/bin/env bash
# ctest-timeout: 150
# Cases at the edges of "one result per payload, one submit per job":
#  - the same payload pushed twice and taken by one worker whose claims
#    both fail once (a lost or refused reply): one SUCCESS, one DUPLICATE,
#    one accepted submit; with two accounts, the job record names the
#    account that really runs the task;
#  - a reply_to that names a Redis key of another kind: the result goes to
#    the shared stream instead of being lost;
#  - a job no configured account can ever run (its mode is served by none)
#    fails at once instead of holding its queue back until its deadline;
#  - Redis at maxmemory: the sweep still returns a dead worker's jobs.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_redis
start_sim --duration-ms 1000 --account alt=alt-key
export MJQ_POLL_SCHEDULE_MS=200 MJQ_RETRY_BASE_MS=100 MJQ_RETRY_MAX_MS=200
unset MJQ_WORKER_ID

# --- two copies of one id, both claims refused once ---------------------------------
# A lease key of the wrong kind makes every claim fail (WRONGTYPE) until
# it is repaired: both copies then send their claims again.
cat >"$E2E_DIR/two.conf" <<EOF
upstreams = (
    { name = "default"; base_url = "$MJQ_API_BASE_URL"; key = "$SIM_KEY";
      max_in_flight = 5; },
    { name = "alt"; base_url = "$MJQ_API_BASE_URL"; key = "alt-key";
      max_in_flight = 5; }
);
EOF
rcli SET mjq:lease:default broken >/dev/null
rcli SET mjq:lease:alt broken >/dev/null
job='{"id":"dup2","action":"imagine","body":{"prompt":"a cat"}}'
rcli LPUSH mjq:queue:default "$job" "$job" >/dev/null
MJQ_CONFIG=$E2E_DIR/two.conf MJQ_WORKER_ID=edge-w1 start_worker w1
wait_alive w1 10 "the refused claims" grep -q WRONGTYPE "$(log_file w1)"
rcli DEL mjq:lease:default mjq:lease:alt >/dev/null
wait_alive w1 30 "two entries for dup2" eval '[ "$(results_for dup2)" -ge 2 ]'
statuses=$(results_jsonl | jq -r 'select(.id == "dup2") | .status' | sort | xargs)
assert_eq "$statuses" "DUPLICATE SUCCESS" "dup2 results"
assert_eq "$(sim_accepted_for dup2)" 1 "accepted submits for dup2"
owner=$(sim_stats | jq -r '.accounts | to_entries[]
    | select(.value.accepted > 0) | .key')
assert_eq "$(rcli HGET mjq:job:dup2 account)" "$owner" \
    "the account in dup2's record (the simulator ran it on $owner)"
pass "two copies with refused claims: one SUCCESS on $owner, one DUPLICATE, one submit"
stop_proc w1

# --- a reply_to that is not a stream ---------------------------------------------------
rcli SET mjq:results:r1 oops >/dev/null
enqueue_json '{"id":"wt","action":"imagine","reply_to":"r1","body":{"prompt":"x"}}'
MJQ_WORKER_ID=edge-w2 start_worker w2
wait_alive w2 20 "a result for wt in the shared stream" result_field wt status
assert_eq "$(result_field wt status)" SUCCESS "wt status"
assert_eq "$(rcli GET mjq:results:r1)" oops "the producer's key r1"
assert_eq "$(rcli HGET mjq:job:wt state)" done "wt's record"
assert_eq "$(processing_left)" "" "processing lists"
grep -q "reply_to r1 names a Redis key that is not a stream" "$(log_file w2)" ||
    fail "no log line about reply_to r1"
pass "reply_to naming a string key: the result went to mjq:results"

# --- a mode no account serves ---------------------------------------------------------
stop_proc w2
export MJQ_API_MODES=default,fast
enqueue_json '{"id":"nomode","action":"imagine","mode":"relax","body":{"prompt":"x"}}'
push_jobs behind 5
t0=$(now_ms)
MJQ_WORKER_ID=edge-w3 start_worker w3
wait_alive w3 15 "a result for nomode" result_field nomode status
assert_eq "$(result_field nomode status)" FAILURE "nomode status"
assert_eq "$(result_field nomode fail_reason)" \
    "no configured upstream account serves mode relax" "nomode fail_reason"
assert_invariant behind 5 30
took=$(($(now_ms) - t0))
[ "$took" -lt 15000 ] || fail "the queue behind took $took ms"
pass "a job of a mode no account serves: FAILURE at once; the jobs behind it ran ($took ms)"
stop_proc w3
unset MJQ_API_MODES

# --- the sweep at maxmemory -------------------------------------------------------------
restart_sim --duration-ms 60000
MJQ_WORKER_ID=edge-w4 start_worker w4 --heartbeat-ms 300 --heartbeat-ttl-ms 1200
push_jobs oom 5
wait_alive w4 20 "edge-w4 holding 5 jobs" \
    eval '[ "$(rcli LLEN mjq:processing:edge-w4)" = 5 ]'
kill9 w4
wait_until 10 "edge-w4's heartbeat to expire" \
    eval '[ "$(rcli EXISTS mjq:worker:edge-w4)" = 0 ]'
rcli CONFIG SET maxmemory 1 >/dev/null
start_run sup --workers 1 --sweep-interval-ms 300 --concurrency 1
wait_alive sup 15 "the sweep while Redis is at maxmemory" \
    eval '[ "$(rcli LLEN mjq:processing:edge-w4)" = 0 ]'
rcli CONFIG SET maxmemory 0 >/dev/null
[ "$(rcli LLEN mjq:queue:default)" -ge 4 ] ||
    fail "the swept jobs are not back in their queue ($(rcli LLEN mjq:queue:default))"
pass "Redis at maxmemory: the sweep moved the dead worker's 5 jobs back"
