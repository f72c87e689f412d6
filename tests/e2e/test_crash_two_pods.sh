#!/usr/bin/env bash
# ctest-timeout: 120
# Two pods: two `mjq run` (2 workers each) share one Redis; 300 jobs are
# spread over the 4 workers. Once every job has its task id recorded, one
# pod dies whole: SIGKILL to its supervisor and its workers at once (its
# process group), so nothing drains and no heartbeat is removed. The other
# pod's sweep returns the dead workers' jobs once their heartbeats expired;
# its workers take each one over (`recovered` event naming the dead worker)
# and poll the recorded task: every job ends with exactly one SUCCESS
# result and one accepted submit.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_redis
start_sim --duration-ms 4000
unset MJQ_WORKER_ID
N=300
Q=mjq:queue:default
RUN=(--workers 2 --concurrency 75 --poll-schedule-ms 500)

# Helpers: wait_alive, events_of, results_jsonl, push_jobs, assert_invariant
# and friends are in lib.sh.
# PREFIX COUNT: the simulator accepted a submit for COUNT ids PREFIX-*.
accepted_for()
{
    [ "$(sim_stats | jq --arg p "$1-" '.accepted_by_state // {} | keys
        | map(select(startswith($p))) | length')" -ge "$2" ]
}

# Worker id of worker process PID (from its heartbeat key).
worker_id_of()
{
    local k
    k=$(rcli --scan --pattern "mjq:worker:*-$1-*")
    [ -n "$k" ] || return 1
    echo "${k#mjq:worker:}"
}

# PREFIX COUNT: every job record PREFIX-1..COUNT has a task id.
all_recorded()
{
    [ "$(seq 1 "$2" | sed "s/.*/HGET mjq:job:$1-& task_id/" | rbatch |
        grep -c .)" = "$2" ]
}

# --- two pods ------------------------------------------------------------------
start_run podA "${RUN[@]}"
start_run podB "${RUN[@]}"
for pod in podA podB; do
    wait_until 20 "2 workers of $pod" \
        eval '[ "$(proc_children '"$pod"' | wc -l)" = 2 ]'
done
mapfile -t kidsA < <(proc_children podA)
mapfile -t kidsB < <(proc_children podB)
declare -A wid=()
for k in "${kidsA[@]}" "${kidsB[@]}"; do
    wait_until 20 "the heartbeat of worker $k" worker_id_of "$k"
    wid[$k]=$(worker_id_of "$k")
done
pass "pod A workers: ${wid[${kidsA[0]}]} ${wid[${kidsA[1]}]}; pod B workers: ${wid[${kidsB[0]}]} ${wid[${kidsB[1]}]}"

push_jobs tp $N
# Past the submit window: every job accepted upstream and its task id
# recorded (a kill between the two may submit again, see
# docs/operations.md), and still being polled.
wait_alive podB 30 "$N jobs accepted upstream" accepted_for tp $N
wait_alive podB 10 "every task id recorded" all_recorded tp $N
[ "$(results_count)" -lt $N ] || fail "every job finished before the kill: too slow"
heldB=0
for k in "${kidsB[@]}"; do
    heldB=$((heldB + $(rcli LLEN "mjq:processing:${wid[$k]}")))
done
[ "$heldB" -gt 0 ] || fail "pod B's workers hold no job: nothing to recover"

# --- pod B dies whole ------------------------------------------------------------
kill -KILL -- "-$(proc_pid podB)"
wait_exit podB 5
for k in "${kidsB[@]}"; do
    wait_until 5 "worker $k of pod B gone" eval '! proc_alive '"$k"
done
# Nothing moves those lists before the heartbeats expire (6 s).
: >"$E2E_DIR/held.tsv"
for k in "${kidsB[@]}"; do
    rcli LRANGE "mjq:processing:${wid[$k]}" 0 -1 | jq -r --arg w "${wid[$k]}" \
        '"\(.id)\t\($w)"' >>"$E2E_DIR/held.tsv"
done
sort -o "$E2E_DIR/held.tsv" "$E2E_DIR/held.tsv"
nheld=$(wc -l <"$E2E_DIR/held.tsv")
[ "$nheld" -gt 0 ] || fail "pod B's workers held no job when killed"
pass "SIGKILL of pod B (supervisor and workers): $nheld jobs left in its processing lists"

assert_invariant tp $N 45
for k in "${kidsA[@]}"; do
    proc_alive "$k" || fail "pod A's worker $k died"
done
proc_alive podA || fail "pod A's supervisor died"

# Each job pod B held was taken over from the worker that held it, and
# finished by pod A.
events_of recovered | jq -r '"\(.id)\t\(.from)"' | sort -u >"$E2E_DIR/recovered.tsv"
notrec=$(comm -23 "$E2E_DIR/held.tsv" "$E2E_DIR/recovered.tsv" | cut -f1)
[ -z "$notrec" ] || fail "$(wc -l <<<"$notrec") jobs held by pod B have no recovered event from their dead worker: $(first5 <<<"$notrec")"
fromB=$(cut -f2 "$E2E_DIR/recovered.tsv" | sort -u | xargs)
pass "recovered events for all $nheld jobs, from: $fromB"
cut -f1 "$E2E_DIR/held.tsv" >"$E2E_DIR/held.ids"
badfin=$(jq -r --rawfile h "$E2E_DIR/held.ids" \
    --arg a "${wid[${kidsA[0]}]} ${wid[${kidsA[1]}]}" '
    ($h | split("\n")) as $held | ($a | split(" ")) as $live
    | select(.id as $i | $held | index($i))
    | select(.worker as $w | $live | index($w) | not) | "\(.id)@\(.worker)"' \
    "$E2E_DIR/tp.results.jsonl")
[ -z "$badfin" ] || fail "jobs of pod B not finished by pod A: $(first5 <<<"$badfin")"
pass "pod A finished every job of pod B"
