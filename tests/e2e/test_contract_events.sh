#!/usr/bin/env bash
# ctest-timeout: 90
# Contract §3, events: a job's events on mjq:events come in order taken,
# submitted (task_id), progress (status, progress; only on change),
# finished (status), each with type, ts (ms), worker and id; a FAILURE's
# finished event says FAILURE; worker_started appears once per worker start
# (pid of that process); a transient upstream fault (HTTP 500) gives retry
# events (reason, delay_ms) and, once the attempts are spent, a FAILURE
# whose fail_reason names the 500; a rate limit (HTTP 429) is retried
# without counting as a failed attempt, until the job's deadline.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_redis
start_sim --progress-steps 2 --duration-ms 1000
MJQ_POLL_SCHEDULE_MS=50 start_worker w1

# Every event as one JSON object a line; "_fields" lists the field names
# in order.
events()
{
    rcli --json XRANGE mjq:events - + |
        jq -c '.[] | .[1] as $kv | [range(0; $kv | length; 2)
            | {($kv[.]): $kv[. + 1]}] + [{"_fields": [range(0; $kv | length; 2)
            | $kv[.]]}, {"_id": .[0]}] | add'
}

events_of() { events | jq -c --arg id "$1" 'select(.id == $id)'; }

# worker_started events of the process named $1 (matched by its pid).
started_count()
{
    events | jq -s --arg pid "$(proc_pid "$1")" \
        'map(select(.type == "worker_started" and .pid == $pid)) | length'
}

wait_until 10 "worker_started of w1" eval '[ "$(started_count w1)" -ge 1 ]'

# --- one imagine job, event by event ------------------------------------------------
enqueue_json '{"id":"e1","action":"imagine","body":{"prompt":"a cat"}}'
wait_until 15 "a result for e1" result_field e1 status
r=$(result_json e1)
assert_eq "$(jq -r .status <<<"$r")" SUCCESS "e1 status ($r)"
worker=$(jq -r .worker <<<"$r")
ev=$(events_of e1 | jq -s .)

types=$(jq -r 'map(.type) | join(",")' <<<"$ev")
[[ $types =~ ^taken,submitted,(progress,)+finished$ ]] ||
    fail "e1 event sequence: $types"
jq -e 'all(.[]; ._fields[0:3] == ["type", "ts", "worker"])' <<<"$ev" \
    >/dev/null || fail "events do not start with type, ts, worker: $ev"
jq -e --arg w "$worker" 'all(.[]; .id == "e1" and .worker == $w
    and (.ts | test("^[0-9]{13}$")))' <<<"$ev" >/dev/null ||
    fail "e1 events' id/worker/ts: $ev"
jq -e 'map(.ts | tonumber) | . == sort' <<<"$ev" >/dev/null ||
    fail "e1 events' ts not in stream order: $ev"
first_ts=$(jq -r '.[0].ts' <<<"$ev")
last_ts=$(jq -r '.[-1].ts' <<<"$ev")
# (started_ms, finished_ms and the events' ts are each read from the
# clock separately: allow a few ms.)
[ "$first_ts" -ge $(($(jq -r .started_ms <<<"$r") - 50)) ] &&
    [ "$last_ts" -le $(($(jq -r .finished_ms <<<"$r") + 50)) ] ||
    fail "e1 events outside [started_ms, finished_ms]: $first_ts..$last_ts, $r"
assert_eq "$(jq -r '.[1].task_id' <<<"$ev")" "$(jq -r .task_id <<<"$r")" \
    "submitted task_id"
assert_eq "$(jq -r '.[-1].status' <<<"$ev")" SUCCESS "finished status"
pass "e1: $types"

# Progress: status and progress on every event, only on change.
prog=$(jq -c 'map(select(.type == "progress"))' <<<"$ev")
jq -e 'all(.[]; (.status | length > 0) and has("progress"))' <<<"$prog" \
    >/dev/null || fail "progress event without status/progress: $prog"
pairs=$(jq -r 'map([.status, .progress] | join(" ")) | join(", ")' <<<"$prog")
nprog=$(jq length <<<"$prog")
ndistinct=$(jq 'map([.status, .progress]) | unique | length' <<<"$prog")
assert_eq "$nprog" "$ndistinct" "progress events repeat a state ($pairs)"
jq -e '[range(1; length) as $i | .[$i] | [.status, .progress]]
    as $b | [range(0; length - 1) as $i | .[$i] | [.status, .progress]]
    as $a | [range(0; $a | length) | $a[.] != $b[.]] | all' <<<"$prog" \
    >/dev/null || fail "two equal progress events in a row: $pairs"
polls=$(jq -r .polls <<<"$r")
[ "$polls" -ge 8 ] || fail "e1 polled only $polls times (schedule 50 ms over 1 s)"
[ "$nprog" -le 4 ] ||
    fail "$nprog progress events for 2 progress steps over $polls polls: $pairs"
assert_eq "$(jq -r '.[-1] | "\(.status) \(.progress)"' <<<"$prog")" \
    "SUCCESS 100%" "last progress event"
pass "progress only on change: $nprog events over $polls polls ($pairs)"

# A FAILURE: finished says so.
enqueue_json '{"id":"e2","action":"imagine","body":{"prompt":"fail this cat"}}'
wait_until 15 "a result for e2" result_field e2 status
assert_eq "$(result_field e2 status)" FAILURE "e2 status"
[ -n "$(result_field e2 fail_reason)" ] || fail "e2 without fail_reason"
assert_eq "$(result_field e2 fail_reason)" \
    "$(result_field e2 task | jq -r .failReason)" "e2 fail_reason is upstream's"
assert_eq "$(events_of e2 | jq -sr 'map(.type) | join(",") | test("^taken,submitted,(progress,)+finished$")')" \
    true "e2 event sequence"
assert_eq "$(events_of e2 | jq -sr '.[-1].status')" FAILURE "e2 finished status"
pass "FAILURE: finished status FAILURE"

# --- worker_started once per start ------------------------------------------------------
assert_eq "$(started_count w1)" 1 "worker_started of w1"
events | jq -se 'map(select(.type == "worker_started")) | all(.[]; has("id") | not)' \
    >/dev/null || fail "worker_started carries a job id"
stop_proc w1
MJQ_POLL_SCHEDULE_MS=50 start_worker w1b
wait_until 10 "worker_started of w1b" eval '[ "$(started_count w1b)" -ge 1 ]'
enqueue_json '{"id":"e3","action":"shorten","body":{"prompt":"a cat"}}'
wait_until 15 "a result for e3" result_field e3 status
assert_eq "$(started_count w1b)" 1 "worker_started of w1b"
assert_eq "$(events | jq -s 'map(select(.type == "worker_started")) | length')" \
    2 "worker_started events for two starts"
pass "worker_started once per worker start"

# --- retry on a transient fault (HTTP 500), then FAILURE ---------------------------------
start_proc sim500 "$MJQ_BIN" sim --listen 127.0.0.1:0 --rate-500 1 \
    --port-file "$E2E_DIR/sim500.port" --key "$SIM_KEY"
wait_until 15 "the 500 simulator's port file" \
    grep -qE '^[0-9]+$' "$E2E_DIR/sim500.port"
url500="http://127.0.0.1:$(cat "$E2E_DIR/sim500.port")"
MJQ_QUEUES=q500 MJQ_API_BASE_URL=$url500 MJQ_SUBMIT_MAX_ATTEMPTS=3 \
    MJQ_RETRY_BASE_MS=50 MJQ_RETRY_MAX_MS=100 start_worker w500
enqueue_json '{"id":"rl1","action":"imagine","body":{"prompt":"a cat"}}' q500
wait_until 15 "a result for rl1" result_field rl1 status
r=$(result_json rl1)
assert_eq "$(jq -r .status <<<"$r")" FAILURE "rl1 status ($r)"
jq -e '.fail_reason | test("500")' <<<"$r" >/dev/null ||
    fail "rl1 fail_reason does not mention 500: $r"
assert_eq "$(jq -r '[.submits, .polls] | join(",")' <<<"$r")" 3,0 \
    "rl1 submits,polls"
assert_eq "$(jq -r 'has("task_id")' <<<"$r")" false "rl1 has no task_id"
ev=$(events_of rl1 | jq -s .)
assert_eq "$(jq -r 'map(.type) | join(",")' <<<"$ev")" \
    taken,retry,retry,finished "rl1 event sequence"
jq -e 'map(select(.type == "retry")) | all(.[]; (.reason | test("500"))
    and (.delay_ms | test("^[0-9]+$")) and (.delay_ms | tonumber) >= 25
    and (.delay_ms | tonumber) <= 100)' <<<"$ev" >/dev/null ||
    fail "retry events (reason with 500, delay_ms 25..100): $ev"
assert_eq "$(jq -r '.[-1].status' <<<"$ev")" FAILURE "rl1 finished status"
stats500=$(curl -sS --fail --max-time 5 "$url500/sim/stats")
assert_eq "$(jq -r '.faults["500"]' <<<"$stats500")" 3 "500s served"
assert_eq "$(jq -r .accepted <<<"$stats500")" 0 "accepted by the 500 sim"
pass "500: two retry events (reason, delay_ms), then FAILURE naming 500"

# --- a rate limit (HTTP 429) is waited out, not counted: TIMEOUT ---------------------------
start_proc sim429 "$MJQ_BIN" sim --listen 127.0.0.1:0 --rate-429 1 \
    --port-file "$E2E_DIR/sim429.port" --key "$SIM_KEY"
wait_until 15 "the 429 simulator's port file" \
    grep -qE '^[0-9]+$' "$E2E_DIR/sim429.port"
url429="http://127.0.0.1:$(cat "$E2E_DIR/sim429.port")"
MJQ_QUEUES=q429 MJQ_API_BASE_URL=$url429 MJQ_SUBMIT_MAX_ATTEMPTS=3 \
    MJQ_RETRY_BASE_MS=50 MJQ_RETRY_MAX_MS=100 start_worker w429
enqueue_json '{"id":"rl2","action":"imagine","timeout_s":2,"body":{"prompt":"a cat"}}' q429
wait_until 15 "a result for rl2" result_field rl2 status
r=$(result_json rl2)
assert_eq "$(jq -r .status <<<"$r")" TIMEOUT "rl2 status ($r)"
jq -e '.fail_reason | test("429")' <<<"$r" >/dev/null ||
    fail "rl2 fail_reason does not name the last trouble (429): $r"
[ "$(jq -r .submits <<<"$r")" -gt 3 ] ||
    fail "rl2: 429s counted as failed attempts (submits $(jq -r .submits <<<"$r"), max attempts 3)"
ev=$(events_of rl2 | jq -s .)
jq -e 'map(select(.type == "retry")) | length > 2 and
    all(.[]; .reason | test("429"))' <<<"$ev" >/dev/null ||
    fail "rl2 retry events (all naming 429): $ev"
pass "429: retried past submit_max_attempts without counting, TIMEOUT naming 429"
