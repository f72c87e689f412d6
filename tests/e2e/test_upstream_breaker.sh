#!/usr/bin/env bash
# ctest-timeout: 120
# Circuit breaker: an account that answers HTTP 500 to everything trips
# after api.breaker_failures failures in a row: an "account" event
# (breaker_opened), no more submits to it (jobs wait in their queue),
# while the tasks it already runs are still polled. A probe tests it every
# pause (doubling while it fails); once it answers, the breaker closes by
# itself (breaker_closed) and every job ends SUCCESS with one accepted
# submit.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_redis
start_sim --duration-ms 4000
url=$MJQ_API_BASE_URL
export MJQ_POLL_SCHEDULE_MS=200 MJQ_RETRY_BASE_MS=50 MJQ_RETRY_MAX_MS=200
export MJQ_API_BREAKER_FAILURES=4 MJQ_API_BREAKER_OPEN_MS=500
export MJQ_SUBMIT_MAX_ATTEMPTS=100
MJQ_WORKER_ID=brk-w1 start_worker w1

acct() { sim_stats | jq -r --arg f "$1" '.accounts.default[$f]'; }

# Five jobs running upstream, then the account goes down.
push_jobs run 5
wait_alive w1 20 "5 tasks running upstream" \
    eval '[ "$(sim_stat accepted)" -ge 5 ]'
curl -sS --fail -X POST -d '{"down":true}' "$url/sim/accounts/default" >/dev/null
push_jobs wait 10
opened() { events_of account | jq -s -e 'any(.[]; .account == "default"
    and .change == "breaker_opened")' >/dev/null; }
wait_alive w1 20 "the breaker to open" opened
pass "breaker open after consecutive 500s: $(events_of account | jq -r 'select(.change == "breaker_opened") | .reason' | head -n 1)"

# Open: nothing is submitted while the tasks are still polled; the new
# jobs wait in their queue.
s0=$(acct submits)
f0=$(acct fetches)
deadline=$(($(now_ms) + 2000))
while [ "$(now_ms)" -lt "$deadline" ]; do
    sleep 0.2
done
s1=$(acct submits)
f1=$(acct fetches)
assert_eq "$s1" "$s0" "submits to the account while its breaker was open"
[ "$f1" -gt "$f0" ] || fail "no poll of the running tasks while the breaker was open ($f0 -> $f1 fetches)"
queued=$(rcli LLEN mjq:queue:default)
[ "$queued" -ge 5 ] || fail "only $queued jobs wait in the queue while the breaker is open"
pass "open for 2 s: no submit, $((f1 - f0)) polls (probes included), $queued jobs waiting in the queue"

curl -sS --fail -X POST -d '{"down":false}' "$url/sim/accounts/default" >/dev/null
closed() { events_of account | jq -s -e 'any(.[]; .account == "default"
    and .change == "breaker_closed")' >/dev/null; }
wait_alive w1 20 "the breaker to close (a probe found the account healthy)" closed
assert_invariant run 5 60
assert_invariant wait 10 60
assert_eq "$(events_of account | jq -s 'map(select(.change == "breaker_opened")) | length')" 1 \
    "times the breaker opened"
pass "the account came back: breaker closed by itself, every job SUCCESS once"
