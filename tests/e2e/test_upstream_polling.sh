#!/usr/bin/env bash
# ctest-timeout: 180
# How tasks are polled:
#  - batch_fetch: a worker polls its tasks with list-by-condition, many per
#    request and no single fetch; a task missing from the answers is "not
#    yet visible" a few times, then lost;
#  - a server without list-by-condition (404): the worker falls back to
#    fetching task by task by itself, and every job still succeeds;
#  - min_poll_interval_ms: no task is read faster than that, whatever the
#    poll schedule says;
#  - deadlines per mode: a relax job times out on worker.job_timeout_relax_s
#    while a fast job with the same fate is still being polled.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_redis
start_sim --duration-ms 2000
N=40
export MJQ_POLL_SCHEDULE_MS=300 MJQ_CONCURRENCY=100

# --- batch polling ------------------------------------------------------------------
MJQ_WORKER_ID=poll-b MJQ_API_BATCH_FETCH=true MJQ_API_BATCH_WINDOW_MS=200 \
    MJQ_API_BATCH_SIZE=16 start_worker wb
push_jobs batch "$N"
assert_invariant batch "$N" 60
stats=$(sim_stats)
fetches=$(jq -r .fetches <<<"$stats")
lists=$(jq -r .batch_fetches <<<"$stats")
ids=$(jq -r .batch_ids <<<"$stats")
assert_eq "$fetches" 0 "single fetches with batch_fetch on"
[ "$lists" -ge 1 ] || fail "no list-by-condition request"
[ "$ids" -ge "$N" ] || fail "list requests asked for $ids ids, fewer than $N jobs"
# Each request carries several tasks: far fewer requests than polls.
[ $((lists * 3)) -le "$ids" ] ||
    fail "$lists list requests for $ids task polls: not batched"
pass "batch: $N jobs polled with $lists list-by-condition requests ($ids task reads), no single fetch; $(jq -r '.submits + .batch_fetches' <<<"$stats") HTTP requests for $N jobs"

# A task that vanishes is absent from every answer: lost after a few.
enqueue_json '{"id":"batch-vanish","action":"imagine","body":{"prompt":"vanish"}}'
wait_alive wb 20 "a result for batch-vanish" result_field batch-vanish status
assert_eq "$(result_field batch-vanish status)" FAILURE "batch-vanish status"
assert_eq "$(result_field batch-vanish fail_reason)" "task lost upstream" \
    "batch-vanish fail_reason"
[ "$(result_field batch-vanish polls)" -ge 3 ] ||
    fail "batch-vanish lost after $(result_field batch-vanish polls) polls, want >= 3 (worker.lost_after_not_found)"
pass "batch: a task absent from the answers is lost after $(result_field batch-vanish polls) polls"
stop_proc wb

# --- a server without list-by-condition -------------------------------------------------
restart_sim --duration-ms 1000 --no-batch
MJQ_WORKER_ID=poll-nb MJQ_API_BATCH_FETCH=true MJQ_API_BATCH_WINDOW_MS=100 \
    start_worker wnb
push_jobs nobatch 20
assert_invariant nobatch 20 60
stats=$(sim_stats)
[ "$(jq -r .fetches <<<"$stats")" -ge 20 ] ||
    fail "fallback: only $(jq -r .fetches <<<"$stats") single fetches for 20 jobs"
grep -q "no list-by-condition endpoint" "$(log_file wnb)" ||
    fail "no log line about the missing list endpoint"
assert_eq "$(grep -c "no list-by-condition endpoint" "$(log_file wnb)")" 1 \
    "log lines about the missing endpoint"
pass "no list endpoint: the worker fell back to single fetches ($(jq -r .fetches <<<"$stats")), 20 SUCCESS"
stop_proc wnb

# --- minimum poll interval -------------------------------------------------------------
restart_sim --duration-ms 3000
MJQ_WORKER_ID=poll-min MJQ_POLL_SCHEDULE_MS=50 MJQ_API_MIN_POLL_INTERVAL_MS=700 \
    start_worker wmin
push_jobs minpoll 10
assert_invariant minpoll 10 60
gap=$(sim_stats | jq -r .accounts.default.min_read_gap_ms)
[ "$gap" != null ] && [ "$gap" -ge 700 ] ||
    fail "a task was read again after $gap ms, below min_poll_interval_ms 700"
pass "min_poll_interval_ms 700 over a 50 ms schedule: smallest gap between two reads $gap ms"
stop_proc wmin

# --- deadlines per mode ------------------------------------------------------------------
MJQ_WORKER_ID=poll-dl MJQ_JOB_TIMEOUT_RELAX_S=2 start_worker wdl
t0=$(now_ms)
enqueue_json '{"id":"dl-relax","action":"imagine","mode":"relax","body":{"prompt":"wait forever"}}'
enqueue_json '{"id":"dl-fast","action":"imagine","mode":"fast","body":{"prompt":"wait forever"}}'
wait_alive wdl 15 "a result for dl-relax" result_field dl-relax status
took=$(($(now_ms) - t0))
assert_eq "$(result_field dl-relax status)" TIMEOUT "dl-relax status"
[ "$took" -ge 1800 ] || fail "dl-relax timed out after $took ms, before its 2 s deadline"
! result_field dl-fast status >/dev/null ||
    fail "dl-fast ended with dl-relax: $(result_json dl-fast)"
rcli SET mjq:cancel:dl-fast 1 >/dev/null
wait_alive wdl 10 "a result for dl-fast" result_field dl-fast status
assert_eq "$(result_field dl-fast status)" CANCEL "dl-fast status"
pass "relax job TIMEOUT after $took ms (job_timeout_relax_s 2); the fast job ran on until cancelled"
