#!/usr/bin/env bash
# ctest-timeout: 120
# Hostile payloads: not JSON, binary garbage with NUL bytes, 3 MB over a
# 1 MiB max_job_bytes, 10000 levels of nesting, a 10 KB id, wrong types,
# JSON that is not an object. After each one the worker is still alive,
# the payload got exactly one INVALID result and one mjq:dead entry, and
# the next valid job succeeds.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_redis
start_sim --duration-ms 200
Q=mjq:queue:default

MJQ_WORKER_ID=bad-w1 start_worker w1 --poll-schedule-ms 50 --max-job-bytes 1048576

n_bad=0
n_good=0

# wait_alive NAME SECS DESC CMD...: wait_until CMD, but stop at once (and
# fail) if process NAME died meanwhile.
dead_or() { ! proc_alive "$1" || "${@:2}"; }
wait_alive()
{
    wait_until "$2" "$3" dead_or "$1" "${@:4}"
    proc_alive "$1" || fail "'$1' died while waiting for: $3 (see its log)"
}

invalid_count()
{
    rcli --json XRANGE mjq:results - + |
        jq '[.[] | .[1] as $kv | [range(0; $kv | length; 2)
             | {($kv[.]): $kv[. + 1]}] | add | select(.status == "INVALID")]
            | length'
}

# The newest mjq:dead entry as {"field": "value", ...}.
newest_dead()
{
    rcli --json XREVRANGE mjq:dead + - COUNT 1 |
        jq -c '.[0][1] as $kv | [range(0; $kv | length; 2)
               | {($kv[.]): $kv[. + 1]}] | add'
}

at_least() { [ "$("$2")" -ge "$1" ]; }
dead_len() { rcli XLEN mjq:dead; }

# after_bad DESC [ID]: the bad payload just pushed gets one INVALID result
# (for ID when given, else with an empty id) and one dead entry; the
# worker survives and a valid job right after it succeeds.
after_bad()
{
    local desc=$1 id=${2:-} good
    n_bad=$((n_bad + 1))
    wait_alive w1 20 "INVALID result #$n_bad ($desc)" at_least "$n_bad" \
        invalid_count
    wait_alive w1 10 "dead entry #$n_bad ($desc)" at_least "$n_bad" dead_len
    proc_alive w1 || fail "worker died after: $desc"
    assert_eq "$(newest_dead | jq -r .id)" "$id" "$desc: dead entry id"
    [ -n "$(newest_dead | jq -r .error)" ] || fail "$desc: dead entry error"
    if [ -n "$id" ]; then
        assert_eq "$(results_for "$id")" 1 "$desc: results for $id"
        assert_eq "$(result_field "$id" status)" INVALID "$desc: status"
        [ -n "$(result_field "$id" fail_reason)" ] ||
            fail "$desc: no fail_reason"
    fi

    n_good=$((n_good + 1))
    good="good-$n_good"
    enqueue_json "{\"id\":\"$good\",\"action\":\"imagine\",\"body\":{\"prompt\":\"ok $n_good\"}}"
    wait_alive w1 20 "a result for $good (after: $desc)" \
        result_field "$good" status
    assert_eq "$(result_field "$good" status)" SUCCESS "$good after: $desc"
    assert_eq "$(invalid_count)" "$n_bad" "INVALID results after: $desc"
    assert_eq "$(dead_len)" "$n_bad" "dead entries after: $desc"
    proc_alive w1 || fail "worker died after a valid job following: $desc"
    pass "$desc"
}

# --- not JSON ----------------------------------------------------------------
enqueue_json 'this is {not json'
after_bad "not JSON"
assert_eq "$(newest_dead | jq -r .payload)" 'this is {not json' \
    "dead entry keeps the raw payload"
grep -q 'not valid JSON' <<<"$(newest_dead | jq -r .error)" ||
    fail "dead error: $(newest_dead | jq -r .error)"

enqueue_json ''
after_bad "empty payload"

# --- binary garbage with NUL bytes, pushed as raw bytes ------------------------
head -c 2000 /dev/urandom >"$E2E_DIR/garbage.bin"
printf '\x00{"id":"nul1"\x00,"action":"imagine"}\xff\xfe\x00' \
    >>"$E2E_DIR/garbage.bin"
rcli -x LPUSH $Q <"$E2E_DIR/garbage.bin" >/dev/null
after_bad "binary garbage with NUL bytes"
# The dead entry keeps every byte: payload is its last field, so the raw
# reply ends with the payload and a newline.
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --raw XREVRANGE mjq:dead + - COUNT 1 \
    >"$E2E_DIR/dead.raw"
tail -c $(($(stat -c %s "$E2E_DIR/garbage.bin") + 1)) "$E2E_DIR/dead.raw" |
    head -c -1 | cmp -s - "$E2E_DIR/garbage.bin" ||
    fail "the dead entry does not hold the binary payload byte for byte"

# A valid object with a NUL inside a string value is fine JSON ("\u0000"),
# but a raw NUL in the middle of otherwise valid JSON is not.
printf '{"id":"nul2","action":"imagine","body":{"prompt":"a\x00b"}}' \
    >"$E2E_DIR/nul2.bin"
rcli -x LPUSH $Q <"$E2E_DIR/nul2.bin" >/dev/null
after_bad "raw NUL inside a JSON string" nul2

# --- 3 MB, over max_job_bytes = 1 MiB -------------------------------------------
{
    printf '{"id":"huge1","action":"imagine","body":{"prompt":"'
    head -c 3145728 /dev/zero | tr '\0' 'a'
    printf '"}}'
} >"$E2E_DIR/huge.json"
rcli -x LPUSH $Q <"$E2E_DIR/huge.json" >/dev/null
# Not parsed as a whole, but its id is still readable.
after_bad "3 MB payload over a 1 MiB limit" huge1
grep -q 'too large' <<<"$(newest_dead | jq -r .error)" ||
    fail "huge payload error: $(newest_dead | jq -r .error)"
assert_eq "$(newest_dead | jq -r '.payload | length')" \
    "$(stat -c %s "$E2E_DIR/huge.json")" "dead entry keeps the whole payload"

# --- 10000 levels of nesting ------------------------------------------------------
{
    printf '{"id":"deep1","action":"imagine","body":{"prompt":"x","n":'
    head -c 10000 /dev/zero | tr '\0' '['
    head -c 10000 /dev/zero | tr '\0' ']'
    printf '}}'
} >"$E2E_DIR/deep.json"
rcli -x LPUSH $Q <"$E2E_DIR/deep.json" >/dev/null
after_bad "10000 levels of nesting" deep1
{
    head -c 10000 /dev/zero | tr '\0' '{' | sed 's/{/{"a":/g'
    printf '1'
    head -c 10000 /dev/zero | tr '\0' '}'
} >"$E2E_DIR/deep2.json"
rcli -x LPUSH $Q <"$E2E_DIR/deep2.json" >/dev/null
after_bad "10000 nested objects"

# --- a 10 KB id --------------------------------------------------------------------
{
    printf '{"id":"'
    head -c 10240 /dev/zero | tr '\0' 'i'
    printf '","action":"imagine","body":{"prompt":"x"}}'
} >"$E2E_DIR/longid.json"
rcli -x LPUSH $Q <"$E2E_DIR/longid.json" >/dev/null
after_bad "10 KB id"
long=$(head -c 129 /dev/zero | tr '\0' 'i')
enqueue_json "{\"id\":\"$long\",\"action\":\"imagine\",\"body\":{\"prompt\":\"x\"}}"
after_bad "129-character id"

# --- wrong types ---------------------------------------------------------------------
enqueue_json '{"id":12345,"action":"imagine","body":{"prompt":"x"}}'
after_bad "numeric id"
enqueue_json '{"id":"wt-body","action":"imagine","body":"a prompt"}'
after_bad "body is a string" wt-body
enqueue_json '{"id":"wt-action","action":["imagine"],"body":{"prompt":"x"}}'
after_bad "action is an array" wt-action
enqueue_json '{"id":"wt-timeout","action":"imagine","body":{"prompt":"x"},"timeout_s":"60"}'
after_bad "timeout_s is a string" wt-timeout
enqueue_json '{"id":"wt-reply","action":"imagine","body":{"prompt":"x"},"reply_to":7}'
after_bad "reply_to is a number" wt-reply
enqueue_json '{"id":"wt-mode","action":"imagine","body":{"prompt":"x"},"mode":true}'
after_bad "mode is a boolean" wt-mode
enqueue_json '{"id":"wt-dup","id":"wt-dup2","action":"imagine","body":{"prompt":"x"}}'
after_bad "duplicate keys"

# --- JSON that is not an object --------------------------------------------------------
for payload in '[1,2,3]' '"just a string"' 'null' '42'; do
    enqueue_json "$payload"
    after_bad "payload $payload"
done
enqueue_json '{"id":"trail","action":"imagine","body":{"prompt":"x"}} trailing'
after_bad "trailing garbage after the object" trail

# Nothing was submitted for any bad payload: the sim saw only good jobs.
assert_eq "$(sim_stat accepted)" "$n_good" "accepted submits (good jobs only)"
assert_eq "$(results_count)" $((n_bad + n_good)) "one result per payload"
assert_eq "$(rcli LLEN mjq:processing:bad-w1)" 0 "processing list empty"
stop_proc w1 TERM 15
assert_eq "$(proc_status w1)" 0 "worker exit status"
pass "$n_bad bad payloads, $n_good good jobs, worker clean"
