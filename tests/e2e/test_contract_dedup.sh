#!/usr/bin/env bash
# ctest-timeout: 90
# Contract §1-§2, dedup: a job id taken inside the dedup window is never
# submitted upstream again. Copies pushed together, copies pushed after the
# job finished, copies spread over two workers: exactly one entry that is
# not DUPLICATE per id, one DUPLICATE entry per extra copy (with fail_reason,
# meta, reply_to honoured, nothing submitted), one accepted submit upstream
# per id. After the window (MJQ_DEDUP_WINDOW_S=2, other prefix) the id runs
# again.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_redis
start_sim --duration-ms 1000
MJQ_POLL_SCHEDULE_MS=100 start_worker w1
# A second worker with a 2 s window, on its own prefix.
MJQ_PREFIX=short: MJQ_DEDUP_WINDOW_S=2 MJQ_POLL_SCHEDULE_MS=100 \
    start_worker w2

# statuses ID [STREAM]: the sorted statuses of every entry carrying ID.
statuses()
{
    e2e_results_objects "${2:-}" |
        jq -rs --arg id "$1" 'map(select(.id == $id) | .status) | sort | join(",")'
}

# Checks every DUPLICATE entry of ID on STREAM.
check_duplicates()
{
    local id=$1 stream=${2:-}
    e2e_results_objects "$stream" | jq -c --arg id "$id" \
        'select(.id == $id and .status == "DUPLICATE")' |
        while IFS= read -r d; do
            assert_eq "$(jq -r .action <<<"$d")" imagine "$id DUPLICATE action"
            [ -n "$(jq -r '.fail_reason // ""' <<<"$d")" ] ||
                fail "$id DUPLICATE without fail_reason: $d"
            assert_eq "$(jq -r '[.submits, .polls] | join(",")' <<<"$d")" 0,0 \
                "$id DUPLICATE submits,polls"
            assert_eq "$(jq -r 'has("image_url")' <<<"$d")" false \
                "$id DUPLICATE has no image_url"
            [ -n "$(jq -r .worker <<<"$d")" ] || fail "$id DUPLICATE worker"
        done
}

job() { echo "{\"id\":\"$1\",\"action\":\"imagine\",\"body\":{\"prompt\":\"cat $1\"}}"; }

# --- the same payload pushed twice, at once ------------------------------------
enqueue_json "$(job dup1)"
enqueue_json "$(job dup1)"
wait_until 20 "two entries for dup1" eval '[ "$(results_for dup1)" -ge 2 ]'
assert_eq "$(statuses dup1)" DUPLICATE,SUCCESS "dup1 entries"
check_duplicates dup1
assert_eq "$(sim_accepted_for dup1)" 1 "dup1 accepted upstream"
assert_eq "$(result_field dup1 submits)" 1 "dup1 SUCCESS submits"
pass "same id twice: one SUCCESS + one DUPLICATE, one submit"

# --- pushed again after it finished, inside the window ----------------------------
enqueue_json "$(job dup1)"
wait_until 10 "a third entry for dup1" eval '[ "$(results_for dup1)" -ge 3 ]'
assert_eq "$(statuses dup1)" DUPLICATE,DUPLICATE,SUCCESS "dup1 entries"
check_duplicates dup1
assert_eq "$(sim_accepted_for dup1)" 1 "dup1 accepted upstream"
# A different payload with the same id: DUPLICATE too, with its own meta,
# on its own reply_to stream.
enqueue_json '{"id":"dup1","action":"imagine","body":{"prompt":"another"},"meta":{"copy":4},"reply_to":"dups"}'
wait_until 10 "a DUPLICATE for dup1 on mjq:results:dups" \
    result_field dup1 status dups
assert_eq "$(statuses dup1 dups)" DUPLICATE "dup1 on mjq:results:dups"
assert_eq "$(result_field dup1 meta dups | jq -c .)" '{"copy":4}' \
    "DUPLICATE echoes its own meta"
check_duplicates dup1 dups
assert_eq "$(results_for dup1)" 3 "no 4th entry on mjq:results"
assert_eq "$(sim_accepted_for dup1)" 1 "dup1 accepted upstream"
pass "same id after it finished: DUPLICATE, meta and reply_to honoured"

# --- three copies at once ---------------------------------------------------------------
for _ in 1 2 3; do
    enqueue_json "$(job tri1)"
done
wait_until 20 "three entries for tri1" eval '[ "$(results_for tri1)" -ge 3 ]'
assert_eq "$(statuses tri1)" DUPLICATE,DUPLICATE,SUCCESS "tri1 entries"
check_duplicates tri1
assert_eq "$(sim_accepted_for tri1)" 1 "tri1 accepted upstream"
pass "three copies: one SUCCESS + two DUPLICATE, one submit"

# --- copies spread over two workers ---------------------------------------------------
MJQ_POLL_SCHEDULE_MS=100 start_worker w3
started_workers()
{
    rcli --json XRANGE mjq:events - + |
        jq '[.[] | .[1] | select(.[0] == "type" and .[1] == "worker_started")]
            | length'
}
wait_until 10 "two workers started on mjq:" eval '[ "$(started_workers)" -ge 2 ]'
for _ in 1 2 3 4 5 6; do
    enqueue_json "$(job two1)"
    enqueue_json "$(job two2)"
done
wait_until 20 "six entries for two1 and two2" eval \
    '[ "$(results_for two1)" -ge 6 ] && [ "$(results_for two2)" -ge 6 ]'
for id in two1 two2; do
    assert_eq "$(statuses $id)" \
        DUPLICATE,DUPLICATE,DUPLICATE,DUPLICATE,DUPLICATE,SUCCESS "$id entries"
    check_duplicates $id
    assert_eq "$(sim_accepted_for $id)" 1 "$id accepted upstream"
done
pass "six copies over two workers: one SUCCESS + five DUPLICATE, one submit"

# --- after the window the id runs again -------------------------------------------------
export MJQ_PREFIX=short:
enqueue_json "$(job win1)"
wait_until 20 "a result for win1" result_field win1 status
assert_eq "$(result_field win1 status)" SUCCESS "win1 first run"
ttl=$(rcli TTL short:job:win1)
[ "$ttl" -ge 1 ] && [ "$ttl" -le 2 ] || fail "short:job:win1 TTL $ttl, want 1..2"
wait_until 10 "short:job:win1 expired" \
    eval '[ "$(rcli EXISTS short:job:win1)" = 0 ]'
enqueue_json "$(job win1)"
wait_until 20 "a second entry for win1" eval '[ "$(results_for win1)" -ge 2 ]'
assert_eq "$(statuses win1)" SUCCESS,SUCCESS "win1 entries"
assert_eq "$(sim_accepted_for win1)" 2 "win1 accepted upstream"
unset MJQ_PREFIX
assert_eq "$(results_for win1)" 0 "nothing for win1 under mjq:"
pass "after the dedup window the same id runs again"
