#!/usr/bin/env bash
# ctest-timeout: 240
# Fault storms, for each dialect (novicezk, trueai, newapi): with 30 % of
# all requests answered HTTP 500, 429, malformed, or slow past mjq's
# request timeout, every job still ends SUCCESS with exactly one accepted
# submit upstream. Then "queue full" answers (code 23 / 9 / 30 per
# dialect) to most submits: they are waited out without counting as failed
# attempts, so even with worker.submit_max_attempts = 1 every job succeeds.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_redis
start_sim --duration-ms 300
N=60

export MJQ_RETRY_BASE_MS=20 MJQ_RETRY_MAX_MS=300 MJQ_POLL_SCHEDULE_MS=100
export MJQ_API_TIMEOUT_MS=400 MJQ_CONCURRENCY=100
# The breaker must not pause the account in a storm of this size: it is
# tested on its own (test_upstream_breaker.sh).
export MJQ_API_BREAKER_FAILURES=1000

# run_storm LABEL DIALECT N SIM-ARGS...: N jobs LABEL-1..N through a worker
# against the simulator restarted with SIM-ARGS; checks the invariant.
storm()
{
    local label=$1 d=$2 n=$3
    shift 3
    restart_sim --dialect "$d" --duration-ms 300 "$@"
    push_jobs "$label" "$n"
    assert_invariant "$label" "$n" 90
    stats=$(sim_stats)
}

MJQ_SUBMIT_MAX_ATTEMPTS=12 MJQ_WORKER_ID=storm-w1 start_worker w1
for d in novicezk trueai newapi; do
    storm "$d-storm" "$d" "$N" --rate-500 0.075 --rate-429 0.075 \
        --rate-malformed 0.075 --rate-slow 0.075 --slow-ms 1200
    for f in 500 429 malformed slow; do
        [ "$(jq -r --arg f "$f" '.faults[$f]' <<<"$stats")" -gt 0 ] ||
            fail "$d storm: no '$f' fault injected: $(jq -c .faults <<<"$stats")"
    done
    pass "$d: storm with $(jq -c .faults <<<"$stats"): $N SUCCESS, one accepted submit each"
done
stop_proc w1
assert_eq "$(proc_status w1)" 0 "w1 exit status"

# Queue full is not a failure: one attempt allowed, and yet every job
# succeeds, after several queue-full answers each.
MJQ_SUBMIT_MAX_ATTEMPTS=1 MJQ_WORKER_ID=storm-w2 start_worker w2
for d in novicezk trueai newapi; do
    storm "$d-full" "$d" 20 --rate-queue-full 0.6
    full=$(jq -r '.faults.queue_full' <<<"$stats")
    # Each of them would have failed its job, had it counted.
    [ "$full" -ge 5 ] || fail "$d: only $full queue-full answers"
    pass "$d: $full queue-full answers waited out with submit_max_attempts 1: 20 SUCCESS"
done
