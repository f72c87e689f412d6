#!/usr/bin/env bash
# ctest-timeout: 120
# `mjq enqueue` against a real redis-server: the pushed payload is exactly
# the contract's job, stdin mode, validation (exit 65, nothing pushed),
# usage/config/Redis errors, and --wait on results the test itself XADDs
# the way a worker would (SUCCESS, FAILURE, reply_to, --json, timeout).
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_redis

Q=mjq:queue:default

# Runs mjq enqueue; stdout to $E2E_DIR/out, stderr to $E2E_DIR/err, and
# its exit status in $st (never fails the test by itself).
enq()
{
    st=0
    "$MJQ_BIN" enqueue "$@" >"$E2E_DIR/out" 2>"$E2E_DIR/err" || st=$?
}

out() { cat "$E2E_DIR/out"; }
err() { cat "$E2E_DIR/err"; }

# The newest payload on queue $1 (default: the default queue).
newest() { rcli LINDEX "${1:-$Q}" 0; }

# --- flags build exactly the contract's job ------------------------------------
enq --action imagine --prompt "a red fox" --mode fast --timeout-s 120 \
    --meta '{"user":42,"tags":["a"]}' --reply-to r1 --id j1
assert_eq "$st" 0 "imagine exit status ($(err))"
assert_eq "$(out)" j1 "printed id"
assert_eq "$(rcli LLEN $Q)" 1 "one job pushed"
# enqueued_ms (for the queue wait metric) is the push time: checked apart.
t_enq=$(newest | jq -r .enqueued_ms)
[[ $t_enq =~ ^[0-9]{13}$ ]] && [ $(($(now_ms) - t_enq)) -lt 60000 ] ||
    fail "enqueued_ms '$t_enq' is not a recent unix ms"
assert_eq "$(newest | jq -c 'del(.enqueued_ms)')" '{"id":"j1","action":"imagine","body":{"prompt":"a red fox"},"mode":"fast","timeout_s":120,"meta":{"user":42,"tags":["a"]},"reply_to":"r1"}' \
    "imagine payload"
pass "flags -> job"

enq --action imagine --prompt p
assert_eq "$st" 0 "generated id ($(err))"
[[ $(out) =~ ^job-[0-9]{13}-[0-9a-f]{16}$ ]] || fail "generated id '$(out)'"
assert_eq "$(newest | jq -r .id)" "$(out)" "generated id is the job's"
assert_eq "$(newest | jq -c 'keys')" '["action","body","enqueued_ms","id"]' \
    "no extras"
pass "generated id"

enq --action action --task-id T1 --custom-id 'MJ::JOB::upsample::1::abc' \
    --id a1
assert_eq "$(newest | jq -c .body)" \
    '{"taskId":"T1","customId":"MJ::JOB::upsample::1::abc"}' "action body"
enq --action modal --task-id M1 --prompt 'cat --ar 1:1 --zoom 1.5' --id m1
assert_eq "$(newest | jq -c .body)" \
    '{"prompt":"cat --ar 1:1 --zoom 1.5","taskId":"M1"}' "modal body"
enq --action imagine --body '{"botType":"NIJI_JOURNEY","prompt":"old"}' \
    --prompt new --id b1
assert_eq "$(newest | jq -c .body)" '{"botType":"NIJI_JOURNEY","prompt":"new"}' \
    "--body merged with --prompt"
enq --action shorten --prompt 'a very long prompt' --timeout-s 1.5 --id t1
assert_eq "$(newest | jq -c .timeout_s)" 1.5 "fractional timeout_s"
pass "action, modal, --body"

# --- images: data URLs, base64 padding, MIME from magic bytes -------------------
printf '\x89PNG\r\n\x1a\n\x01' >"$E2E_DIR/a.png"     # 9 bytes: no padding
printf '\xff\xd8\xff\xe0\x00\x10JFIF' >"$E2E_DIR/b.jpg" # 10 bytes: "=="
printf 'GIF89a\x01\x00\x01\x00\x00' >"$E2E_DIR/c.gif"   # 11 bytes: "="
b64() { base64 -w0 "$1"; }
enq --action blend --image "$E2E_DIR/a.png" --image "$E2E_DIR/b.jpg" \
    --image "$E2E_DIR/c.gif" --id bl1
assert_eq "$st" 0 "blend ($(err))"
assert_eq "$(newest | jq -r '.body.base64Array | join(" ")')" \
    "data:image/png;base64,$(b64 "$E2E_DIR/a.png") data:image/jpeg;base64,$(b64 "$E2E_DIR/b.jpg") data:image/gif;base64,$(b64 "$E2E_DIR/c.gif")" \
    "base64Array"
enq --action describe --image "$E2E_DIR/b.jpg" --id d1
assert_eq "$(newest | jq -r .body.base64)" \
    "data:image/jpeg;base64,$(b64 "$E2E_DIR/b.jpg")" "describe base64"
head -c 3000 /dev/urandom >"$E2E_DIR/big.bin"
enq --action imagine --prompt x --image "$E2E_DIR/big.bin" --id big1
assert_eq "$(newest | jq -r '.body.base64Array[0]')" \
    "data:image/png;base64,$(b64 "$E2E_DIR/big.bin")" "3000 random bytes"
enq --action imagine --prompt x --image "$E2E_DIR/missing.png"
assert_eq "$st" 66 "unreadable image"
enq --action shorten --prompt x --image "$E2E_DIR/a.png"
assert_eq "$st" 64 "image on shorten"
pass "images"

# --- stdin --------------------------------------------------------------------
n=$(rcli LLEN $Q)
job='{"id":"s1", "action":"describe", "body":{"base64":"data:image/png;base64,AAAA"}, "extra":1}'
st=0
id=$(printf '%s' "$job" | "$MJQ_BIN" enqueue --stdin 2>"$E2E_DIR/err") || st=$?
assert_eq "$st" 0 "stdin exit ($(err))"
assert_eq "$id" s1 "stdin id"
assert_eq "$(newest)" "$job" "stdin payload pushed byte for byte"
id=$(echo '{"action":"shorten","body":{"prompt":"p"}}' | "$MJQ_BIN" enqueue -)
[[ $id =~ ^job-[0-9]{13}-[0-9a-f]{16}$ ]] || fail "stdin generated id '$id'"
assert_eq "$(newest | jq -r .id)" "$id" "stdin: id inserted"
assert_eq "$(rcli LLEN $Q)" $((n + 2)) "two stdin jobs"
pass "stdin"

# --- invalid jobs are refused with 65 and nothing is pushed ----------------------
n=$(rcli LLEN $Q)
st=0
echo '{"id":"bad1","body":{}}' | "$MJQ_BIN" enqueue --stdin \
    >/dev/null 2>"$E2E_DIR/err" || st=$?
assert_eq "$st" 65 "missing action"
assert_eq "$(err)" "mjq enqueue: invalid job: action: missing (required)" \
    "missing action message"
st=0
echo 'not json' | "$MJQ_BIN" enqueue --stdin >/dev/null 2>"$E2E_DIR/err" ||
    st=$?
assert_eq "$st" 65 "not JSON"
grep -q "^mjq enqueue: invalid job: (payload): not valid JSON" "$E2E_DIR/err" ||
    fail "not-JSON message: $(err)"
enq --action imagine --prompt x --id 'has space'
assert_eq "$st" 65 "bad id"
grep -q "^mjq enqueue: invalid job: id: " "$E2E_DIR/err" ||
    fail "bad id message: $(err)"
enq --action paint --prompt x
assert_eq "$st" 65 "unknown action"
enq --action imagine --prompt x --mode slow
assert_eq "$st" 65 "bad mode"
enq --action imagine --prompt x --timeout-s -5
assert_eq "$st" 65 "negative timeout"
enq --action imagine --prompt x --meta '{oops'
assert_eq "$st" 65 "bad --meta JSON"
enq --action imagine --body '[1]'
assert_eq "$st" 65 "--body not an object"
enq --action imagine --prompt x --max-job-bytes 1024 \
    --image "$E2E_DIR/big.bin"
assert_eq "$st" 65 "image over max_job_bytes"
assert_eq "$(rcli LLEN $Q)" "$n" "nothing pushed by invalid jobs"
enq --action imagine --prompt x --id 'has space' --force
assert_eq "$st" 0 "--force pushes an invalid job"
assert_eq "$(newest | jq -r .id)" 'has space' "--force payload"
assert_eq "$(rcli LLEN $Q)" $((n + 1)) "--force pushed one"
pass "validation"

# --- usage, configuration and Redis errors ---------------------------------------
enq --action imagine --no-such-flag 1
assert_eq "$st" 64 "unknown flag"
enq --stdin --action imagine
assert_eq "$st" 64 "--stdin with job options"
enq --prompt x
assert_eq "$st" 64 "no --action"
enq --action imagine --prompt x --json
assert_eq "$st" 64 "--json without --wait"
enq --action imagine --prompt x --queue 'bad queue'
assert_eq "$st" 64 "bad --queue"
enq --action imagine --prompt x --redis-url 'bogus://x'
assert_eq "$st" 78 "bad --redis-url"
grep -q "^mjq enqueue: config: " "$E2E_DIR/err" || fail "config msg: $(err)"
MJQ_CONCURRENCY=0 enq --action imagine --prompt x
assert_eq "$st" 78 "bad environment"
enq --action imagine --prompt x --redis-url "redis://127.0.0.1:$(free_port)/0"
assert_eq "$st" 69 "Redis unreachable"
enq --help
assert_eq "$st" 0 "--help"
for flag in action prompt body task-id custom-id image mode timeout-s meta \
    reply-to id stdin force queue wait wait-timeout json config redis-url; do
    grep -q -- "--$flag" "$E2E_DIR/out" || fail "--help lacks --$flag"
done
pass "errors and help"

# --- queues, prefix and database from the configuration ----------------------------
enq --action imagine --prompt x --queues hi,lo --id q1
assert_eq "$(newest mjq:queue:hi | jq -r .id)" q1 "first configured queue"
enq --action imagine --prompt x --queues hi,lo --queue lo --id q2
assert_eq "$(newest mjq:queue:lo | jq -r .id)" q2 "--queue"
MJQ_PREFIX=other: enq --action imagine --prompt x --id q3
assert_eq "$(newest other:queue:default | jq -r .id)" q3 "MJQ_PREFIX"
enq --action imagine --prompt x --redis-url "redis://127.0.0.1:$REDIS_PORT/3" \
    --id q4
assert_eq "$(rcli -n 3 LINDEX $Q 0 | jq -r .id)" q4 "database 3"
pass "configuration"

# --- --wait -------------------------------------------------------------------------
rcli DEL $Q >/dev/null

queued() { rcli LRANGE "$1" 0 -1 | grep -qF "\"id\":\"$2\""; }

# Plays a worker for job $1 from queue $2: waits until it is queued, takes
# it and XADDs a result to stream $3 with the remaining field/value pairs.
fake_worker()
{
    local id=$1 queue=$2 stream=$3
    shift 3
    wait_until 10 "job $id queued" queued "$queue" "$id"
    rcli LREM "$queue" 1 "$(rcli LRANGE "$queue" 0 -1 |
        grep -F "\"id\":\"$id\"")" >/dev/null
    rcli XADD mjq:results '*' id unrelated status SUCCESS >/dev/null
    rcli XADD "$stream" '*' id "$id" "$@" >/dev/null
}

task='{"id":"T9","status":"SUCCESS","progress":"100%","buttons":[{"customId":"MJ::JOB::upsample::1::x","label":"U1"}]}'
# An older result for the same id must not be taken for this one.
rcli XADD mjq:results '*' id w1 status FAILURE fail_reason old >/dev/null
fake_worker w1 $Q mjq:results status SUCCESS action imagine task_id T9 \
    image_url 'https://cdn.example/T9.png' task "$task" \
    buttons '[{"customId":"MJ::JOB::upsample::1::x","label":"U1"}]' \
    meta '{"user":42}' worker w-1 &
helper=$!
enq --action imagine --prompt fox --meta '{"user":42}' --id w1 --wait \
    --wait-timeout 30
wait $helper
assert_eq "$st" 0 "--wait SUCCESS exit ($(err))"
grep -qx "status: SUCCESS" "$E2E_DIR/out" || fail "no status line: $(out)"
grep -qx "id: w1" "$E2E_DIR/out" || fail "no id line: $(out)"
grep -qx "image_url: https://cdn.example/T9.png" "$E2E_DIR/out" ||
    fail "no image_url line: $(out)"
grep -qx '  "id": "T9",' "$E2E_DIR/out" || fail "task not indented: $(out)"
grep -qx '    "label": "U1"' "$E2E_DIR/out" || fail "buttons: $(out)"
grep -q "fail_reason: old" "$E2E_DIR/out" && fail "took the older result"
grep -q "^mjq enqueue: pushed w1 onto $Q" "$E2E_DIR/err" ||
    fail "no progress line on stderr: $(err)"
pass "--wait SUCCESS"

fake_worker w2 $Q mjq:results:r2 status FAILURE action imagine \
    fail_reason 'banned prompt' meta '{"user":7}' &
helper=$!
enq --action imagine --prompt bad --reply-to r2 --meta '{"user":7}' --id w2 \
    --wait --json --wait-timeout 30
wait $helper
assert_eq "$st" 1 "--wait FAILURE exit"
assert_eq "$(wc -l <"$E2E_DIR/out")" 1 "--json is one line"
assert_eq "$(jq -r .status "$E2E_DIR/out")" FAILURE "--json status"
assert_eq "$(jq -r .fail_reason "$E2E_DIR/out")" 'banned prompt' "--json reason"
assert_eq "$(jq -c .meta "$E2E_DIR/out")" '{"user":7}' "--json meta decoded"
pass "--wait FAILURE on reply_to, --json"

echo '{"id":"w3","action":"imagine","body":{"prompt":"x"},"queue_note":1}' >"$E2E_DIR/w3.json"
fake_worker w3 mjq:queue:lo mjq:results status DUPLICATE action imagine \
    fail_reason 'duplicate id' &
helper=$!
st=0
"$MJQ_BIN" enqueue --stdin --queue lo --wait --wait-timeout 30 \
    <"$E2E_DIR/w3.json" >"$E2E_DIR/out" 2>"$E2E_DIR/err" || st=$?
wait $helper
assert_eq "$st" 1 "--wait DUPLICATE exit"
grep -qx "status: DUPLICATE" "$E2E_DIR/out" || fail "DUPLICATE: $(out)"
pass "--wait with --stdin and --queue"

t0=$(now_ms)
enq --action imagine --prompt nobody --id w4 --wait --wait-timeout 1
elapsed=$(($(now_ms) - t0))
assert_eq "$st" 124 "--wait timeout exit"
[ "$elapsed" -ge 900 ] && [ "$elapsed" -lt 5000 ] ||
    fail "--wait-timeout 1 took ${elapsed}ms"
grep -q "no result for w4 within 1s" "$E2E_DIR/err" || fail "msg: $(err)"
assert_eq "$(newest | jq -r .id)" w4 "timed-out job was still pushed"
pass "--wait timeout"
