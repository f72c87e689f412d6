#!/usr/bin/env bash
# ctest-timeout: 120
# SIGHUP reloads `mjq run --config FILE`. A valid change
# (worker.concurrency 50 -> 60) while 200 jobs are in flight: the new
# workers are started before the old ones are told to stop (supervisor log
# order), the old ones drain and exit 0, the supervisor keeps running with
# 2 new children that run with concurrency 60, and every job ends with
# exactly one SUCCESS result and one accepted submit. An invalid file
# (worker.concurrency = 0): the reload is refused with a log line naming
# the key, the same children keep running and 20 more jobs succeed.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_redis
start_sim --duration-ms 3000
unset MJQ_WORKER_ID
N=200
Q=mjq:queue:default
CONF=$E2E_DIR/mjq.conf

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

# write_conf CONCURRENCY: replaces the config file in one rename.
write_conf()
{
    cat >"$CONF.tmp" <<CONF
worker:
{
    concurrency = $1;
    poll_schedule_ms = [500];
};
supervisor:
{
    workers = 2;
};
CONF
    mv -f "$CONF.tmp" "$CONF"
}

# Line number of the first supervisor log line matching the ERE, or none.
log_line() { grep -nE -m1 -- "$1" "$(log_file sup)" | cut -d: -f1; }

children() { proc_children sup | sort | xargs; }

# --- valid reload with 200 jobs in flight -----------------------------------------
write_conf 50
start_run sup --config "$CONF"
wait_until 20 "2 workers" eval '[ "$(proc_children sup | wc -l)" = 2 ]'
mapfile -t old < <(proc_children sup)
push_jobs rl $N
# Both workers full (2 x 50), the rest queued.
wait_alive sup 30 "100 jobs accepted upstream" accepted_for rl 100
[ "$(results_count)" -lt $N ] || fail "every job finished before the reload"

write_conf 60
signal_proc sup HUP
replaced()
{
    local kids k
    kids=$(proc_children sup)
    [ "$(wc -l <<<"$kids")" = 2 ] || return 1
    for k in "${old[@]}"; do
        grep -qx "$k" <<<"$kids" && return 1
        proc_alive "$k" && return 1
    done
    return 0
}
wait_alive sup 20 "2 new workers and the old ones gone" replaced
mapfile -t new < <(proc_children sup)
pass "reload: workers ${old[*]} replaced by ${new[*]}"

# New before old: both new workers were started before the first old one
# was told to stop (the supervisor's "worker started: pid N" lines are
# stamped no later than the old workers' "draining (SIGTERM)"; the workers
# log to the supervisor's stderr), and every old one drained and exited 0.
l_reload=$(log_line 'configuration reloaded: rolling 2 workers')
[ -n "$l_reload" ] || fail "no 'configuration reloaded' line in the supervisor log"
last_start=
for k in "${new[@]}"; do
    l=$(log_line "worker started: pid $k\$")
    [ -n "$l" ] || fail "no 'worker started: pid $k' line"
    [ "$l" -gt "$l_reload" ] || fail "new worker $k started before the reload"
    ts=$(sed -n "${l}p" "$(log_file sup)" | cut -d' ' -f1)
    [[ $ts > $last_start ]] && last_start=$ts
done
for k in "${old[@]}"; do
    l=$(log_line "-$k-[0-9a-f]{4}: draining \(SIGTERM\)")
    [ -n "$l" ] || fail "no 'draining (SIGTERM)' line of old worker $k"
    ts=$(sed -n "${l}p" "$(log_file sup)" | cut -d' ' -f1)
    [[ $ts < $last_start ]] &&
        fail "old worker $k was told to stop ($ts) before the new workers were both started ($last_start)"
    grep -q "worker $k exited with code 0" "$(log_file sup)" ||
        fail "old worker $k did not exit with code 0: $(grep -E "worker $k (exited|killed)" "$(log_file sup)")"
    events_of worker_exited | jq -s -e --arg p "$k" \
        'any(.[]; .pid == $p and .code == "0")' >/dev/null ||
        fail "no worker_exited event with code 0 for old worker $k"
done
for k in "${new[@]}"; do
    grep -qE -- "-$k-[0-9a-f]{4}: worker started: concurrency 60," \
        "$(log_file sup)" || fail "new worker $k does not run with concurrency 60"
done
if events_of worker_respawned | jq -s -e 'length > 0' >/dev/null; then
    fail "a reload is no respawn: $(events_of worker_respawned | xargs)"
fi
pass "new workers started first (concurrency 60); old ones drained and exited 0"

assert_invariant rl $N 40
proc_alive sup || fail "the supervisor died"
assert_eq "$(children)" "$(printf '%s\n' "${new[@]}" | sort | xargs)" \
    "children after the reload"

# --- invalid configuration: refused, nothing changes -------------------------------
write_conf 0
signal_proc sup HUP
wait_until 10 "the reload refusal naming worker.concurrency" \
    grep -qE 'reload refused, keeping the running configuration: .*worker\.concurrency' \
    "$(log_file sup)"
grep -E 'reload refused' "$(log_file sup)" | sed 's/^/  /'
[ "$(grep -c 'configuration reloaded' "$(log_file sup)")" = 1 ] ||
    fail "the invalid configuration was applied"
proc_alive sup || fail "the supervisor died on an invalid reload"
assert_eq "$(children)" "$(printf '%s\n' "${new[@]}" | sort | xargs)" \
    "children after the refused reload"
push_jobs rv 20
assert_invariant rv 20 30
assert_eq "$(children)" "$(printf '%s\n' "${new[@]}" | sort | xargs)" \
    "children after 20 more jobs"
proc_alive sup || fail "the supervisor died"
pass "invalid reload refused; same workers ${new[*]} kept taking jobs"
