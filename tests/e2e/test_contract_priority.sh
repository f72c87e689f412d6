#!/usr/bin/env bash
# ctest-timeout: 60
# Contract §1, queues: a worker serves its queues in strict priority order
# (MJQ_QUEUES=high,default,low) and, within one queue, oldest first (the
# first LPUSHed is the first served). With MJQ_CONCURRENCY=1 one job runs
# at a time, so the results stream shows the order jobs were taken in.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_redis
start_sim --duration-ms 200
export MJQ_QUEUES=high,default,low MJQ_CONCURRENCY=1

job() { echo "{\"id\":\"$1\",\"action\":\"shorten\",\"body\":{\"prompt\":\"p $1\"}}"; }

# Ids of the results in stream order, comma-separated.
order() { e2e_results_objects | jq -rs 'map(.id) | join(",")'; }

# Pushed before any worker runs; oldest first within each queue.
for id in L1 L2 L3; do enqueue_json "$(job $id)" low; done
for id in D1 D2; do enqueue_json "$(job $id)" default; done
for id in H1 H2; do enqueue_json "$(job $id)" high; done
enqueue_json "$(job L4)" low
enqueue_json "$(job H3)" high
MJQ_POLL_SCHEDULE_MS=50 start_worker w1
wait_results 9 30
assert_eq "$(order)" H1,H2,H3,D1,D2,L1,L2,L3,L4 "results order"

# One at a time: each was taken after the previous one finished.
e2e_results_objects | jq -s -e 'all(.[]; .status == "SUCCESS")' >/dev/null ||
    fail "not all SUCCESS: $(e2e_results_objects | jq -c '{id, status, fail_reason}')"
e2e_results_objects | jq -s -e '[range(1; length) as $i
    | (.[$i].started_ms | tonumber) >= (.[$i - 1].finished_ms | tonumber)]
    | all' >/dev/null ||
    fail "jobs overlapped with concurrency 1: $(e2e_results_objects |
        jq -c '[.id, .started_ms, .finished_ms]')"
# The taken events name the queue each came from, in the same order.
assert_eq "$(rcli --json XRANGE mjq:events - + | jq -r '[.[] | .[1]
    | [range(0; length; 2) as $i | {(.[$i]): .[$i + 1]}] | add
    | select(.type == "taken") | "\(.id)@\(.queue)"] | join(",")')" \
    H1@high,H2@high,H3@high,D1@default,D2@default,L1@low,L2@low,L3@low,L4@low \
    "taken events"
pass "queued before start: high, default, low; FIFO within each"

# --- while busy: a job pushed later onto a higher queue is served next -----
enqueue_json "$(job B1)" low
wait_until 10 "B1 taken" eval '[ "$(rcli LLEN mjq:queue:low)" = 0 ]'
# All four at once (one script, atomic), so the worker sees them together
# whenever B1 ends.
rcli EVAL "redis.call('LPUSH', KEYS[1], ARGV[1])
    redis.call('LPUSH', KEYS[2], ARGV[2])
    redis.call('LPUSH', KEYS[3], ARGV[3])
    redis.call('LPUSH', KEYS[3], ARGV[4])" 3 \
    mjq:queue:low mjq:queue:default mjq:queue:high \
    "$(job B2)" "$(job B3)" "$(job B4)" "$(job B5)" >/dev/null
wait_results 14 30
assert_eq "$(order)" H1,H2,H3,D1,D2,L1,L2,L3,L4,B1,B4,B5,B3,B2 \
    "results order after pushes while busy"
pass "pushed while busy: high before default before low"
