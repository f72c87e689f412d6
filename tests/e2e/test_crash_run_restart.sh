#!/usr/bin/env bash
# ctest-timeout: 120
# Restarting `mjq run` mid-run. SIGTERM to a supervisor (2 workers) while
# 200 jobs are being polled: it exits 0 within 15 s, its workers hand the
# jobs back, and a new `mjq run` finishes every one with exactly one
# SUCCESS result and one accepted submit. Then SIGKILL of the supervisor
# with 200 more jobs polling: its workers see the life pipe close and exit
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
