#!/usr/bin/env bash
# ctest-timeout: 120
# `mjq events` against a real redis-server, `mjq sim` and `mjq worker`:
# the lifecycle of one job line by line (time, type, worker, id, fields),
# --id and --type filters, --count, --since, --json (checked with jq), and
# --follow printing an event that arrives after it started, then exiting
# 0 on SIGTERM and on SIGINT. Usage, Redis and config errors.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_redis
start_sim --duration-ms 600 --progress-steps 2
MJQ_POLL_SCHEDULE_MS=100 start_worker w1

# Runs mjq events; stdout in $E2E_DIR/out, stderr in $E2E_DIR/err, exit
# status in $st.
events()
{
    st=0
    "$MJQ_BIN" events "$@" >"$E2E_DIR/out" 2>"$E2E_DIR/err" || st=$?
}
out() { cat "$E2E_DIR/out"; }
err() { cat "$E2E_DIR/err"; }
# Field N of every line of the output, space-separated.
col() { awk -v n="$1" '{ printf "%s%s", (NR > 1 ? " " : ""), $n }' "$E2E_DIR/out"; }

# --- one job's lifecycle ---------------------------------------------------------
enqueue_json '{"id":"e1","action":"imagine","body":{"prompt":"a cat"}}'
wait_until 20 "a result for e1" result_field e1 status
assert_eq "$(result_field e1 status)" SUCCESS "e1 status"
worker=$(result_field e1 worker)
task=$(result_field e1 task_id)

events --id e1
assert_eq "$st" 0 "events --id e1 ($(err))"
types=$(col 2)
[[ $types =~ ^taken\ submitted\ (progress\ )+finished$ ]] ||
    fail "e1 lifecycle: '$types' in: $(out)"
assert_eq "$(col 3 | tr ' ' '\n' | sort -u)" "$worker" "worker column"
assert_eq "$(col 4 | tr ' ' '\n' | sort -u)" e1 "id column"
grep -qE '^20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]\.[0-9]{3}Z taken ' \
    "$E2E_DIR/out" || fail "time column: $(out)"
grep -qE "^\S+ taken +$worker e1 queue=default action=imagine\$" \
    "$E2E_DIR/out" || fail "taken line: $(out)"
grep -qE "^\S+ submitted +$worker e1 task_id=$task\$" "$E2E_DIR/out" ||
    fail "submitted line: $(out)"
grep -qE "^\S+ progress +$worker e1 status=SUCCESS progress=100% task_id=$task\$" \
    "$E2E_DIR/out" || fail "last progress line: $(out)"
grep -qE "^\S+ finished +$worker e1 status=SUCCESS\$" "$E2E_DIR/out" ||
    fail "finished line: $(out)"
# The time column is the event's ts.
first_ts=$(rcli --json XRANGE mjq:events - + | jq -r '[.[] | .[1] as $kv
    | [range(0; $kv | length; 2) | {($kv[.]): $kv[. + 1]}] | add
    | select(.id == "e1")][0].ts')
want=$(date -u -d "@$((first_ts / 1000))" +%Y-%m-%dT%H:%M:%S).$(printf %03d $((first_ts % 1000)))Z
assert_eq "$(head -n 1 "$E2E_DIR/out" | cut -d' ' -f1)" "$want" "first line's time"
pass "e1: $types"

events --id e1 --json
assert_eq "$st" 0 "--json ($(err))"
jq -se --arg w "$worker" --arg t "$task" '
    (map(.type) | join(" ") | test("^taken submitted (progress )+finished$"))
    and all(.[]; .id == "e1" and .worker == $w
            and (.stream_id | test("^[0-9]+-[0-9]+$"))
            and (.ts | test("^[0-9]{13}$")))
    and (map(select(.type == "submitted"))[0].task_id == $t)
    and (.[-1].status == "SUCCESS")' "$E2E_DIR/out" >/dev/null ||
    fail "--json lines: $(out)"
pass "--json"

# --- filters, --count, --since ----------------------------------------------------
enqueue_json '{"id":"e2","action":"imagine","body":{"prompt":"a dog"}}'
wait_until 20 "a result for e2" result_field e2 status
events --type finished
assert_eq "$(col 2)" "finished finished" "--type finished: types"
assert_eq "$(col 4)" "e1 e2" "--type finished: ids"
events --type finished,taken --id e2
assert_eq "$(col 2)" "taken finished" "--type taken,finished --id e2"
events --type worker_started
assert_eq "$(col 2)" worker_started "--type worker_started"
grep -qE "^\S+ worker_started +$worker - pid=$(proc_pid w1)\$" \
    "$E2E_DIR/out" || fail "worker_started line: $(out)"

total=$(rcli XLEN mjq:events)
events
assert_eq "$(wc -l <"$E2E_DIR/out")" "$((total < 20 ? total : 20))" \
    "default: the last 20"
events --count 3
assert_eq "$(wc -l <"$E2E_DIR/out")" 3 "--count 3"
last3=$(rcli --json XREVRANGE mjq:events + - COUNT 3 | jq -r 'reverse | .[][0]')
events --count 3 --json
assert_eq "$(jq -r .stream_id "$E2E_DIR/out")" "$last3" "--count 3: the newest 3, oldest first"
events --count 1 --id e1
assert_eq "$(col 2)" finished "--count 1 --id e1: e1's last event"
events --count 100000
assert_eq "$(wc -l <"$E2E_DIR/out")" "$total" "--count above the stream's length"

events --since 1h
assert_eq "$(wc -l <"$E2E_DIR/out")" "$total" "--since 1h: everything"
events --since 1h --count 1
assert_eq "$(col 2)" worker_started "--since 1h --count 1: the first event"
e2_taken=$(rcli --json XRANGE mjq:events - + | jq -r '[.[] | select(.[1]
    | . as $kv | [range(0; length; 2) | {($kv[.]): $kv[. + 1]}] | add
    | .id == "e2" and .type == "taken")][0][0]')
since=${e2_taken%-*}
events --since "$since"
assert_eq "$(head -n 1 "$E2E_DIR/out" | awk '{print $2, $4}')" "taken e2" \
    "--since unix ms starts at e2's taken"
iso=$(date -u -d "@$((since / 1000))" +%Y-%m-%dT%H:%M:%S).$(printf %03d $((since % 1000)))Z
events --since "$iso" --json
assert_eq "$(head -n 1 "$E2E_DIR/out" | jq -r .stream_id)" "$e2_taken" \
    "--since ISO time"
events --since "$(($(now_ms) + 60000))"
assert_eq "$(out)" "" "--since the future: nothing"
pass "filters, --count, --since"

# --- --follow ---------------------------------------------------------------------
# Started before e3 exists; --count 0 prints no history. It is reading
# once its XREAD shows in CLIENT LIST.
xread_clients() { rcli CLIENT LIST | grep -c 'cmd=xread' || true; }
start_proc follow "$MJQ_BIN" events --follow --count 0 --id e3
wait_alive follow 10 "the follower's XREAD" eval '[ "$(xread_clients)" -ge 1 ]'
enqueue_json '{"id":"e3","action":"imagine","body":{"prompt":"a fox"}}'
wait_alive follow 20 "e3's finished event in the follower's output" \
    grep -qE " finished +$worker e3 status=SUCCESS\$" "$(log_file follow)"
grep -qE " taken +$worker e3 queue=default" "$(log_file follow)" ||
    fail "follower missed e3's taken: $(cat "$(log_file follow)")"
grep -vq ' e3 ' "$(log_file follow)" &&
    fail "follower printed another job's event: $(cat "$(log_file follow)")"
signal_proc follow TERM
wait_exit follow 5
assert_eq "$(proc_status follow)" 0 "--follow exit status after SIGTERM"

# History then new events, --json, ended by SIGINT.
start_proc follow2 "$MJQ_BIN" events --follow --json --type finished --count 1
wait_alive follow2 10 "follow2's XREAD" eval '[ "$(xread_clients)" -ge 1 ]'
enqueue_json '{"id":"e4","action":"imagine","body":{"prompt":"an owl"}}'
wait_alive follow2 20 "e4's finished event from follow2" \
    grep -q '"id":"e4"' "$(log_file follow2)"
assert_eq "$(jq -r .id "$(log_file follow2)" | xargs)" "e3 e4" \
    "follow2: the last finished (e3), then e4's"
signal_proc follow2 INT
wait_exit follow2 5
assert_eq "$(proc_status follow2)" 0 "--follow exit status after SIGINT"
pass "--follow prints new events and exits 0 on SIGTERM and SIGINT"

# --- errors -----------------------------------------------------------------------
events --since yesterday
assert_eq "$st" 64 "--since yesterday"
events --since 2026-13-01T00:00:00Z
assert_eq "$st" 64 "--since month 13"
events --count -1
assert_eq "$st" 64 "--count -1"
events --type ,
assert_eq "$st" 64 "--type ,"
events --id
assert_eq "$st" 64 "--id without a value"
events --follow=yes
assert_eq "$st" 64 "--follow with a value"
MJQ_REDIS_URL="redis://127.0.0.1:$(free_port)/0" events
assert_eq "$st" 69 "Redis unreachable"
events --set events.maxlen=0
assert_eq "$st" 78 "bad setting"
events --help
assert_eq "$st" 0 "--help"
pass "exit codes 64, 69, 78, 0"
