#!/usr/bin/env bash
# ctest-timeout: 120
# `mjq status` against a real redis-server, `mjq sim` and `mjq worker`:
# queue depths (configured and found by SCAN) and the oldest waiting job
# with its age; live workers with their heartbeat and processing list, a
# dead one with its left-over jobs; finished jobs per status over 1, 5 and
# 15 minutes; the results and dead streams; accounts and leases; the
# recovery lock. Text and --json (checked with jq). Besides what the
# worker writes, the test puts per-minute counters, accounts and leases in
# place with redis-cli, as workers of other deployments would.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_redis
start_sim --duration-ms 60000

# Runs mjq status; stdout in $E2E_DIR/out, stderr in $E2E_DIR/err, exit
# status in $st.
status()
{
    st=0
    "$MJQ_BIN" status "$@" >"$E2E_DIR/out" 2>"$E2E_DIR/err" || st=$?
}
out() { cat "$E2E_DIR/out"; }
err() { cat "$E2E_DIR/err"; }
# A jq filter on the --json document.
sj() { "$MJQ_BIN" status --json | jq -r "$@"; }

# --- an empty deployment ----------------------------------------------------------
status
assert_eq "$st" 0 "status on an empty Redis ($(err))"
grep -qE '^  default +0  -$' "$E2E_DIR/out" || fail "empty default queue: $(out)"
grep -q '^Workers: 0 live, 0 dead$' "$E2E_DIR/out" || fail "no workers: $(out)"
grep -q '^Accounts: no accounts published$' "$E2E_DIR/out" ||
    fail "no accounts: $(out)"
grep -q '^Recovery lock mjq:sweep:lock: free$' "$E2E_DIR/out" ||
    fail "free lock: $(out)"
status --json
assert_eq "$st" 0 "--json on an empty Redis"
jq -e '.queues == [{"name":"default","key":"mjq:queue:default",
        "configured":true,"depth":0,"oldest":null}]
    and .workers == [] and .accounts == null and .sweep_lock == null
    and .results_len == 0 and .dead_len == 0
    and ([.finished[].total] == [0,0,0])
    and ([.finished[].minutes] == [1,5,15])' "$E2E_DIR/out" >/dev/null ||
    fail "empty --json: $(out)"
pass "empty deployment"

# --- real results and a dead entry: an INVALID payload --------------------------------
MJQ_POLL_SCHEDULE_MS=100 start_worker w1 --concurrency 2
enqueue_json 'not json'
wait_results 1 15
wait_until 5 "the INVALID payload on mjq:dead" \
    eval '[ "$(rcli XLEN mjq:dead)" = 1 ]'

# --- waiting and in-flight jobs -----------------------------------------------------
# The worker holds 2 (the simulator keeps them running for 60 s); 3 wait.
for i in 1 2; do
    enqueue_json "{\"id\":\"s$i\",\"action\":\"imagine\",\"body\":{\"prompt\":\"p\"}}"
done
w1=
w1_id() { rcli SMEMBERS mjq:workers | grep -v -e ghost-1 -e fake-1; }
# Its heartbeat (every 2 s) shows both jobs and the INVALID one finished.
w1_holds_two()
{
    local id hb
    id=$(w1_id) && [ -n "$id" ] && hb=$(rcli GET "mjq:worker:$id") &&
        [ "$(jq -c '[.jobs, .finished]' <<<"$hb")" = "[2,1]" ] &&
        [ "$(rcli LLEN "mjq:processing:$id")" = 2 ]
}
wait_until 20 "w1 holding s1 and s2" w1_holds_two
w1=$(w1_id)

# Per-minute counters: keep clear of a minute boundary between writing
# them and reading them.
wait_until 15 "a minute with 10 s left" \
    eval '[ $(( $(now_ms) / 1000 % 60 )) -lt 50 ]'
# s3 is the oldest waiting job: pushed 42 s "ago" by its enqueued_ms.
t=$(now_ms)
enqueue_json "{\"id\":\"s3\",\"action\":\"imagine\",\"body\":{\"prompt\":\"p\"},\"enqueued_ms\":$((t - 42000))}"
enqueue_json '{"id":"s4","action":"imagine","body":{"prompt":"p"}}'
enqueue_json '{"id":"s5","action":"imagine","body":{"prompt":"p"}}'
# A queue no worker here is configured for, whose oldest job is large:
# the age comes from an enqueued_ms behind 40 kB of body.
big=$(head -c 40000 /dev/zero | tr '\0' a)
enqueue_json "{\"id\":\"x1\",\"action\":\"imagine\",\"body\":{\"prompt\":\"$big\"},\"enqueued_ms\":$((t - 7200000))}" extra
enqueue_json '{"id":"x2","action":"imagine","body":{"prompt":"p"}}' extra

# A dead worker: registered, no heartbeat, one job left over.
rcli SADD mjq:workers ghost-1 >/dev/null
rcli RPUSH mjq:processing:ghost-1 '{"id":"g1","action":"imagine","body":{}}' >/dev/null
# A live worker whose heartbeat carries the accounts it sees.
rcli SET mjq:worker:fake-1 '{"pid":4242,"jobs":3,"finished":17,"draining":1,"accounts":{"acc-a":"up","acc-b":{"state":"cooling","until_ms":5}}}' PX 60000 >/dev/null
rcli SADD mjq:workers fake-1 >/dev/null
rcli SET mjq:sweep:lock supervisor-77 PX 60000 >/dev/null

m=$(($(now_ms) / 60000))
rcli HSET "mjq:stats:finished:$m" SUCCESS 4 FAILURE 1 >/dev/null
rcli HSET "mjq:stats:finished:$((m - 3))" SUCCESS 2 TIMEOUT 1 >/dev/null
rcli HSET "mjq:stats:finished:$((m - 10))" CANCEL 7 SUCCESS 1 >/dev/null
rcli HSET "mjq:stats:finished:$((m - 20))" SUCCESS 1000 >/dev/null # too old
# Accounts as the upstream module publishes them, and their leases.
rcli HSET mjq:accounts acc-a '{"modes":["fast","relax"],"max_in_flight":100,"mode_limits":{"fast":40},"batch_fetch":true}' \
    acc-b '{"modes":["relax"],"max_in_flight":5,"batch_fetch":false}' >/dev/null
rcli HSET mjq:lease:acc-a s1 1 s2 1 >/dev/null
rcli HSET mjq:lease:acc-a:fast s1 1 >/dev/null

status
assert_eq "$st" 0 "status ($(err))"
grep -qE '^  default +3  s3, waiting (4[2-9]|5[0-9])\.[0-9] s$' "$E2E_DIR/out" ||
    fail "default queue line: $(out)"
grep -qE '^  extra +2  x1, waiting 2 h 0 min  \[not configured here\]$' \
    "$E2E_DIR/out" || fail "extra queue line: $(out)"
grep -q '^Workers: 2 live, 1 dead$' "$E2E_DIR/out" || fail "worker count: $(out)"
grep -qE '^  ghost-1 +dead  1 job left in its processing list' "$E2E_DIR/out" ||
    fail "dead worker line: $(out)"
grep -qE '^  fake-1 +live \(draining\)  pid 4242  jobs 3  finished 17  processing 0$' \
    "$E2E_DIR/out" || fail "fake worker line: $(out)"
grep -qE '^ +accounts: acc-a up, acc-b \{"state":"cooling","until_ms":5\}$' \
    "$E2E_DIR/out" || fail "accounts seen by fake-1: $(out)"
grep -qE "^  $w1 +live  pid $(proc_pid w1)  jobs 2  finished 1  processing 2\$" \
    "$E2E_DIR/out" || fail "w1 line ($w1): $(out)"
grep -qE '^  SUCCESS +4 +6 +7$' "$E2E_DIR/out" || fail "SUCCESS row: $(out)"
grep -qE '^  FAILURE +1 +1 +1$' "$E2E_DIR/out" || fail "FAILURE row: $(out)"
grep -qE '^  TIMEOUT +0 +1 +1$' "$E2E_DIR/out" || fail "TIMEOUT row: $(out)"
grep -qE '^  CANCEL +0 +0 +7$' "$E2E_DIR/out" || fail "CANCEL row: $(out)"
# The worker itself counted the INVALID payload, in this minute or the
# one before (when the test crossed a minute boundary).
grep -qE '^  INVALID +[01] +1 +1$' "$E2E_DIR/out" || fail "INVALID row: $(out)"
grep -qE '^  total +[56] +9 +17$' "$E2E_DIR/out" || fail "total row: $(out)"
grep -q '^Results stream mjq:results: 1 entries$' "$E2E_DIR/out" ||
    fail "results length: $(out)"
grep -q '^Dead stream mjq:dead: 1 entries$' "$E2E_DIR/out" ||
    fail "dead length: $(out)"
grep -qE '^  acc-a +in flight 2 of 100  modes: fast 1 of 40, relax 0  batch_fetch true$' \
    "$E2E_DIR/out" || fail "acc-a line: $(out)"
grep -qE '^  acc-b +in flight 0 of 5  modes: relax 0  batch_fetch false$' \
    "$E2E_DIR/out" || fail "acc-b line: $(out)"
grep -qE '^Recovery lock mjq:sweep:lock: held by supervisor-77 \(expires in ' \
    "$E2E_DIR/out" || fail "lock line: $(out)"
pass "text summary"

status --json
assert_eq "$st" 0 "status --json ($(err))"
j=$E2E_DIR/out
jq -e '[.queues[] | [.name, .configured, .depth, .oldest.id]]
    == [["default", true, 3, "s3"], ["extra", false, 2, "x1"]]' "$j" \
    >/dev/null || fail "--json queues: $(jq -c .queues "$j")"
jq -e '.queues[0].oldest.age_ms >= 42000 and .queues[0].oldest.age_ms < 60000
    and (.queues[1].oldest.bytes > 40000)
    and (.queues[1].oldest.enqueued_ms | type) == "number"' "$j" >/dev/null ||
    fail "--json oldest: $(jq -c '[.queues[].oldest]' "$j")"
jq -e --arg w1 "$w1" --argjson pid "$(proc_pid w1)" '
    (.workers | map({(.id): .}) | add) as $w
    | $w["ghost-1"].alive == false and $w["ghost-1"].processing == 1
    and $w["ghost-1"].registered == true and $w["ghost-1"].heartbeat == null
    and $w["fake-1"].heartbeat.accounts["acc-a"] == "up"
    and $w[$w1].alive and $w[$w1].heartbeat.pid == $pid
    and $w[$w1].processing == 2 and $w[$w1].heartbeat_ttl_ms > 0' "$j" \
    >/dev/null || fail "--json workers: $(jq -c .workers "$j")"
jq -e '[.finished[] | [.minutes, .total - .counts.INVALID, .counts.SUCCESS,
        .counts.CANCEL]]
    == [[1, 5, 4, 0], [5, 8, 6, 0], [15, 16, 7, 7]]
    and (.finished[2].per_minute > 0)' "$j" >/dev/null ||
    fail "--json finished: $(jq -c .finished "$j")"
jq -e '.results_len == 1 and .dead_len == 1
    and .sweep_lock.holder == "supervisor-77" and .sweep_lock.ttl_ms > 0
    and ([.accounts[] | select(.name != "default")
          | [.name, .in_flight, .modes.fast.in_flight // null,
          .modes.fast.limit // null, .config.max_in_flight]]
         == [["acc-a", 2, 1, 40, 100], ["acc-b", 0, null, null, 5]])' "$j" \
    >/dev/null || fail "--json streams/lock/accounts: $(jq -c . "$j")"
pass "--json document"

# --- prefix, --queues, errors ------------------------------------------------------
assert_eq "$(sj '[.queues[].name] | join(",")')" "default,extra" \
    "queues by default"
"$MJQ_BIN" status --json --queues extra,default >"$E2E_DIR/out"
assert_eq "$(jq -c '[.queues[] | [.name, .configured]]' "$E2E_DIR/out")" \
    '[["extra",true],["default",true]]' "--queues order and configured"
"$MJQ_BIN" status --json --prefix other: >"$E2E_DIR/out"
jq -e '.queues == [{"name":"default","key":"other:queue:default",
    "configured":true,"depth":0,"oldest":null}] and .workers == []' \
    "$E2E_DIR/out" >/dev/null || fail "--prefix other: $(out)"
pass "--queues and --prefix"

MJQ_REDIS_URL="redis://:s3cr3t-pw@127.0.0.1:$(free_port)/0" status
assert_eq "$st" 69 "Redis unreachable"
grep -q "s3cr3t-pw" "$E2E_DIR/err" "$E2E_DIR/out" && fail "password printed: $(err)"
status --set worker.concurrency=0
assert_eq "$st" 78 "bad setting"
status --bogus
assert_eq "$st" 64 "unknown option"
status --json=1
assert_eq "$st" 64 "--json with a value"
status --help
assert_eq "$st" 0 "--help"
grep -q '^usage: mjq status' "$E2E_DIR/out" || fail "--help text: $(out)"
pass "exit codes 69, 78, 64, 0"

# The worker is untouched by all this: it still holds its two jobs.
assert_eq "$(sj --arg w "$w1" '.workers[] | select(.id == $w) | .processing')" \
    2 "w1 still holds 2"
