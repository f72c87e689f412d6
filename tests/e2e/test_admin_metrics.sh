#!/usr/bin/env bash
# ctest-timeout: 240
# The admin endpoint of `mjq run --http-listen`: /healthz, /readyz and
# /metrics (every line valid Prometheus text: promtool and a strict line
# check); job figures summed over two workers; counters that do not go
# backwards when a worker is killed and restarted; readiness without
# Redis and while draining; 404 and 405; a second supervisor on the same
# port exits 1; the oldest-job age of a queue nobody can take from; a
# reload that moves, fails to move, and closes the endpoint.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
command -v promtool >/dev/null ||
    fail "promtool not found (scripts/setup.sh installs Debian's prometheus)"
start_redis
start_sim --duration-ms 800
unset MJQ_WORKER_ID

port=$(free_port)
base=http://127.0.0.1:$port

scrape() { curl -sS --max-time 5 "$base/metrics"; }
# The value of one sample (NAME or NAME{labels} exactly as rendered).
metric()
{
    scrape | awk -v k="$1" '$1 == k { print $2; found = 1 }
        END { if (!found) exit 1 }'
}
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "${@:2}" "$base$1"; }
http_body() { curl -s --max-time 5 "$base$1"; }
metric_is() { [ "$(metric "$1")" = "$2" ]; }
metric_ge() { awk -v a="$(metric "$1")" -v b="$2" 'BEGIN { exit !(a >= b) }'; }

# Every line of /metrics must parse: promtool (lint included), then a
# strict reading of the 0.0.4 grammar, line by line.
check_exposition()
{
    local f=$E2E_DIR/metrics.$1.txt bad
    curl -sS --max-time 5 -D "$f.headers" "$base/metrics" >"$f"
    grep -qi '^Content-Type: text/plain; version=0.0.4' "$f.headers" ||
        fail "metrics content type: $(grep -i content-type "$f.headers")"
    promtool check metrics <"$f" >"$f.promtool" 2>&1 ||
        fail "promtool check metrics ($1): $(cat "$f.promtool")"
    bad=$(grep -vE '^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$|^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\[\\"n])*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\[\\"n])*")*\})? -?([0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?|\+Inf|NaN)$' "$f" || true)
    [ -z "$bad" ] || fail "not Prometheus text ($1): $(head -n 3 <<<"$bad")"
    # Each family has its HELP and TYPE.
    [ "$(grep -c '^# HELP ' "$f")" = "$(grep -c '^# TYPE ' "$f")" ] ||
        fail "HELP and TYPE lines differ in number ($1)"
}

# COUNT jobs PREFIX-1..COUNT carrying enqueued_ms, on queue Q (default).
push_timed()
{
    local args=() i t
    t=$(now_ms)
    for i in $(seq 1 "$2"); do
        args+=("{\"id\":\"$1-$i\",\"action\":\"imagine\",\"body\":{\"prompt\":\"m $i\"},\"enqueued_ms\":$t}")
    done
    rcli LPUSH "mjq:queue:${3:-default}" "${args[@]}" >/dev/null
}

# --- two workers, figures ---------------------------------------------------------
start_run sup --workers 2 --concurrency 20 --poll-schedule-ms 200 \
    --http-listen "127.0.0.1:$port"
wait_alive sup 20 "/healthz 200" eval '[ "$(http_code /healthz)" = 200 ]'
assert_eq "$(http_body /healthz)" ok "/healthz body"
wait_alive sup 20 "/readyz 200" eval '[ "$(http_code /readyz)" = 200 ]'
wait_alive sup 20 "2 workers and a queue sample" \
    eval 'metric_is mjq_workers 2 && metric "mjq_queue_depth{queue=\"default\"}"'
check_exposition idle
pass "healthz, readyz 200; /metrics valid before any job"

assert_eq "$(http_code /nope)" 404 "unknown path"
assert_eq "$(http_code /metrics -X POST)" 405 "POST /metrics"
assert_eq "$(http_code /healthz -X DELETE)" 405 "DELETE /healthz"
assert_eq "$(http_code /readyz -X PUT)" 405 "PUT /readyz"
pass "404 for other paths, 405 for other methods"

# A second supervisor cannot bind the same address: exit 1, and says why.
start_run dup --workers 1 --http-listen "127.0.0.1:$port"
wait_exit dup 15
assert_eq "$(proc_status dup)" 1 "exit status of a supervisor that cannot bind"
grep -q "cannot listen on 127.0.0.1:$port: bind: Address already in use" \
    "$(log_file dup)" || fail "bind error not logged: $(tail -n 3 "$(log_file dup)")"
pass "bind failure: exit 1 with the address and the reason"

push_timed m 30
wait_results 30 40
wait_alive sup 10 "taken and finished totals of 30" \
    eval 'metric_is mjq_jobs_taken_total 30 &&
          metric_is "mjq_jobs_finished_total{status=\"SUCCESS\"}" 30'
workers=$(results_jsonl | jq -r .worker | sort -u | wc -l)
[ "$workers" -ge 2 ] || fail "results came from $workers worker(s), want 2"
assert_eq "$(metric 'mjq_upstream_requests_total{account="default",endpoint="submit",outcome="ok"}')" \
    30 "upstream submits ok"
metric_ge 'mjq_upstream_requests_total{account="default",endpoint="fetch",outcome="ok"}' 30 ||
    fail "fetches ok: $(metric 'mjq_upstream_requests_total{account="default",endpoint="fetch",outcome="ok"}')"
assert_eq "$(metric 'mjq_queue_wait_seconds_count')" 30 "queue wait observations"
assert_eq "$(metric 'mjq_job_duration_seconds_count')" 30 "job durations"
assert_eq "$(metric 'mjq_jobs_in_flight')" 0 "jobs in flight"
wait_alive sup 5 "queue depth 0" metric_is 'mjq_queue_depth{queue="default"}' 0
assert_eq "$(metric 'mjq_queue_oldest_age_seconds{queue="default"}')" 0.000 \
    "oldest age of an empty queue"
assert_eq "$(rcli GET mjq:stats:taken:default)" 30 "Redis taken counter"
finished=0
for k in $(rcli --scan --pattern 'mjq:stats:finished:*'); do
    finished=$((finished + $(rcli HGET "$k" SUCCESS)))
    ttl=$(rcli TTL "$k")
    [ "$ttl" -gt 0 ] && [ "$ttl" -le 7200 ] || fail "TTL of $k: $ttl"
done
assert_eq "$finished" 30 "SUCCESS in the per-minute stats"
check_exposition busy
pass "30 jobs over $workers workers: taken, finished, upstream, queue and duration figures agree"

# --- kill -9 a worker: counters never go backwards ---------------------------------
mapfile -t kids < <(proc_children sup)
kill -KILL "${kids[0]}"
seen=()
restarted()
{
    local t
    t=$(metric mjq_jobs_taken_total) || return 1
    echo "$t" >>"$E2E_DIR/taken.seen"
    metric_ge mjq_worker_restarts_total 1 && metric_is mjq_workers 2
}
wait_alive sup 20 "a restart after kill -9" restarted
mapfile -t seen <"$E2E_DIR/taken.seen"
for t in "${seen[@]}"; do
    [ "$t" -ge 30 ] || fail "mjq_jobs_taken_total went back to $t after a worker died"
done
assert_eq "$(metric 'mjq_jobs_finished_total{status="SUCCESS"}')" 30 \
    "finished after the kill"
push_timed n 10
wait_results 40 40
wait_alive sup 10 "totals of 40 across the restart" \
    eval 'metric_is mjq_jobs_taken_total 40 &&
          metric_is "mjq_jobs_finished_total{status=\"SUCCESS\"}" 40'
pass "kill -9: restarts_total $(metric mjq_worker_restarts_total), totals kept (${#seen[@]} scrapes), then 40"

# --- readiness follows Redis ---------------------------------------------------------
stop_redis
wait_alive sup 15 "/readyz 503 without Redis" \
    eval '[ "$(http_code /readyz)" = 503 ]'
assert_eq "$(http_body /readyz)" "redis unreachable" "/readyz reason"
assert_eq "$(http_code /healthz)" 200 "/healthz without Redis"
assert_eq "$(metric mjq_redis_up)" 0 "mjq_redis_up without Redis"
restart_redis
wait_alive sup 20 "/readyz 200 after Redis is back" \
    eval '[ "$(http_code /readyz)" = 200 ]'
wait_alive sup 20 "worker reconnects counted" \
    metric_ge mjq_redis_reconnects_total 1
assert_eq "$(metric mjq_redis_up)" 1 "mjq_redis_up"
check_exposition redis
pass "/readyz 503 (redis unreachable) while Redis is down, 200 once it is back"

signal_proc sup TERM
wait_exit sup 20
assert_eq "$(proc_status sup)" 0 "supervisor exit status"

# --- the oldest job's age, and draining -----------------------------------------------
# One worker holding one job whose submit hangs 12 s upstream: the queue
# behind it waits, and a drain lasts until that submit returns (within
# the drain budget, so the worker still exits 0).
restart_sim --duration-ms 60000 --rate-slow 1 --slow-ms 12000
port=$(free_port)
base=http://127.0.0.1:$port
start_run age --workers 1 --concurrency 1 --http-listen "127.0.0.1:$port" \
    --log-format json --shutdown-timeout-s 30
wait_alive age 20 "a queue sample" metric 'mjq_queue_depth{queue="default"}'
t0=$(now_ms)
push_timed old 4
wait_alive age 10 "one job taken, three waiting" \
    metric_is 'mjq_queue_depth{queue="default"}' 3
wait_alive age 10 "an oldest age of at least 3 s" \
    metric_ge 'mjq_queue_oldest_age_seconds{queue="default"}' 3
age=$(metric 'mjq_queue_oldest_age_seconds{queue="default"}')
elapsed=$((($(now_ms) - t0) / 1000 + 1))
awk -v a="$age" -v e="$elapsed" 'BEGIN { exit !(a <= e) }' ||
    fail "oldest age $age s exceeds the $elapsed s since the push"
pass "oldest job age ${age}s after the push (<= ${elapsed}s)"

signal_proc age TERM
wait_until 5 "/readyz 503 while draining" eval '[ "$(http_code /readyz)" = 503 ]'
assert_eq "$(http_body /readyz)" "draining: the workers are stopping" \
    "/readyz reason while draining"
assert_eq "$(metric mjq_draining)" 1 "mjq_draining"
wait_exit age 30
assert_eq "$(proc_status age)" 0 "supervisor exit status after the drain"
pass "/readyz 503 while draining; clean exit"

# A worker's JSON log lines about a job name the worker and the job (and
# the task once there is one); no log line of mjq holds the API key.
line=$(grep -F '"msg":"handed back for another worker to resume"' \
    "$(log_file age)" | head -n 1)
jq -e '.ts and .level and .worker and .job == "old-1"' <<<"$line" \
    >/dev/null || fail "JSON log line without worker/job: '$line'"
for name in sup dup age; do
    ! grep -qF "$SIM_KEY" "$(log_file "$name")" ||
        fail "the API key appears in the log of $name"
done
pass "JSON logs carry worker and job; no secret in the logs"

# --- SIGHUP moves the endpoint --------------------------------------------------------
# admin.listen in a config file, changed under a running supervisor: to a
# new port (the old one closes), to a port Redis holds (logged, the
# endpoint stays where it was), then to "" (closed). The supervisor lives
# through all three.
conf=$E2E_DIR/admin.conf
write_listen()
{
    printf 'supervisor:\n{\n    workers = 1;\n};\nadmin:\n{\n    listen = "%s";\n};\n' \
        "$1" >"$conf.tmp"
    mv -f "$conf.tmp" "$conf"
}
port_a=$(free_port)
port_b=$(free_port)
[ "$port_a" != "$port_b" ] || port_b=$(free_port)
code_on() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1/healthz" || true; }
write_listen "127.0.0.1:$port_a"
start_run mv --config "$conf"
wait_alive mv 20 "/healthz on the first port" eval '[ "$(code_on "$port_a")" = 200 ]'

write_listen "127.0.0.1:$port_b"
signal_proc mv HUP
wait_alive mv 20 "/healthz on the new port" eval '[ "$(code_on "$port_b")" = 200 ]'
assert_eq "$(code_on "$port_a")" 000 "the old port after the move"
pass "reload: the endpoint moved from port $port_a to $port_b"

write_listen "127.0.0.1:$REDIS_PORT"
signal_proc mv HUP
wait_alive mv 20 "the failed move logged" \
    grep -q "admin endpoint: staying on http://127.0.0.1:$port_b" "$(log_file mv)"
grep -q "cannot listen on 127.0.0.1:$REDIS_PORT: bind: Address already in use" \
    "$(log_file mv)" || fail "bind failure on reload not logged"
assert_eq "$(code_on "$port_b")" 200 "/healthz after a failed move"
pass "reload to a taken port: logged, the endpoint stays on $port_b"

# The same port under another name: the old socket has to close first.
write_listen "localhost:$port_b"
signal_proc mv HUP
wait_alive mv 20 "the endpoint on localhost:$port_b" \
    grep -q "admin endpoint on http://localhost:$port_b " "$(log_file mv)"
wait_alive mv 10 "/healthz on localhost:$port_b" \
    eval '[ "$(code_on "$port_b")" = 200 ]'
pass "reload to the same port under another host name: served again"

write_listen ""
signal_proc mv HUP
wait_alive mv 20 "the closing logged" \
    grep -q "admin endpoint on http://localhost:$port_b closed" "$(log_file mv)"
wait_alive mv 10 "the endpoint closed" eval '[ "$(code_on "$port_b")" = 000 ]'
proc_alive mv || fail "the supervisor died"
signal_proc mv TERM
wait_exit mv 20
assert_eq "$(proc_status mv)" 0 "supervisor exit status after the reloads"
pass "reload to an empty admin.listen: closed; the supervisor exits 0 later"
