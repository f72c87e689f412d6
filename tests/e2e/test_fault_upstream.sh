#!/usr/bin/env bash
# ctest-timeout: 180
# Upstream trouble, for each dialect (novicezk, trueai, newapi):
#  - permanent answers fail at once with the upstream's reason: banned
#    prompt, "fail" prompt, action on a missing parent, unknown customId,
#    a task that vanishes;
#  - a wrong API key (never printed anywhere) takes the account out of
#    rotation (an "account" event) and its job waits, ending TIMEOUT;
#  - numeric task ids work (and a follow-up action on one);
#  - submits that time out are retried and succeed once the API answers,
#    with one accepted submit.
# (Fault storms per dialect: test_upstream_storm.sh.)
# Two workers live through every simulator restart (same port): w1 with
# the right key, wk with a wrong one on its own queue.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_redis
start_sim --dialect novicezk --duration-ms 200
WRONG=wrong-key-Zq7x9
deferred=()

# wait_alive NAME SECS DESC CMD...: wait_until CMD, but stop at once (and
# fail) if process NAME died meanwhile.
dead_or() { ! proc_alive "$1" || "${@:2}"; }
wait_alive()
{
    wait_until "$2" "$3" dead_or "$1" "${@:4}"
    proc_alive "$1" || fail "'$1' died while waiting for: $3 (see its log)"
}

export MJQ_RETRY_BASE_MS=20 MJQ_RETRY_MAX_MS=200 MJQ_SUBMIT_MAX_ATTEMPTS=30
export MJQ_POLL_SCHEDULE_MS=50 MJQ_API_TIMEOUT_MS=500 MJQ_CONCURRENCY=100
MJQ_WORKER_ID=fu-w1 start_worker w1
MJQ_WORKER_ID=fu-wk MJQ_API_KEY=$WRONG MJQ_QUEUES=wrongkey \
    MJQ_API_PROBE_INTERVAL_MS=1000 start_worker wk

job() # ID ACTION BODY [QUEUE]
{
    enqueue_json "{\"id\":\"$1\",\"action\":\"$2\",\"body\":$3}" "${4:-default}"
}

# The wrong-key jobs are wk's, the others w1's.
wait_result()
{
    local w=w1
    [[ $1 == *-key ]] && w=wk
    wait_alive "$w" "${2:-20}" "a result for $1" result_field "$1" status
}

field() { result_field "$1" "$2" || true; }

# expect ID STATUS: exactly one result for ID, with STATUS.
expect()
{
    wait_result "$1"
    assert_eq "$(result_field "$1" status)" "$2" \
        "$1 status (fail_reason: $(field "$1" fail_reason))"
    assert_eq "$(results_for "$1")" 1 "results for $1"
}

# expect_reason ID TEXT: fail_reason contains TEXT (fixed string).
expect_reason()
{
    grep -qF -- "$2" <<<"$(field "$1" fail_reason)" ||
        fail "$1: fail_reason '$(field "$1" fail_reason)' lacks '$2'"
}

defer()
{
    deferred+=("$*")
    echo "DEFERRED FAIL: $*" >&2
}

for d in novicezk trueai newapi; do
    # --- permanent answers ---------------------------------------------------------
    restart_sim --dialect "$d" --duration-ms 200
    job "$d-ok" imagine '{"prompt":"a red cat"}'
    expect "$d-ok" SUCCESS
    parent=$(result_field "$d-ok" task_id)
    u1=$(result_field "$d-ok" buttons | jq -r '.[] | select(.label == "U1") | .customId')
    [ -n "$u1" ] || fail "$d: no U1 button in $(field "$d-ok" buttons)"

    job "$d-banned" imagine '{"prompt":"a banned thing"}'
    job "$d-fail" imagine '{"prompt":"please fail"}'
    job "$d-orphan" action '{"taskId":"1999999999999999","customId":"MJ::JOB::upsample::1::0d0e0f"}'
    job "$d-badcid" action "{\"taskId\":\"$parent\",\"customId\":\"MJ::JOB::nope::9\"}"
    job "$d-vanish" imagine '{"prompt":"vanish"}'
    enqueue_json "{\"id\":\"$d-key\",\"action\":\"imagine\",\"timeout_s\":3,\"body\":{\"prompt\":\"a cat with a wrong key\"}}" wrongkey

    expect "$d-banned" FAILURE
    expect_reason "$d-banned" "可能包含敏感词"
    if [ "$d" = novicezk ]; then
        # Refused at submit (code 24): one submit, no task.
        assert_eq "$(field "$d-banned" submits)" 1 "$d-banned submits"
        assert_eq "$(field "$d-banned" task_id)" "" "$d-banned task_id"
        assert_eq "$(sim_accepted_for "$d-banned")" 0 "$d-banned accepted"
    else
        # Accepted, then the task fails with failReason.
        assert_eq "$(field "$d-banned" fail_reason)" "可能包含敏感词" \
            "$d-banned fail_reason (the task's failReason)"
        [ -n "$(field "$d-banned" task_id)" ] || fail "$d-banned: no task_id"
        assert_eq "$(sim_accepted_for "$d-banned")" 1 "$d-banned accepted"
    fi

    expect "$d-fail" FAILURE
    if [ "$d" = novicezk ]; then
        assert_eq "$(field "$d-fail" fail_reason)" \
            "[Invalid parameter] Invalid value" "$d-fail fail_reason"
    else
        assert_eq "$(field "$d-fail" fail_reason)" \
            "Invalid parameter, Invalid value" "$d-fail fail_reason"
    fi
    [ -n "$(field "$d-fail" task)" ] || fail "$d-fail: no task in the result"

    expect "$d-orphan" FAILURE
    assert_eq "$(field "$d-orphan" submits)" 1 "$d-orphan submits (no retry)"
    reason=$(field "$d-orphan" fail_reason)
    if ! grep -qi parent <<<"$reason" || ! grep -qiE 'not[ _]found' <<<"$reason"; then
        defer "$d: action on a missing parent: fail_reason '$reason' does not say parent task not found"
    fi

    expect "$d-badcid" FAILURE
    assert_eq "$(field "$d-badcid" submits)" 1 "$d-badcid submits (no retry)"
    expect_reason "$d-badcid" "未知的 Action 类型"

    expect "$d-vanish" FAILURE
    assert_eq "$(field "$d-vanish" fail_reason)" "task lost upstream" \
        "$d-vanish fail_reason"
    assert_eq "$(sim_accepted_for "$d-vanish")" 1 "$d-vanish accepted"

    # A refused key takes the account out of rotation: the job is not
    # failed for it but waits (here until its 3 s deadline), and the
    # account is not asked again until a probe finds it healthy.
    expect "$d-key" TIMEOUT
    [ "$(field "$d-key" submits)" -le 1 ] ||
        fail "$d-key submits: $(field "$d-key" submits), want at most 1"
    reason=$(field "$d-key" fail_reason)
    grep -qi 'key' <<<"$reason" || fail "$d-key: reason '$reason' does not mention the key"
    grep -q 'out of rotation' <<<"$reason" ||
        fail "$d-key: reason '$reason' does not say the account is out of rotation"
    assert_eq "$(sim_accepted_for "$d-key")" 0 "$d-key accepted"
    events_of account | jq -s -e 'any(.[]; .worker == "fu-wk" and
        .account == "default" and .change == "left_rotation" and
        .state == "out of rotation" and (.reason | test("key")))' \
        >/dev/null || fail "no account event: default left rotation in fu-wk"
    pass "$d: banned, fail, missing parent, bad customId, vanish, wrong key"

    # --- numeric task ids -----------------------------------------------------------
    restart_sim --dialect "$d" --duration-ms 200 --numeric-ids
    job "$d-num" imagine '{"prompt":"a numeric cat"}'
    expect "$d-num" SUCCESS
    num=$(result_field "$d-num" task_id)
    [[ $num =~ ^[1-9][0-9]*$ ]] || fail "$d-num task_id '$num' is not digits"
    u1=$(result_field "$d-num" buttons | jq -r '.[] | select(.label == "U1") | .customId')
    job "$d-num-up" action "{\"taskId\":\"$num\",\"customId\":\"$u1\"}"
    expect "$d-num-up" SUCCESS
    [[ $(result_field "$d-num-up" task_id) =~ ^[1-9][0-9]*$ ]] ||
        fail "$d-num-up task_id"
    assert_eq "$(sim_stat accepted)" 2 "$d numeric: accepted submits"
    pass "$d: numeric task ids, and an action on one"

    # --- submits that time out, then an API that answers ------------------------------
    restart_sim --dialect "$d" --rate-slow 1 --slow-ms 3000
    for i in 1 2 3; do
        job "$d-slow-$i" imagine "{\"prompt\":\"slow cat $i\"}"
    done
    retried() { [ "$(rcli XRANGE mjq:events - + | grep -cx retry)" -ge "$1" ]; }
    before=$(rcli XRANGE mjq:events - + | grep -cx retry || true)
    wait_alive w1 15 "the timed-out submits retried" retried $((before + 6))
    rcli XLEN mjq:results >/dev/null
    for i in 1 2 3; do
        ! result_field "$d-slow-$i" status >/dev/null ||
            fail "$d-slow-$i ended while the API was slow: $(result_json "$d-slow-$i")"
    done
    restart_sim --dialect "$d" --duration-ms 200
    for i in 1 2 3; do
        expect "$d-slow-$i" SUCCESS
        assert_eq "$(sim_accepted_for "$d-slow-$i")" 1 "$d-slow-$i accepted"
        [ "$(field "$d-slow-$i" submits)" -ge 2 ] ||
            fail "$d-slow-$i submits $(field "$d-slow-$i" submits), want >= 2"
    done
    pass "$d: timed-out submits retried, SUCCESS once the API answered"

done

# --- no key in any log, result or event ---------------------------------------------
for f in "$(log_file w1)" "$(log_file wk)"; do
    for k in "$WRONG" "$SIM_KEY"; do
        if grep -qF -- "$k" "$f"; then
            fail "$(basename "$f") contains an API key: $(grep -F -- "$k" "$f" | head -n 2)"
        fi
    done
done
rcli --json XRANGE mjq:events - + >"$E2E_DIR/events.json"
rcli --json XRANGE mjq:results - + >"$E2E_DIR/results.json"
for k in "$WRONG" "$SIM_KEY"; do
    ! grep -qF -- "$k" "$E2E_DIR/events.json" || fail "an event contains an API key"
    ! grep -qF -- "$k" "$E2E_DIR/results.json" || fail "a result contains an API key"
done
proc_alive w1 || fail "w1 died"
proc_alive wk || fail "wk died"
pass "no API key in logs, results or events"

if [ "${#deferred[@]}" -gt 0 ]; then
    fail "${deferred[*]}"
fi
