#!/usr/bin/env bash
# ctest-timeout: 60
# An idle worker costs no CPU: once connected, its utime+stime stay flat
# over 5 seconds (a heartbeat every 2 s may cost a tick), and it still
# takes a job pushed after the idle period, promptly.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_redis
start_sim --duration-ms 300

# wait_alive NAME SECS DESC CMD...: wait_until CMD, but stop at once (and
# fail) if process NAME died meanwhile.
dead_or() { ! proc_alive "$1" || "${@:2}"; }
wait_alive()
{
    wait_until "$2" "$3" dead_or "$1" "${@:4}"
    proc_alive "$1" || fail "'$1' died while waiting for: $3 (see its log)"
}

start_worker w1 --poll-schedule-ms 100 --heartbeat-ms 2000

started() { rcli XRANGE mjq:events - + | grep -qx worker_started; }
wait_until 20 "the worker_started event" started
# Let start-up work (script loads, first take, first heartbeat) settle.
wait_until 10 "a heartbeat key" \
    eval '[ -n "$(rcli --scan --pattern "mjq:worker:*")" ]'

WINDOW_MS=5000
MAX_TICKS=2
t0=$(now_ms)
c0=$(cpu_ticks w1)
# Sample while the window runs, so a busy loop fails early.
while :; do
    c=$(cpu_ticks w1)
    [ $((c - c0)) -le "$MAX_TICKS" ] ||
        fail "idle worker used $((c - c0)) ticks in $(($(now_ms) - t0)) ms (max $MAX_TICKS in ${WINDOW_MS} ms)"
    [ $(($(now_ms) - t0)) -ge "$WINDOW_MS" ] && break
    sleep 0.5 # measurement window, not synchronisation
done
pass "idle: $((c - c0)) CPU ticks in $(($(now_ms) - t0)) ms"
proc_alive w1 || fail "worker died while idle"

t0=$(now_ms)
enqueue_json '{"id":"after-idle","action":"imagine","body":{"prompt":"wake up"}}'
wait_alive w1 10 "a result for after-idle" result_field after-idle status
elapsed=$(($(now_ms) - t0))
assert_eq "$(result_field after-idle status)" SUCCESS "job after idle"
# 300 ms upstream + 100 ms poll: anything near 2 s means the take was late.
[ "$elapsed" -le 2500 ] ||
    fail "job after the idle period took ${elapsed} ms (want <= 2500)"
pass "job pushed after idling finished in ${elapsed} ms"
