#!/usr/bin/env bash
# ctest-timeout: 120
# Restarting `mjq run` mid-run. SIGTERM to a supervisor (2 workers) while
# 200 jobs are being polled: it exits 0 within 15 s, its workers hand the
# jobs back, and a new `mjq run` finishes every one with exactly one
# SUCCESS result and one accepted submit. Then SIGKILL of the supervisor
# with 200 more jobs polling: its workers see their channel to it close and exit
# on their own within 12 s; a new `mjq run` finishes those jobs too (handed
# back by the drain, or returned by the sweep once the dead workers'
# heartbeats expired), with the same invariant.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_redis
start_sim --duration-ms 3000
unset MJQ_WORKER_ID
N=200
Q=mjq:queue:default
RUN=(--workers 2 --concurrency 150 --poll-schedule-ms 500)

# Helpers: wait_alive, events_of, results_jsonl, push_jobs, assert_invariant
# and friends are in lib.sh.
# PREFIX COUNT: the simulator accepted a submit for COUNT ids PREFIX-*.
accepted_for()
{
    [ "$(sim_stats | jq --arg p "$1-" '.accepted_by_state // {} | keys
        | map(select(startswith($p))) | length')" -ge "$2" ]
}

# PREFIX: how many ids PREFIX-* have a result.
results_of()
{
    results_jsonl | jq -r --arg p "$1-" 'select(.id | startswith($p)) | .id' |
        sort -u | wc -l
}

# --- SIGTERM of mjq run while 200 jobs are polled ----------------------------------
start_run sup1 "${RUN[@]}"
wait_until 20 "2 workers of sup1" eval '[ "$(proc_children sup1 | wc -l)" = 2 ]'
mapfile -t kids < <(proc_children sup1)
push_jobs rt $N
wait_alive sup1 30 "$N jobs accepted upstream" accepted_for rt $N
done_n=$(results_of rt)
[ "$done_n" -lt $N ] || fail "every job finished before the SIGTERM: too slow"
t0=$(now_ms)
signal_proc sup1 TERM
wait_exit sup1 15
elapsed=$(($(now_ms) - t0))
assert_eq "$(proc_status sup1)" 0 "exit status of mjq run after SIGTERM"
for k in "${kids[@]}"; do
    proc_alive "$k" && fail "worker $k outlived its supervisor's SIGTERM"
done
left=$(processing_left)
[ -z "$left" ] || fail "payloads left in processing lists after the drain: $left"
done_n=$(results_of rt)
assert_eq "$(rcli LLEN $Q)" $((N - done_n)) \
    "payloads handed back to the queue ($done_n jobs finished)"
pass "SIGTERM: mjq run exited 0 in $elapsed ms; $((N - done_n)) jobs handed back"

start_run sup2 "${RUN[@]}"
assert_invariant rt $N 40
proc_alive sup2 || fail "the second mjq run died"

# --- SIGKILL of mjq run while 200 jobs are polled ----------------------------------
wait_until 20 "2 workers of sup2" eval '[ "$(proc_children sup2 | wc -l)" = 2 ]'
mapfile -t kids < <(proc_children sup2)
push_jobs rk $N
wait_alive sup2 30 "$N more jobs accepted upstream" accepted_for rk $N
done_n=$(results_of rk)
[ "$done_n" -lt $N ] || fail "every job finished before the SIGKILL: too slow"
t0=$(now_ms)
kill9 sup2
for k in "${kids[@]}"; do
    wait_until 12 "worker $k to exit after its supervisor was killed" \
        eval '! proc_alive '"$k"
done
elapsed=$(($(now_ms) - t0))
queued=$(rcli LLEN $Q)
left=$(processing_left)
pass "SIGKILL of mjq run: workers exited on their own in $elapsed ms; $queued jobs in the queue, processing lists: [${left}]"

start_run sup3 "${RUN[@]}"
assert_invariant rk $N 40
proc_alive sup3 || fail "the third mjq run died"
stop_proc sup3 TERM 15
assert_eq "$(proc_status sup3)" 0 "exit status of the third mjq run"
