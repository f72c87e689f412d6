#!/usr/bin/env bash
# ctest-timeout: 120
# Redis restarts (AOF, fsync always) while 200 jobs are in flight: the
# worker stays up, reconnects, and every job still gets exactly one result
# and exactly one accepted submit upstream. Jobs pushed after the restart
# are taken too. Then, deterministically: a result write that Redis
# refused (READONLY) is done after a reconnect, and without one.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_redis --appendonly yes --appendfsync always
start_sim --duration-ms 3000
N=200
M=20
Q=mjq:queue:default



connects() { grep -c 'redis: connected' "$(log_file w1)" || true; }

MJQ_WORKER_ID=rr-w1 start_worker w1 --concurrency 300 --poll-schedule-ms 200
wait_until 20 "the worker connected" eval '[ "$(connects)" -ge 1 ]'
args=()
for i in $(seq 1 "$N"); do
    args+=("{\"id\":\"rr-$i\",\"action\":\"imagine\",\"body\":{\"prompt\":\"restart $i\"}}")
done
rcli LPUSH $Q "${args[@]}" >/dev/null
accepted_at_least() { [ "$(sim_stat accepted)" -ge "$1" ]; }
wait_alive w1 20 "$N accepted submits" accepted_at_least "$N"
before=$(results_count)
[ "$before" -lt "$N" ] || fail "all jobs finished before the restart"

# --- restart while every job is being polled ----------------------------------------
restart_redis
proc_alive w1 || fail "worker exited when Redis went away"
wait_alive w1 30 "the worker reconnected" eval '[ "$(connects)" -ge 2 ]'
grep -q 'redis: connection lost' "$(log_file w1)" ||
    fail "no 'connection lost' in the worker log"
pass "Redis restarted with $before results written; worker reconnected"

# --- restart again while results are being written ---------------------------------
wait_alive w1 20 "the first results" eval '[ "$(results_count)" -ge 1 ]'
restart_redis
proc_alive w1 || fail "worker exited when Redis went away (2)"
wait_alive w1 30 "the worker reconnected (2)" eval '[ "$(connects)" -ge 3 ]'
pass "Redis restarted during the result wave"

args=()
for i in $(seq 1 "$M"); do
    args+=("{\"id\":\"rr-after-$i\",\"action\":\"imagine\",\"body\":{\"prompt\":\"after $i\"}}")
done
rcli LPUSH $Q "${args[@]}" >/dev/null

results_at_least() { [ "$(results_count)" -ge "$1" ]; }
wait_alive w1 30 "$((N + M)) results" results_at_least $((N + M))
# Give a duplicate the chance to show up before counting.
wait_until 10 "an empty processing list" \
    eval '[ "$(rcli LLEN mjq:processing:rr-w1)" = 0 ]'
results_jsonl >"$E2E_DIR/results.jsonl"
dups=$(jq -r .id "$E2E_DIR/results.jsonl" | sort | uniq -d | head -n 5)
[ -z "$dups" ] || fail "ids with more than one result: $dups"
expected=$({
    seq 1 "$N" | sed 's/^/rr-/'
    seq 1 "$M" | sed 's/^/rr-after-/'
} | sort)
missing=$(comm -23 <(echo "$expected") <(jq -r .id "$E2E_DIR/results.jsonl" |
    sort) | head -n 5)
[ -z "$missing" ] || fail "ids without a result: $missing"
assert_eq "$(results_count)" $((N + M)) "results"
bad=$(jq -r 'select(.status != "SUCCESS")
             | "\(.id) \(.status) \(.fail_reason)"' "$E2E_DIR/results.jsonl" |
    head -n 5)
[ -z "$bad" ] || fail "non-SUCCESS results: $bad"
pass "$((N + M)) jobs: one SUCCESS result each"

stats=$(sim_stats)
assert_eq "$(jq -r .accepted <<<"$stats")" $((N + M)) "sim accepted"
bad=$(jq -r '.accepted_by_state | to_entries[] | select(.value != 1)
             | "\(.key)=\(.value)"' <<<"$stats" | head -n 5)
[ -z "$bad" ] || fail "ids submitted more than once: $bad"
proc_alive w1 || fail "worker died"
assert_eq "$(rcli LLEN $Q)" 0 "queue empty"
stop_proc w1 TERM 15
assert_eq "$(proc_status w1)" 0 "worker exit status"
pass "one accepted submit per id; worker clean"

# --- a result write Redis refused is done once Redis accepts it ------------
# Deterministic: made a replica (of a master that does not exist), Redis
# refuses every write with READONLY, so the job's finish script fails
# before it changes anything; the payload is then the only one, at index 0
# of the processing list. Redis keeps refusing while the test looks (the
# worker retries on its own, and must keep failing), then the connection is
# cut and writes are allowed again: after the reconnect the worker must see
# the payload still held and write the result, exactly one.
# (A full Redis, maxmemory, cannot refuse the finish: its first write
# frees memory, and Redis lets a script that has written finish.)
restart_sim --duration-ms 300
MJQ_WORKER_ID=rr-w2 start_worker w2 --poll-schedule-ms 100
wait_until 20 "w2 connected" grep -q 'redis: connected' "$(log_file w2)"
enqueue_json '{"id":"ro-1","action":"imagine","body":{"prompt":"refused"}}'
wait_until 20 "ro-1 recorded as submitted" \
    eval '[ -n "$(rcli HGET mjq:job:ro-1 task_id)" ]'
rcli REPLICAOF 127.0.0.1 1 >/dev/null
wait_alive w2 20 "the refused result write" \
    grep -q READONLY "$(log_file w2)"
assert_eq "$(results_for ro-1)" 0 "no result while Redis refused writes"
assert_eq "$(rcli LPOS mjq:processing:rr-w2 \
    '{"id":"ro-1","action":"imagine","body":{"prompt":"refused"}}')" 0 \
    "the payload is at index 0 of the processing list"
cid=$(rcli CLIENT LIST | grep -F 'name=mjq:rr-w2:cmd ' |
    sed -n 's/^id=\([0-9]*\) .*/\1/p')
[ -n "$cid" ] || fail "no command connection named mjq:rr-w2:cmd"
rcli CLIENT KILL ID "$cid" >/dev/null
rcli REPLICAOF NO ONE >/dev/null
wait_until 20 "w2 reconnected" \
    eval '[ "$(grep -c "redis: connected" "$(log_file w2)")" -ge 2 ]'
wait_alive w2 15 "a result for ro-1 after the reconnect (payload at index 0)" \
    result_field ro-1 status
assert_eq "$(result_field ro-1 status)" SUCCESS "ro-1 status"
assert_eq "$(results_for ro-1)" 1 "results for ro-1"
assert_eq "$(rcli LLEN mjq:processing:rr-w2)" 0 "processing list of w2"
assert_eq "$(sim_accepted_for ro-1)" 1 "accepted submits for ro-1"
pass "refused result write: resent after the reconnect, one result"

# Same refusal, but Redis stays connected: the worker must retry on its
# own, not wait for a reconnect that never comes.
enqueue_json '{"id":"ro-2","action":"imagine","body":{"prompt":"refused again"}}'
wait_until 20 "ro-2 recorded as submitted" \
    eval '[ -n "$(rcli HGET mjq:job:ro-2 task_id)" ]'
n_ro=$(grep -c READONLY "$(log_file w2)")
rcli REPLICAOF 127.0.0.1 1 >/dev/null
wait_until 20 "the refused result write (2)" \
    eval '[ "$(grep -c READONLY "$(log_file w2)")" -gt '"$n_ro"' ]'
rcli REPLICAOF NO ONE >/dev/null
wait_alive w2 15 "a result for ro-2 without a reconnect (the refused write must be retried)" \
    result_field ro-2 status
assert_eq "$(result_field ro-2 status)" SUCCESS "ro-2 status"
assert_eq "$(results_for ro-2)" 1 "results for ro-2"
pass "refused result write: retried while connected"
stop_proc w2 TERM 15
assert_eq "$(proc_status w2)" 0 "w2 exit status"
