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

# --- helpers (the same in every test_crash_*.sh) ------------------------------

# wait_alive NAME SECS DESC CMD...: wait_until CMD, but fail at once if
# process NAME died meanwhile.
dead_or() { ! proc_alive "$1" || "${@:2}"; }
wait_alive()
{
    wait_until "$2" "$3" dead_or "$1" "${@:4}"
    proc_alive "$1" || fail "'$1' died while waiting for: $3 (see its log)"
}

# The first 5 lines of stdin on one line; reads all of it (no SIGPIPE).
first5() { awk 'NR <= 5' | xargs; }

# Redis commands from stdin, one a line; one reply a line.
rbatch() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT"; }

# Events of TYPE as JSON objects, one a line.
events_of()
{
    rcli --json XRANGE mjq:events - + |
        jq -c --arg t "$1" '.[] | .[1] as $kv | [range(0; $kv | length; 2)
               | {($kv[.]): $kv[. + 1]}] | add | select(.type == $t)'
}

results_jsonl()
{
    rcli --json XRANGE mjq:results - + |
        jq -c '.[] | .[1] as $kv | [range(0; $kv | length; 2)
               | {($kv[.]): $kv[. + 1]}] | add'
}

push_jobs() # PREFIX COUNT
{
    local args=() i
    for i in $(seq 1 "$2"); do
        args+=("{\"id\":\"$1-$i\",\"action\":\"imagine\",\"body\":{\"prompt\":\"crash $i\"}}")
    done
    rcli LPUSH $Q "${args[@]}" >/dev/null
}

# "key=len ..." of every non-empty mjq:processing:* list.
processing_left()
{
    local k n out=
    for k in $(rcli --scan --pattern 'mjq:processing:*'); do
        n=$(rcli LLEN "$k")
        [ "$n" = 0 ] || out+="$k=$n "
    done
    echo "$out"
}

# PREFIX COUNT: COUNT distinct ids PREFIX-* have a result, and no payload
# is left in the queue or in any processing list.
settled()
{
    [ "$(results_jsonl | jq -r --arg p "$1-" 'select(.id | startswith($p))
        | .id' | sort -u | wc -l)" -ge "$2" ] &&
        [ "$(rcli LLEN $Q)" = 0 ] && [ -z "$(processing_left)" ]
}

# assert_invariant PREFIX COUNT SECS: waits up to SECS for jobs
# PREFIX-1..PREFIX-COUNT to settle, then fails unless each id has exactly
# one result (none missing, none twice), every result is SUCCESS, the
# simulator accepted exactly one submit per id, and the queue and every
# mjq:processing:* list are empty.
assert_invariant()
{
    local p=$1 n=$2 secs=$3 f ids dups missing bad subs left queued id
    local problems=()
    (wait_until "$secs" "jobs $p-* to settle" settled "$p" "$n") \
        >/dev/null 2>&1 || true
    f=$E2E_DIR/$p.results.jsonl
    results_jsonl | jq -c --arg p "$p-" 'select(.id | startswith($p))' >"$f"
    ids=$(jq -r .id "$f" | sort)
    dups=$(uniq -d <<<"$ids")
    missing=$(comm -23 <(seq 1 "$n" | sed "s/^/$p-/" | sort) \
        <(sort -u <<<"$ids"))
    bad=$(jq -r 'select(.status != "SUCCESS")
        | "\(.id)=\(.status)(\(.fail_reason // ""))"' "$f")
    subs=$(sim_stats | jq -r --arg p "$p-" --argjson n "$n" '
        (.accepted_by_state // {}) as $a | range(1; $n + 1) | "\($p)\(.)"
        | select(($a[.] // 0) != 1) | "\(.)=\($a[.] // 0)"')
    left=$(processing_left)
    queued=$(rcli LLEN $Q)
    [ -z "$missing" ] || problems+=("$(wc -l <<<"$missing") ids without a result [$(first5 <<<"$missing")]")
    [ -z "$dups" ] || problems+=("$(wc -l <<<"$dups") ids with more than one result [$(first5 <<<"$dups")]")
    [ -z "$bad" ] || problems+=("$(wc -l <<<"$bad") results not SUCCESS [$(first5 <<<"$bad")]")
    [ -z "$subs" ] || problems+=("$(wc -l <<<"$subs") ids not accepted upstream exactly once (id=accepted) [$(first5 <<<"$subs")]")
    [ -z "$left" ] || problems+=("payloads left in processing lists: $left")
    [ "$queued" = 0 ] || problems+=("$queued payloads left in $Q")
    if [ "${#problems[@]}" -gt 0 ]; then
        for id in $(first5 <<<"$missing"); do
            echo "record of $id: $(rcli HGETALL "mjq:job:$id" | xargs)" >&2
        done
        fail "invariant for $n jobs $p-*: $(printf '%s; ' "${problems[@]}")"
    fi
    pass "invariant: $n jobs $p-*: one SUCCESS result and one accepted submit each; queue and processing lists empty"
}

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
