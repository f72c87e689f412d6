#!/usr/bin/env bash
# ctest-timeout: 120
# Load: 500 imagine jobs through one worker at concurrency 100. Exactly one
# result per id (none missing, none twice), all SUCCESS, exactly one
# accepted submit per id upstream, and nothing left in the processing list.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_redis
start_sim --duration-ms 300
N=500
W=load-w1

# wait_alive NAME SECS DESC CMD...: wait_until CMD, but stop at once (and
# fail) if process NAME died meanwhile.
dead_or() { ! proc_alive "$1" || "${@:2}"; }
wait_alive()
{
    wait_until "$2" "$3" dead_or "$1" "${@:4}"
    proc_alive "$1" || fail "'$1' died while waiting for: $3 (see its log)"
}

MJQ_WORKER_ID=$W start_worker w1 --concurrency 100 --poll-schedule-ms 100

# All N payloads in one LPUSH, so the worker sees a full queue at once.
args=()
for i in $(seq 1 "$N"); do
    args+=("{\"id\":\"load-$i\",\"action\":\"imagine\",\"body\":{\"prompt\":\"load test $i\"},\"meta\":{\"n\":$i}}")
done
t0=$(now_ms)
rcli LPUSH mjq:queue:default "${args[@]}" >/dev/null
results_at_least() { [ "$(results_count)" -ge "$1" ]; }
wait_alive w1 90 "$N results" results_at_least "$N"
elapsed=$(($(now_ms) - t0))
pass "$N results in ${elapsed} ms"

# No stray result arrives late.
wait_until 10 "an empty processing list" \
    eval '[ "$(rcli LLEN mjq:processing:'$W')" = 0 ]'
assert_eq "$(results_count)" "$N" "results stream length"

rcli --json XRANGE mjq:results - + |
    jq -c '.[] | .[1] as $kv | [range(0; $kv | length; 2)
           | {($kv[.]): $kv[. + 1]}] | add' >"$E2E_DIR/results.jsonl"
assert_eq "$(jq -r .id "$E2E_DIR/results.jsonl" | sort -u | wc -l)" "$N" \
    "distinct ids among the results"
expected=$(seq 1 "$N" | sed 's/^/load-/' | sort)
assert_eq "$(jq -r .id "$E2E_DIR/results.jsonl" | sort)" "$expected" \
    "exactly the ids pushed, each once"
bad=$(jq -r 'select(.status != "SUCCESS") | "\(.id) \(.status) \(.fail_reason)"' \
    "$E2E_DIR/results.jsonl" | head -n 5)
[ -z "$bad" ] || fail "non-SUCCESS results: $bad"
bad=$(jq -r 'select(.submits != "1" or (.image_url // "") == "" or
                    (.task_id // "") == "" or
                    .meta != "{\"n\":\(.id | ltrimstr("load-"))}")
             | .id' "$E2E_DIR/results.jsonl" | head -n 5)
[ -z "$bad" ] || fail "results with submits != 1, no image, no task id or wrong meta: $bad"
assert_eq "$(jq -r .task_id "$E2E_DIR/results.jsonl" | sort -u | wc -l)" "$N" \
    "distinct upstream task ids"
pass "one SUCCESS per id, each with its own task"

stats=$(sim_stats)
assert_eq "$(jq -r .accepted <<<"$stats")" "$N" "sim accepted"
assert_eq "$(jq -r '.accepted_by_state | length' <<<"$stats")" "$N" \
    "sim accepted_by_state entries"
bad=$(jq -r '.accepted_by_state | to_entries[] | select(.value != 1)
             | "\(.key)=\(.value)"' <<<"$stats" | head -n 5)
[ -z "$bad" ] || fail "ids submitted more than once: $bad"
assert_eq "$(jq -r '.accepted_by_state | keys[]' <<<"$stats" | sort)" \
    "$expected" "accepted states are the job ids"
pass "exactly one accepted submit per id"

assert_eq "$(rcli LLEN mjq:queue:default)" 0 "queue drained"
assert_eq "$(rcli EXISTS mjq:dead)" 0 "nothing on mjq:dead"
proc_alive w1 || fail "worker died"
stop_proc w1 TERM 15
assert_eq "$(proc_status w1)" 0 "worker exit status after SIGTERM"
pass "worker idle and clean after the load"
