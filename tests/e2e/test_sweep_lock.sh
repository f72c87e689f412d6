#!/usr/bin/env bash
# ctest-timeout: 90
# The recovery sweep runs under a deployment-wide Redis lock
# (mjq:sweep:lock): the supervisor holds it for about one sweep interval;
# while somebody else holds it, a dead worker's jobs stay where they are;
# once the lock is free, the supervisor sweeps them back and they are
# resumed by their task ids: one result and one accepted submit each.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_redis
start_sim --duration-ms 3000
unset MJQ_WORKER_ID
N=30

# A worker outside any supervisor, holding submitted jobs, is killed.
MJQ_WORKER_ID=lock-w1 start_worker w1 --heartbeat-ms 300 \
    --heartbeat-ttl-ms 1200 --poll-schedule-ms 200
push_jobs lock "$N"
recorded()
{
    local n=0 id
    for id in $(rcli LRANGE mjq:processing:lock-w1 0 -1 | jq -r .id); do
        [ -n "$(rcli HGET "mjq:job:$id" task_id)" ] && n=$((n + 1))
    done
    [ "$n" -ge 5 ]
}
wait_alive w1 20 "lock-w1 holding submitted jobs" recorded
# Somebody else holds the lock for a minute: no sweep may run.
rcli SET mjq:sweep:lock someone-else PX 60000 >/dev/null
kill9 w1
held=$(rcli LLEN mjq:processing:lock-w1)
wait_until 10 "lock-w1's heartbeat to expire" \
    eval '[ "$(rcli EXISTS mjq:worker:lock-w1)" = 0 ]'

start_run sup --workers 1 --sweep-interval-ms 400 --poll-schedule-ms 200
wait_until 20 "the supervisor's worker" \
    eval '[ -n "$(rcli --scan --pattern "mjq:worker:*")" ]'
# Ten sweep intervals with the lock held elsewhere: nothing moves.
deadline=$(($(now_ms) + 4000))
while [ "$(now_ms)" -lt "$deadline" ]; do
    [ "$(rcli LLEN mjq:processing:lock-w1)" = "$held" ] ||
        fail "jobs were swept while another supervisor held the lock"
    sleep 0.2
done
assert_eq "$(rcli GET mjq:sweep:lock)" someone-else "lock holder"
pass "$held jobs of a dead worker stay put while the lock is held elsewhere"

rcli DEL mjq:sweep:lock >/dev/null
wait_alive sup 10 "the sweep after the lock was freed" \
    eval '[ "$(rcli LLEN mjq:processing:lock-w1)" = 0 ]'
pass "lock freed: the supervisor swept lock-w1's jobs"
# The lock lives 90 % of each 400 ms interval: read holder and PTTL in
# one step, at a moment it exists.
lock_now() { rcli EVAL "local v = redis.call('GET', KEYS[1]); if not v then return nil end; return v .. ' ' .. redis.call('PTTL', KEYS[1])" 1 mjq:sweep:lock; }
lock=
for _ in $(seq 1 100); do # at most ~10 s
    lock=$(lock_now)
    [ -n "$lock" ] && break
    sleep 0.1
done
[ -n "$lock" ] || fail "mjq:sweep:lock never seen held in 10 s"
read -r holder ttl <<<"$lock"
assert_eq "$holder" "supervisor-$(proc_pid sup)" "sweep lock holder"
[ "$ttl" -gt 0 ] && [ "$ttl" -le 400 ] ||
    fail "sweep lock PTTL $ttl, want 1..400 ms (under one interval)"
pass "the supervisor now holds mjq:sweep:lock, for under one interval"
assert_invariant lock "$N" 40
