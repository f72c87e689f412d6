#!/usr/bin/env bash
# ctest-timeout: 120
# Crash in the middle of a submit: `mjq run --workers 1` holds 100 of 200
# jobs whose submits hang upstream (sim --rate-slow 1: a 503 after 4 s, no
# task created). The worker is killed with SIGKILL while every job it holds
# has no task id; the simulator comes back without the fault. The respawned
# worker takes the rest of the queue, the supervisor's sweep returns the
# dead worker's jobs once its heartbeat expired, and every job ends with
# exactly one SUCCESS result and exactly one accepted upstream submit; each
# job the dead worker held is `recovered` from it.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_redis
start_sim --duration-ms 3000 --rate-slow 1 --slow-ms 4000
unset MJQ_WORKER_ID
N=200
C=100
Q=mjq:queue:default

# Helpers: wait_alive, events_of, results_jsonl, push_jobs, assert_invariant
# and friends are in lib.sh.
# --- one worker, every submit hanging -------------------------------------------
start_run sup --workers 1 --concurrency $C --poll-schedule-ms 500
wait_until 20 "a worker child" eval '[ "$(proc_children sup | wc -l)" = 1 ]'
victim=$(proc_children sup)
wait_alive sup 20 "worker $victim's heartbeat" \
    eval '[ -n "$(rcli --scan --pattern "mjq:worker:*-'"$victim"'-*")" ]'
vid=$(rcli --scan --pattern "mjq:worker:*-$victim-*" | sed 's/^mjq:worker://')
vkey=mjq:processing:$vid
push_jobs cs $N

# Every job the victim holds is claimed by it and has no task id, and its
# submit is on the wire (the simulator holds it back).
hanging()
{
    local ids
    [ "$(rcli LLEN "$vkey")" = $C ] || return 1
    sim_stats | jq -e ".faults.slow >= $C" >/dev/null || return 1
    ids=$(rcli LRANGE "$vkey" 0 -1 | jq -r .id)
    [ "$(sed 's/.*/HMGET mjq:job:& owner task_id/' <<<"$ids" | rbatch |
        paste - - | awk -F'\t' -v w="$vid" '$1 == w && $2 == ""' |
        wc -l)" = $C ]
}
wait_alive sup 30 "$C submits hanging in worker $victim, no task id recorded" \
    hanging
assert_eq "$(sim_stat accepted)" 0 "submits accepted upstream before the kill"
kill -KILL "$victim"
wait_until 10 "worker $victim gone" eval '! proc_alive '"$victim"
rcli LRANGE "$vkey" 0 -1 | jq -r .id | sort >"$E2E_DIR/held.ids"
assert_eq "$(wc -l <"$E2E_DIR/held.ids")" $C "payloads in the dead worker's list"
pass "SIGKILL of worker $victim with $C submits on the wire, none recorded"

# The simulator comes back without the fault (same port, no task kept).
restart_sim --duration-ms 3000

exited_9() { events_of worker_exited | jq -s -e --arg p "$victim" \
    'any(.[]; .pid == $p and .signal == "9")' >/dev/null; }
wait_until 10 "a worker_exited event with signal 9 for $victim" exited_9
wait_alive sup 20 "a respawned worker" eval \
    '[ "$(proc_children sup | wc -l)" = 1 ] && ! proc_children sup | grep -qx '"$victim"
newkid=$(proc_children sup)
respawned_as() { events_of worker_respawned | jq -s -e --arg p "$1" \
    'any(.[]; .pid == $p)' >/dev/null; }
wait_until 10 "a worker_respawned event for $newkid" respawned_as "$newkid"
pass "worker respawned as $newkid"

# --- every job: one result, one accepted submit ---------------------------------
assert_invariant cs $N 45
proc_alive sup || fail "the supervisor died"
assert_eq "$(proc_children sup)" "$newkid" "the supervisor's worker"

# Each job the dead worker held was taken over from it by the claim.
events_of recovered | jq -r --arg w "$vid" 'select(.from == $w) | .id' |
    sort -u >"$E2E_DIR/recovered.ids"
notrec=$(comm -23 "$E2E_DIR/held.ids" "$E2E_DIR/recovered.ids")
[ -z "$notrec" ] || fail "$(wc -l <<<"$notrec") jobs held by the dead worker have no recovered event from $vid: $(first5 <<<"$notrec")"
byvictim=$(jq -r --arg w "$vid" 'select(.worker == $w) | .id' \
    "$E2E_DIR/cs.results.jsonl")
[ -z "$byvictim" ] || fail "results written by the dead worker: $(first5 <<<"$byvictim")"
pass "all $C jobs of the dead worker recovered from $vid and finished by $newkid"
