#!/usr/bin/env bash
# ctest-timeout: 90
# Contract §1-§2, CANCEL and TIMEOUT: `SET mjq:cancel:<id> 1` on a running
# task ends it as CANCEL within one poll interval (plus margin); set before
# the push, nothing is submitted; a task cancelled upstream is CANCEL;
# `timeout_s` and the configured default (MJQ_JOB_TIMEOUT_S) end a task
# that never finishes as TIMEOUT at the deadline, whatever the poll
# schedule; both keep the task_id and the last fetched task.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_redis
start_sim --duration-ms 20000
MJQ_POLL_SCHEDULE_MS=200 start_worker w1
# Default deadline of 1 s, on its own prefix.
MJQ_PREFIX=t2: MJQ_JOB_TIMEOUT_S=1 MJQ_POLL_SCHEDULE_MS=200 start_worker w2
# Polls far apart: the deadline must still be kept.
MJQ_PREFIX=t3: MJQ_POLL_SCHEDULE_MS=3000 start_worker w3

job() { echo "{\"id\":\"$1\",\"action\":\"imagine\",\"body\":{\"prompt\":\"$2\"}${3-}}"; }

# Fields of the events of job $1 on stream $2 (default mjq:events), one
# JSON object a line.
events_of()
{
    rcli --json XRANGE "${2:-mjq:events}" - + |
        jq -c --arg id "$1" '.[] | .[1] as $kv | [range(0; $kv | length; 2)
            | {($kv[.]): $kv[. + 1]}] | add | select(.id == $id)'
}

has_event()
{
    events_of "$1" "${3:-}" | jq -se --arg t "$2" 'any(.[]; .type == $t)' >/dev/null
}

# Checks later, all together, what is known to be fragile, so that one
# failure does not hide the next.
problems=()
check()
{
    [ "$1" = "$2" ] || problems+=("$3: got '$1', want '$2'")
}

# The last fetched task is in the result ("task: once fetched").
check_task()
{
    local id=$1 stream=${2:-} r
    r=$(result_json "$id" "$stream")
    check "$(jq -r '(.task // "{}") | fromjson | .id // "(no task field)"' <<<"$r")" \
        "$(jq -r .task_id <<<"$r")" "$id (${3:-}): task.id after $(jq -r .polls <<<"$r") poll(s)"
}

# --- cancel while the task runs ----------------------------------------------------------
enqueue_json "$(job c1 "a slow cat")"
wait_until 10 "c1 polled at least once" has_event c1 progress
task=$(events_of c1 | jq -r 'select(.type == "submitted") | .task_id')
t0=$(now_ms)
rcli SET mjq:cancel:c1 1 >/dev/null
wait_until 5 "a result for c1" result_field c1 status
r=$(result_json c1)
assert_eq "$(jq -r .status <<<"$r")" CANCEL "c1 status ($r)"
elapsed=$(($(jq -r .finished_ms <<<"$r") - t0))
[ "$elapsed" -le 1000 ] ||
    fail "c1: CANCEL ${elapsed} ms after the cancel key (poll every 200 ms)"
[ -n "$(jq -r '.fail_reason // ""' <<<"$r")" ] || fail "c1: no fail_reason"
assert_eq "$(jq -r .task_id <<<"$r")" "$task" "c1 task_id"
assert_eq "$(jq -r .submits <<<"$r")" 1 "c1 submits"
[ "$(jq -r .polls <<<"$r")" -ge 1 ] || fail "c1 polls: $r"
assert_eq "$(sim_accepted_for c1)" 1 "c1 accepted upstream"
check_task c1 "" CANCEL
pass "cancel key on a running task: CANCEL after ${elapsed} ms"

# --- cancel key set before the push ------------------------------------------------------
submits=$(sim_stat submits)
rcli SET mjq:cancel:c2 1 >/dev/null
enqueue_json "$(job c2 "a cat")"
wait_until 5 "a result for c2" result_field c2 status
r=$(result_json c2)
assert_eq "$(jq -r .status <<<"$r")" CANCEL "c2 status ($r)"
[ -n "$(jq -r '.fail_reason // ""' <<<"$r")" ] || fail "c2: no fail_reason"
assert_eq "$(jq -r '[.submits, .polls] | join(",")' <<<"$r")" 0,0 \
    "c2 submits,polls"
assert_eq "$(jq -r 'has("task_id")' <<<"$r")" false "c2 has no task_id"
assert_eq "$(sim_accepted_for c2)" 0 "c2 accepted upstream"
assert_eq "$(sim_stat submits)" "$submits" "submits upstream"
pass "cancel key before the push: CANCEL, nothing submitted"

# --- cancelled upstream (novicezk reports CANCEL) -------------------------------------------
start_proc simnz "$MJQ_BIN" sim --listen 127.0.0.1:0 --dialect novicezk \
    --port-file "$E2E_DIR/simnz.port" --key "$SIM_KEY" --duration-ms 20000
wait_until 15 "the novicezk simulator's port file" \
    grep -qE '^[0-9]+$' "$E2E_DIR/simnz.port"
nz_url="http://127.0.0.1:$(cat "$E2E_DIR/simnz.port")"
MJQ_PREFIX=nz: MJQ_API_BASE_URL=$nz_url MJQ_POLL_SCHEDULE_MS=200 \
    start_worker w4
MJQ_PREFIX=nz: enqueue_json "$(job c3 "a slow cat")"
wait_until 10 "c3 polled" has_event c3 progress nz:events
nz_task=$(events_of c3 nz:events | jq -r 'select(.type == "submitted") | .task_id')
curl -sS --fail --max-time 5 -X POST -H "Authorization: Bearer $SIM_KEY" \
    "$nz_url/mj/task/$nz_task/cancel" >/dev/null
MJQ_PREFIX=nz: wait_until 5 "a result for c3" result_field c3 status
r=$(MJQ_PREFIX=nz: result_json c3)
assert_eq "$(jq -r .status <<<"$r")" CANCEL "c3 status ($r)"
assert_eq "$(jq -r .task_id <<<"$r")" "$nz_task" "c3 task_id"
[ -n "$(jq -r '.fail_reason // ""' <<<"$r")" ] || fail "c3: no fail_reason"
assert_eq "$(jq -r '.task | fromjson | .status' <<<"$r")" CANCEL "c3 task"
pass "cancelled upstream: CANCEL"

# --- timeout_s on a task that never ends -----------------------------------------------------
t0=$(now_ms)
enqueue_json "$(job to1 "forever cat" ',"timeout_s":1')"
enqueue_json "$(job to5 "forever cat" ',"timeout_s":1.5')"
MJQ_PREFIX=t2: enqueue_json "$(job to2 "forever cat")"
MJQ_PREFIX=t2: enqueue_json "$(job to3 "forever cat" ',"timeout_s":3')"
MJQ_PREFIX=t3: enqueue_json "$(job to4 "forever cat" ',"timeout_s":1')"
wait_until 10 "a result for to1" result_field to1 status
wait_until 10 "a result for to5" result_field to5 status
MJQ_PREFIX=t2: wait_until 10 "a result for to2" result_field to2 status
MJQ_PREFIX=t2: wait_until 10 "a result for to3" result_field to3 status
MJQ_PREFIX=t3: wait_until 10 "a result for to4" result_field to4 status

# timed_out ID MIN_MS MAX_MS NOTE: TIMEOUT between MIN and MAX ms after take.
timed_out()
{
    local id=$1 min=$2 max=$3 note=$4 r took
    r=$(result_json "$id")
    assert_eq "$(jq -r .status <<<"$r")" TIMEOUT "$id status ($note) ($r)"
    [ -n "$(jq -r '.fail_reason // ""' <<<"$r")" ] || fail "$id: no fail_reason"
    [[ $(jq -r .task_id <<<"$r") =~ ^[0-9]+$ ]] || fail "$id: no task_id: $r"
    assert_eq "$(jq -r .submits <<<"$r")" 1 "$id submits"
    took=$(($(jq -r '.finished_ms | tonumber' <<<"$r") - $(jq -r '.started_ms | tonumber' <<<"$r")))
    # (The deadline runs on the monotonic clock, *_ms on the wall clock,
    # each truncated to ms: allow 10 ms.)
    [ "$took" -ge $((min - 10)) ] ||
        fail "$id ($note): TIMEOUT after only $took ms"
    if [ "$took" -gt "$max" ]; then
        problems+=("$id ($note): TIMEOUT $took ms after the take, want <= $max")
    elif [ "$(($(jq -r .finished_ms <<<"$r") - t0))" -gt $((max + 500)) ]; then
        problems+=("$id ($note): TIMEOUT $(($(jq -r .finished_ms <<<"$r") - t0)) ms after the push, want <= $((max + 500))")
    fi
    TOOK=$took
}
timed_out to1 1000 2500 "timeout_s 1"
took1=$TOOK
MJQ_PREFIX=t2: timed_out to2 1000 2500 "MJQ_JOB_TIMEOUT_S=1"
took2=$TOOK
MJQ_PREFIX=t2: timed_out to3 3000 4500 "timeout_s 3 over MJQ_JOB_TIMEOUT_S=1"
took3=$TOOK
pass "TIMEOUT: timeout_s 1 after $took1 ms, default 1 s after $took2 ms, timeout_s 3 after $took3 ms"
check_task to1 "" TIMEOUT
MJQ_PREFIX=t2: check_task to2 "" TIMEOUT
MJQ_PREFIX=t3: timed_out to4 1000 2500 "timeout_s 1, polls every 3 s"
# A fractional timeout_s is a deadline in ms (next poll at most 200 ms on).
timed_out to5 1500 1800 "timeout_s 1.5, polls every 200 ms"

if [ "${#problems[@]}" -gt 0 ]; then
    printf 'FAIL: %s\n' "${problems[@]}" >&2
    fail "${#problems[@]} problem(s) (listed above)"
fi
pass "the deadline holds with a slow poll schedule; task kept on CANCEL/TIMEOUT"
