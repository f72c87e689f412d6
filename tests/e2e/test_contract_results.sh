#!/usr/bin/env bash
# ctest-timeout: 90
# Contract §1-§2, results: every INVALID variety gives exactly one INVALID
# result (fail_reason naming the field, id when readable, action when
# readable, nothing submitted upstream) and keeps the raw payload byte for
# byte on mjq:dead (id, error, worker, ts, payload); max_job_bytes is
# exclusive; the worker keeps serving; meta is echoed verbatim; reply_to
# routes the result; unknown top-level fields are ignored; the processing
# list is empty afterwards; finished jobs' records expire after the dedup
# window.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_redis
start_sim --duration-ms 300
WINDOW=5000
MJQ_MAX_JOB_BYTES=2048 MJQ_DEDUP_WINDOW_S=$WINDOW MJQ_POLL_SCHEDULE_MS=50,100 \
    start_worker w1

DEAD=mjq:dead

# The newest entry of the dead stream as JSON: its fields (payload replaced
# by payload_equal = 1 when byte-identical to $1, and payload_len) and
# "fields", the field names in order.
dead_last_lua='
local e = redis.call("XREVRANGE", KEYS[1], "+", "-", "COUNT", 1)[1]
if not e then return "" end
local out, names = {}, {}
for i = 1, #e[2], 2 do
  local k, v = e[2][i], e[2][i + 1]
  names[#names + 1] = k
  if k == "payload" then
    out.payload_equal = (v == ARGV[1]) and 1 or 0
    out.payload_len = #v
  else
    out[k] = v
  end
end
out.fields = table.concat(names, ",")
return cjson.encode(out)'

# The newest entry of mjq:results as JSON.
last_result()
{
    rcli --json XREVRANGE "$(results_key)" + - COUNT 1 |
        jq -c '.[0][1] as $kv | [range(0; $kv | length; 2)
               | {($kv[.]): $kv[. + 1]}] | add'
}

# A word match: FIELD in TEXT, not as part of a longer name ("id" is not
# found in "invalid").
names_field()
{
    [[ $1 =~ (^|[^A-Za-z_])$2([^A-Za-z_]|$) ]]
}

# invalid PAYLOAD WANT_ID WANT_ACTION FIELD: pushes one invalid payload,
# waits for its one result and checks it and its mjq:dead entry. Sets
# INV_RESULT. The id check is deferred (see the end) when WANT_ID starts
# with "?".
declare -A DEFERRED_ID=()
invalid()
{
    local payload=$1 want_id=$2 want_action=$3 field=$4 n nd r d
    n=$(results_count)
    nd=$(rcli XLEN $DEAD)
    rcli LPUSH mjq:queue:default "$payload" >/dev/null
    wait_results $((n + 1)) 10
    r=$(last_result)
    INV_RESULT=$r
    assert_eq "$(jq -r .status <<<"$r")" INVALID "status of <$payload> ($r)"
    if [[ $want_id == \?* ]]; then
        DEFERRED_ID[${want_id#\?}]=$(jq -r .id <<<"$r")
    else
        assert_eq "$(jq -r .id <<<"$r")" "$want_id" "id of <$payload>"
    fi
    assert_eq "$(jq -r .action <<<"$r")" "$want_action" \
        "action of <$payload>"
    names_field "$(jq -r .fail_reason <<<"$r")" "$field" ||
        fail "fail_reason of <$payload> does not name '$field': $r"
    assert_eq "$(jq -r '[.submits, .polls] | join(",")' <<<"$r")" 0,0 \
        "submits,polls of <$payload>"
    assert_eq "$(jq -c '[has("task_id"), has("task"), has("image_url"),
        has("buttons")]' <<<"$r")" '[false,false,false,false]' \
        "no upstream fields for <$payload>"
    [ -n "$(jq -r .worker <<<"$r")" ] || fail "no worker for <$payload>"
    [[ $(jq -r .finished_ms <<<"$r") =~ ^[0-9]{13}$ ]] ||
        fail "finished_ms of <$payload>: $r"
    # The raw payload, byte for byte, on mjq:dead.
    assert_eq "$(rcli XLEN $DEAD)" $((nd + 1)) "one dead entry for <$payload>"
    d=$(rcli EVAL "$dead_last_lua" 1 $DEAD "$payload")
    assert_eq "$(jq -r .fields <<<"$d")" id,error,worker,ts,payload \
        "dead entry fields for <$payload>"
    assert_eq "$(jq -r .payload_equal <<<"$d")" 1 \
        "dead payload byte-identical for <$payload> ($(jq -r .payload_len <<<"$d") bytes)"
    assert_eq "$(jq -r .id <<<"$d")" "$(jq -r .id <<<"$r")" "dead id"
    assert_eq "$(jq -r .worker <<<"$d")" "$(jq -r .worker <<<"$r")" \
        "dead worker"
    names_field "$(jq -r .error <<<"$d")" "$field" ||
        fail "dead error of <$payload> does not name '$field': $d"
    [[ $(jq -r .ts <<<"$d") =~ ^[0-9]{13}$ ]] || fail "dead ts: $d"
}

# --- every INVALID variety --------------------------------------------------------
invalid $'not json {\n "café": ☕' "" "" '\(payload\)'
jq -e '.fail_reason | test("JSON")' <<<"$INV_RESULT" >/dev/null ||
    fail "not-JSON reason does not say JSON: $INV_RESULT"
invalid '[{"id":"arr1","action":"imagine","body":{"prompt":"x"}}]' "" "" \
    '\(payload\)'
jq -e '.fail_reason | test("object")' <<<"$INV_RESULT" >/dev/null ||
    fail "array reason does not say object: $INV_RESULT"
invalid '"just a string"' "" "" '\(payload\)'
invalid '{"action":"imagine","body":{"prompt":"x"}}' "" imagine id
jq -e '.fail_reason | test("missing")' <<<"$INV_RESULT" >/dev/null ||
    fail "missing-id reason does not say missing: $INV_RESULT"
invalid '{"id":"bad id!","action":"imagine","body":{"prompt":"x"}}' "" \
    imagine id
invalid '{"id":42,"action":"imagine","body":{"prompt":"x"}}' "" imagine id
invalid "{\"id\":\"$(printf 'x%.0s' $(seq 1 129))\",\"action\":\"imagine\",\"body\":{}}" \
    "" imagine id
invalid '{"id":"inv-noaction","body":{"prompt":"x"}}' inv-noaction "" action
invalid '{"id":"inv-badaction","action":"paint","body":{"prompt":"x"}}' \
    inv-badaction "" action
invalid '{"id":"inv-actiontype","action":["imagine"],"body":{}}' \
    inv-actiontype "" action
invalid '{"id":"inv-body","action":"imagine","body":"a cat"}' inv-body \
    imagine body
invalid '{"id":"inv-nobody","action":"describe"}' inv-nobody describe body
invalid '{"id":"inv-mode","action":"imagine","body":{"prompt":"x"},"mode":"slow"}' \
    inv-mode imagine mode
invalid '{"id":"inv-timeout","action":"shorten","body":{"prompt":"x"},"timeout_s":0}' \
    inv-timeout shorten timeout_s
invalid '{"id":"inv-timeout-neg","action":"blend","body":{},"timeout_s":-3}' \
    inv-timeout-neg blend timeout_s
invalid '{"id":"inv-timeout-str","action":"modal","body":{},"timeout_s":"10"}' \
    inv-timeout-str modal timeout_s
invalid '{"id":"inv-replyto","action":"imagine","body":{"prompt":"x"},"reply_to":"no spaces"}' \
    inv-replyto imagine reply_to
# The id is given twice, so it is unreadable; the action is not.
invalid '{"id":"inv-dupkey","id":"inv-dupkey2","action":"imagine","body":{}}' \
    "" imagine '\(payload\)'

# max_job_bytes: 2048 bytes is accepted, 2049 is too large.
pad_job()
{
    local id=$1 size=$2 head tail pad
    head="{\"id\":\"$id\",\"action\":\"shorten\",\"body\":{\"prompt\":\""
    tail='"}}'
    pad=$((size - ${#head} - ${#tail}))
    printf '%s%s%s' "$head" "$(printf 'a%.0s' $(seq 1 "$pad"))" "$tail"
}
too_big=$(pad_job lim-over 2049)
assert_eq "${#too_big}" 2049 "oversized payload length"
invalid "$too_big" lim-over shorten '\(payload\)'
jq -e '.fail_reason | test("too large")' <<<"$INV_RESULT" >/dev/null ||
    fail "oversized reason does not say too large: $INV_RESULT"
invalid "$(pad_job big1 6000)" big1 shorten '\(payload\)'
jq -e '.fail_reason | test("too large")' <<<"$INV_RESULT" >/dev/null ||
    fail "oversized reason does not say too large: $INV_RESULT"
ninvalid=$(results_count)
assert_eq "$(rcli XLEN $DEAD)" "$ninvalid" "one dead entry per INVALID"
pass "$ninvalid INVALID varieties: one result each, field named, payload on $DEAD"

# An INVALID job with a usable reply_to: its one result belongs on
# mjq:results:r9, where its producer waits (checked at the end).
rcli LPUSH mjq:queue:default \
    '{"id":"inv-rt","action":"imagine","body":{"prompt":"x"},"mode":"slow","reply_to":"r9"}' \
    >/dev/null
inv_rt_somewhere()
{
    [ $(($(results_for inv-rt) + $(results_for inv-rt r9))) -ge 1 ]
}
wait_until 10 "a result for inv-rt on either stream" inv_rt_somewhere

# Nothing reached the API.
assert_eq "$(sim_stat submits)" 0 "submits upstream for invalid jobs"
assert_eq "$(sim_stat accepted)" 0 "accepted upstream for invalid jobs"
pass "nothing submitted for invalid jobs"

# --- valid jobs: the worker kept serving ---------------------------------------------
exact=$(pad_job lim-ok 2048)
assert_eq "${#exact}" 2048 "payload at the limit"
enqueue_json "$exact"

meta1='{"user":{"name":"Zoë 猫 🐱","ids":[1,-2,3],"ok":true,"none":null},"arr":[1,"two",[3],{"four":4}],"s":"a \"quoted\" \\ back/slash\ttab","n":42,"f":2.5,"neg":-7,"empty":{},"e":[]}'
enqueue_json "{\"id\":\"meta1\",\"action\":\"shorten\",\"body\":{\"prompt\":\"x\"},\"meta\":$meta1}"
enqueue_json '{"id":"meta2","action":"shorten","body":{"prompt":"x"},"meta":["a",1,{"b":null}]}'
enqueue_json '{"id":"meta3","action":"shorten","body":{"prompt":"x"},"meta":"just text ✓"}'
enqueue_json '{"id":"meta4","action":"shorten","body":{"prompt":"x"},"meta":12345}'
enqueue_json '{"id":"rt1","action":"imagine","body":{"prompt":"x"},"reply_to":"r1","meta":{"k":"v"}}'
enqueue_json '{"priority":9,"id":"unk1","x-trace":{"span":[1,2]},"action":"shorten","callback":null,"body":{"prompt":"x"},"version":2}'
id128=$(printf 'A%.0s' $(seq 1 120))0.9_:-Zz
enqueue_json "{\"id\":\"$id128\",\"action\":\"shorten\",\"body\":{\"prompt\":\"x\"}}"
enqueue_json '{"id":"meta-big","action":"shorten","body":{"prompt":"x"},"meta":{"n":12345678901234567890}}'
# A job in flight sits in a processing list until it finishes.
slow='{"id":"slow1","action":"imagine","body":{"prompt":"forever"},"timeout_s":2}'
enqueue_json "$slow"
in_processing()
{
    local key
    while IFS= read -r key; do
        [ -n "$key" ] && [ -n "$(rcli LPOS "$key" "$1")" ] && return 0
    done < <(rcli --scan --pattern 'mjq:processing:*')
    return 1
}
wait_until 10 "slow1 in a mjq:processing:* list" in_processing "$slow"
for id in lim-ok meta1 meta2 meta3 meta4 unk1 "$id128"; do
    wait_until 15 "a result for $id" result_field "$id" status
done
wait_until 15 "a result for rt1 on mjq:results:r1" result_field rt1 status r1
# Everything taken and finished: the queue and every processing list empty.
all_done()
{
    local key
    [ "$(rcli LLEN mjq:queue:default)" = 0 ] || return 1
    while IFS= read -r key; do
        [ -z "$key" ] || [ "$(rcli LLEN "$key")" = 0 ] || return 1
    done < <(rcli --scan --pattern 'mjq:processing:*')
}
wait_until 15 "queue and processing lists empty" all_done
assert_eq "$(result_field slow1 status)" TIMEOUT "slow1 status"

assert_eq "${#id128}" 128 "length of the longest id"
for id in lim-ok meta1 meta2 meta3 meta4 unk1 "$id128"; do
    assert_eq "$(result_field "$id" status)" SUCCESS "$id status"
    assert_eq "$(results_for "$id")" 1 "$id: one result"
done
pass "max_job_bytes and a 128-character id are accepted; worker kept serving"

# meta: JSON-equal and, written compactly, byte for byte.
meta_is()
{
    local id=$1 want=$2 got stream=${3:-}
    got=$(result_field "$id" meta "$stream") || fail "$id: no meta"
    assert_eq "$(jq -Sc . <<<"$got")" "$(jq -Sc . <<<"$want")" \
        "$id meta (JSON)"
    assert_eq "$got" "$want" "$id meta (text)"
}
meta_is meta1 "$meta1"
meta_is meta2 '["a",1,{"b":null}]'
meta_is meta3 '"just text ✓"'
meta_is meta4 12345
assert_eq "$(result_field unk1 meta 2>/dev/null || echo none)" none \
    "no meta without meta"
pass "meta echoed verbatim (object, array, string, number)"

# reply_to
assert_eq "$(result_field rt1 status r1)" SUCCESS "rt1 status on r1"
assert_eq "$(results_for rt1 r1)" 1 "rt1 entries on mjq:results:r1"
assert_eq "$(results_for rt1)" 0 "rt1 entries on mjq:results"
assert_eq "$(results_count r1)" 1 "mjq:results:r1 holds only rt1"
meta_is rt1 '{"k":"v"}' r1
pass "reply_to r1: result on mjq:results:r1 only"

assert_eq "$(result_field unk1 action)" shorten "unk1 action"
pass "unknown top-level fields ignored"

# --- bookkeeping after everything finished ------------------------------------------
nproc=0
while IFS= read -r key; do
    [ -n "$key" ] || continue
    nproc=$((nproc + 1))
    assert_eq "$(rcli LLEN "$key")" 0 "$key after all jobs finished"
done < <(rcli --scan --pattern 'mjq:processing:*')
pass "processing lists empty after everything finished ($nproc key(s) left)"

for id in lim-ok meta1 meta2 meta3 meta4 rt1 unk1 "$id128" slow1; do
    ttl=$(rcli TTL "mjq:job:$id")
    [ "$ttl" -gt $((WINDOW - 60)) ] && [ "$ttl" -le "$WINDOW" ] ||
        fail "TTL of mjq:job:$id is $ttl, want about $WINDOW"
done
for id in inv-noaction inv-badaction inv-body inv-mode inv-timeout; do
    assert_eq "$(sim_accepted_for "$id")" 0 "accepted_by_state[$id]"
done
pass "finished jobs' records expire after the dedup window ($WINDOW s)"

# --- results.maxlen: XADD MAXLEN ~ keeps the streams bounded ------------------------
# A worker of its own (prefix cap:) with MJQ_RESULTS_MAXLEN=5; 300 INVALID
# payloads in one go. "~" trims whole stream nodes (100 entries each), so
# the bound is loose, but without trimming all 300 would stay.
MJQ_PREFIX=cap: MJQ_RESULTS_MAXLEN=5 MJQ_EVENTS_MAXLEN=5 start_worker wcap
rcli EVAL 'for i = 1, 300 do
    redis.call("LPUSH", KEYS[1], "{\"id\":\"cap-" .. i .. "\"}") end' \
    1 cap:queue:default >/dev/null
newest_cap() { rcli --json XREVRANGE cap:results + - COUNT 1 | jq -r '.[0][1][1]'; }
wait_until 20 "the result for cap-300" eval '[ "$(newest_cap)" = cap-300 ]'
for key in cap:results cap:dead cap:events; do
    n=$(rcli XLEN $key)
    [ "$n" -lt 150 ] || fail "$key holds $n entries with maxlen 5 (~)"
done
pass "MJQ_RESULTS_MAXLEN bounds the results (and dead) stream"

# --- checked last, all of them, so that each failure here is reported ----------
problems=()
check()
{
    [ "$1" = "$2" ] || problems+=("$3: got '$1', want '$2'")
}
# Valid JSON with a 64-bit-overflowing integer in meta is a valid job.
if r=$(result_json meta-big); then
    check "$(jq -r .status <<<"$r")" SUCCESS "meta-big status"
    # Byte for byte: jq itself would round the integer.
    check "$(jq -r .meta <<<"$r")" '{"n":12345678901234567890}' \
        "meta-big meta"
else
    problems+=("meta-big (meta {\"n\":12345678901234567890}, valid JSON) has no result under its id; results without an id: $(
        e2e_results_objects | jq -c 'select(.id == "") | .fail_reason' | tail -n 1)")
fi
# reply_to is where the producer waits, INVALID or not.
check "$(results_for inv-rt r9)" 1 "INVALID inv-rt (reply_to r9) on mjq:results:r9"
check "$(results_for inv-rt)" 0 "INVALID inv-rt (reply_to r9) on mjq:results"
if [ "${#problems[@]}" -gt 0 ]; then
    printf 'FAIL: %s\n' "${problems[@]}" >&2
    fail "${#problems[@]} contract edge case(s) broken (listed above)"
fi
pass "contract edge cases"
