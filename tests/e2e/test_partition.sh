#!/usr/bin/env bash
# ctest-timeout: 90
# A worker that stops answering (SIGSTOP, like a long network partition)
# for longer than its heartbeat TTL loses its jobs to the sweep; when it
# comes back it must notice (its heartbeat had expired) and drop them, so
# each job still gets exactly one result and one submit.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init

start_redis
start_sim --duration-ms 7000
export MJQ_POLL_SCHEDULE_MS=200 MJQ_HEARTBEAT_MS=300 MJQ_HEARTBEAT_TTL_MS=1000
n=30

start_worker w1
wait_until 10 "w1 connected" eval \
    '[ -n "$(rcli --scan --pattern "mjq:worker:*")" ]'
for i in $(seq 1 $n); do
    enqueue_json "{\"id\":\"p$i\",\"action\":\"imagine\",\"body\":{\"prompt\":\"tern $i\"}}"
done
all_submitted() {
    for i in $(seq 1 $n); do
        [ -n "$(rcli HGET "mjq:job:p$i" task_id)" ] || return 1
    done
}
wait_until 15 "w1 submitted every job" all_submitted
w1_id=$(rcli --scan --pattern 'mjq:worker:*' | head -n 1 | sed 's/^mjq:worker://')

# A supervisor with its own worker: it sweeps w1's jobs once w1 is silent.
start_run sup --workers 1
signal_proc w1 STOP
wait_until 15 "the sweep took w1's jobs" eval \
    '[ "$(rcli LLEN mjq:processing:'"$w1_id"')" = 0 ]'
signal_proc w1 CONT
pass "w1 frozen past its heartbeat TTL; the sweep handed its jobs on"

wait_until 40 "$n results" eval '[ "$(results_count)" -ge '"$n"' ]'
# Let a late double publication show up, if there were one.
wait_until 5 "w1 reports the take-over" grep -q "taken over by another worker" \
    "$(log_file w1)"
for i in $(seq 1 $n); do
    assert_eq "$(results_for "p$i")" 1 "results for p$i"
    assert_eq "$(result_field "p$i" status)" SUCCESS "status of p$i"
    assert_eq "$(sim_accepted_for "p$i")" 1 "accepted submits for p$i"
done
rcli --json XRANGE mjq:results - + | jq -e --arg w "$w1_id" \
    'all(.[] | .[1] as $kv | [range(0; $kv | length; 2)
         | {($kv[.]): $kv[. + 1]}] | add; .worker != $w)' >/dev/null ||
    fail "the frozen worker published results for jobs taken over"
pass "one result and one submit per job; the frozen worker published none"
