#!/usr/bin/env bash
# ctest-timeout: 180
# Global concurrency limits: api.max_in_flight = 3 and a relax limit of 1,
# enforced through Redis across three worker processes in two `mjq run`
# pods. The simulator refuses anything beyond 3 (1 in relax) per account,
# so a single refusal would mean the limit leaked; none may happen. While
# the limit is reached jobs wait in their queue (LLEN > 0 with fewer than
# 3 in flight upstream), and every job ends SUCCESS with one accepted
# submit. A worker killed with SIGKILL while holding leases leaks no
# capacity: its tasks running upstream keep their leases until resumed and
# finished, and the lease hashes end empty.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_redis
start_sim --duration-ms 1500 --account-limit 3 --mode-limit relax=1
unset MJQ_WORKER_ID
export MJQ_API_MAX_IN_FLIGHT=3 MJQ_API_LIMIT_RELAX=1
export MJQ_POLL_SCHEDULE_MS=200 MJQ_CONCURRENCY=50
N=24
R=6

start_run pod1 --workers 2
start_run pod2 --workers 1
wait_until 20 "three workers" eval \
    '[ "$(rcli --scan --pattern "mjq:worker:*" | wc -l)" = 3 ]'

push_jobs lim "$N"
args=()
for i in $(seq 1 "$R"); do
    args+=("{\"id\":\"limr-$i\",\"action\":\"imagine\",\"mode\":\"relax\",\"body\":{\"prompt\":\"relax $i\"}}")
done
rcli LPUSH mjq:queue:default "${args[@]}" >/dev/null

# While the account is full, the other jobs are in the queue, not held
# by workers: at most 3 leases, and what is not leased is mostly queued.
waiting()
{
    local q leased
    q=$(rcli LLEN mjq:queue:default)
    leased=$(rcli HLEN mjq:lease:default)
    [ "$leased" -le 3 ] && [ "$q" -ge 10 ] && [ "$leased" -ge 1 ]
}
wait_alive pod1 20 "jobs waiting in the queue while 3 are in flight" waiting
pass "the account is full: $(rcli HLEN mjq:lease:default) leased, $(rcli LLEN mjq:queue:default) waiting in the queue"

# --- SIGKILL one worker holding leases ------------------------------------------
holder=$(rcli HGETALL mjq:lease:default | awk 'NR % 2 == 0' | head -n 1)
[ -n "$holder" ] || fail "no lease holder"
pid=$(rcli GET "mjq:worker:$holder" | jq -r .pid)
kill -KILL "$pid"
pass "killed worker $holder (pid $pid) holding $(rcli HGETALL mjq:lease:default | awk -v w="$holder" 'NR % 2 == 0 && $0 == w' | wc -l) leases"

assert_invariant lim "$N" 120
assert_invariant limr "$R" 60
stats=$(sim_stats)
acct=$(jq -c '.accounts.default' <<<"$stats")
assert_eq "$(jq -r .limit_refusals <<<"$acct")" 0 \
    "submits refused by the simulator's limit (the semaphore leaked): $acct"
[ "$(jq -r .in_flight_max <<<"$acct")" -le 3 ] ||
    fail "in flight upstream at once: $(jq -r .in_flight_max <<<"$acct"), limit 3"
[ "$(jq -r '.in_flight_max_by_mode.relax // 0' <<<"$acct")" -le 1 ] ||
    fail "relax in flight at once: $(jq -c .in_flight_max_by_mode <<<"$acct"), limit 1"
[ "$(jq -r .in_flight_max <<<"$acct")" -ge 2 ] ||
    fail "never more than one job in flight: the limit was not used"
pass "never more than 3 in flight ($(jq -r .in_flight_max <<<"$acct")), relax never more than 1, no refusal"
assert_eq "$(rcli HLEN mjq:lease:default)" 0 "leases left"
assert_eq "$(rcli HLEN mjq:lease:default:relax)" 0 "relax leases left"
pass "no capacity leaked by the dead worker: lease hashes empty"
