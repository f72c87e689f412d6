#!/usr/bin/env bash
# ctest-timeout: 120
# SIGTERM drains without losing or duplicating work: 200 submitted jobs are
# handed back (queue, job record owner "" with its task id), the worker
# exits 0 within shutdown_timeout_s, and a second worker finishes every job
# by polling, never submitting again. A second SIGTERM during a slow drain
# exits at once with a non-zero status, leaving the jobs in the processing
# list.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_redis
start_sim --duration-ms 4000
N=200
Q=mjq:queue:default



MJQ_WORKER_ID=st-w1 start_worker w1 --concurrency 300 \
    --poll-schedule-ms 500 --shutdown-timeout-s 10
args=()
for i in $(seq 1 "$N"); do
    args+=("{\"id\":\"st-$i\",\"action\":\"imagine\",\"body\":{\"prompt\":\"drain $i\"}}")
done
rcli LPUSH $Q "${args[@]}" >/dev/null
accepted_at_least() { [ "$(sim_stat accepted)" -ge "$1" ]; }
wait_alive w1 20 "$N accepted submits" accepted_at_least "$N"

# --- SIGTERM mid-run -----------------------------------------------------------
t0=$(now_ms)
signal_proc w1 TERM
wait_exit w1 10
elapsed=$(($(now_ms) - t0))
assert_eq "$(proc_status w1)" 0 "exit status after SIGTERM"
pass "worker drained and exited 0 in ${elapsed} ms"

rcli XRANGE mjq:events - + | grep -qx worker_stopping ||
    fail "no worker_stopping event"
done_n=$(results_count)
queued=$(rcli LLEN $Q)
assert_eq "$(rcli LLEN mjq:processing:st-w1)" 0 "processing list after drain"
assert_eq "$queued" $((N - done_n)) "handed-back jobs in the queue ($done_n finished)"
[ "$queued" -gt 0 ] || fail "no job was in flight at SIGTERM: test too slow?"
# Every handed-back job: released (owner ""), with its upstream task id.
rcli LRANGE $Q 0 -1 | jq -r .id | sort >"$E2E_DIR/queued.ids"
assert_eq "$(sort -u "$E2E_DIR/queued.ids" | wc -l)" "$queued" \
    "each id handed back once"
sed 's/.*/HMGET mjq:job:& owner task_id/' "$E2E_DIR/queued.ids" |
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" >"$E2E_DIR/records"
assert_eq "$(wc -l <"$E2E_DIR/records")" $((2 * queued)) "job record lines"
bad=$(paste - - <"$E2E_DIR/records" | paste "$E2E_DIR/queued.ids" - |
    awk -F'\t' '$2 != "" || $3 !~ /^[0-9]+$/ { print; n++ } n >= 5 { exit }')
[ -z "$bad" ] || fail "handed-back job records (id owner task_id): $bad"
pass "$queued jobs handed back: queue, owner \"\", task id kept"

# --- a second worker resumes them: polls, never resubmits ----------------------------
MJQ_WORKER_ID=st-w2 start_worker w2 --concurrency 300 --poll-schedule-ms 500
results_at_least() { [ "$(results_count)" -ge "$1" ]; }
wait_alive w2 40 "$N results" results_at_least "$N"
results_jsonl >"$E2E_DIR/results.jsonl"
assert_eq "$(results_count)" "$N" "results"
assert_eq "$(jq -r .id "$E2E_DIR/results.jsonl" | sort)" \
    "$(seq 1 "$N" | sed 's/^/st-/' | sort)" "one result per id"
bad=$(jq -r 'select(.status != "SUCCESS" or .submits != "1")
             | "\(.id) \(.status) submits=\(.submits) \(.fail_reason)"' \
    "$E2E_DIR/results.jsonl" | head -n 5)
[ -z "$bad" ] || fail "results not SUCCESS with one submit: $bad"
assert_eq "$(jq -r 'select(.worker == "st-w2") | .id' "$E2E_DIR/results.jsonl" |
    sort)" "$(cat "$E2E_DIR/queued.ids")" "the second worker finished the handed-back jobs"
stats=$(sim_stats)
assert_eq "$(jq -r .accepted <<<"$stats")" "$N" "sim accepted"
bad=$(jq -r '.accepted_by_state | to_entries[] | select(.value != 1)
             | "\(.key)=\(.value)"' <<<"$stats" | head -n 5)
[ -z "$bad" ] || fail "ids submitted more than once: $bad"
assert_eq "$(rcli LLEN $Q)" 0 "queue empty"
assert_eq "$(rcli LLEN mjq:processing:st-w2)" 0 "processing list empty"
stop_proc w2 TERM 15
assert_eq "$(proc_status w2)" 0 "second worker exit status"
pass "every job: one SUCCESS result, one accepted submit (resumed jobs polled)"

# --- a second SIGTERM during a slow drain ------------------------------------------
# Every request now answers after 5 s: the submits stay on the wire, so the
# drain waits for them; a second SIGTERM must not wait.
export MJQ_PREFIX=s2:
restart_sim --rate-slow 1 --slow-ms 5000
M=20
MJQ_WORKER_ID=st-w3 start_worker w3 --concurrency 100 --shutdown-timeout-s 10
args=()
for i in $(seq 1 "$M"); do
    args+=("{\"id\":\"slow-$i\",\"action\":\"imagine\",\"body\":{\"prompt\":\"slow $i\"}}")
done
rcli LPUSH s2:queue:default "${args[@]}" >/dev/null
slow_submits() { sim_stats | jq -e ".faults.slow >= $M" >/dev/null; }
wait_alive w3 10 "$M submits on the wire" slow_submits
signal_proc w3 TERM
wait_until 3 "the worker to start draining" grep -q draining "$(log_file w3)"
proc_alive w3 || fail "worker exited before its submits were answered"
t0=$(now_ms)
signal_proc w3 TERM
wait_exit w3 3
elapsed=$(($(now_ms) - t0))
st=$(proc_status w3)
[ "$st" -ne 0 ] || fail "second SIGTERM: exit status 0, want non-zero"
held=$(rcli LLEN s2:processing:st-w3)
assert_eq "$held" "$M" "jobs left in the processing list"
assert_eq "$(results_count)" 0 "no result written for the abandoned jobs"
pass "second SIGTERM: exit $st after ${elapsed} ms, $held jobs kept in processing"

# --- SIGTERM during the Redis handshake --------------------------------------------
# A script keeps Redis busy for 1.5 s, so the worker's handshake replies
# are still due when SIGTERM comes; with Redis not up yet the worker exits
# at once and frees the store with those callbacks pending (hiredis then
# calls them with no reply and no connection: a null dereference once).
busy='local t0 = redis.call("TIME")
while true do
    local t = redis.call("TIME")
    if (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) > 1500000 then break end
end
return 1'
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" EVAL "$busy" 0 >/dev/null &
busy_pid=$!
sleep 0.2 # the script is running (measurement of nothing: it only has to start)
MJQ_WORKER_ID=st-early start_worker early --concurrency 5
wait_until 5 "the worker's start" grep -q "worker started" "$(log_file early)"
signal_proc early TERM
wait_exit early 10
assert_eq "$(proc_status early)" 0 "exit status, SIGTERM during the handshake"
! grep -q "redis: connected" "$(log_file early)" ||
    fail "the handshake finished before SIGTERM: the case was not reached"
! grep -qE 'runtime error|Sanitizer' "$(log_file early)" ||
    fail "sanitizer report when stopped during the handshake: $(grep -m1 -E 'runtime error|Sanitizer' "$(log_file early)")"
wait "$busy_pid" || true
pass "SIGTERM during the Redis handshake: exit 0, no sanitizer report"
