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
