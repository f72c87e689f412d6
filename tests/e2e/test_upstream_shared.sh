#!/usr/bin/env bash
# ctest-timeout: 120
# An account one worker finds broken is skipped by every worker: the
# worker that saw the refused key marks it down in Redis (mjq:down:<name>,
# a secret-free reason, a TTL); another worker's claims then skip it
# without sending it a request of its own (it never hears the 401, so it
# emits no account event). The finder's probe clears the mark when the
# account answers again; a mark whose finder died expires by itself, and
# the next worker to meet the broken account marks it again.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_redis
KA=key-alpha-2f61c0
KB=key-beta-9ad47e
start_sim --duration-ms 300 --account alpha=$KA --account beta=$KB
url=$MJQ_API_BASE_URL
unset MJQ_API_KEY MJQ_API_BASE_URL MJQ_WORKER_ID
cat >"$E2E_DIR/mjq.conf" <<EOF
api: { probe_interval_ms = 1000; timeout_ms = 2000; };
upstreams = (
    { name = "alpha"; base_url = "$url"; key = "$KA"; },
    { name = "beta"; base_url = "$url"; key = "$KB"; }
);
EOF
export MJQ_CONFIG=$E2E_DIR/mjq.conf MJQ_POLL_SCHEDULE_MS=100
export MJQ_RETRY_BASE_MS=50 MJQ_RETRY_MAX_MS=200

acct() { sim_stats | jq -r --arg a "$1" --arg f "$2" '.accounts[$a][$f]'; }
# account events of one worker about alpha, as "change" lines
changes_of() {
    events_of account | jq -r --arg w "$1" \
        'select(.worker == $w and .account == "alpha") | .change'
}
revoke() {
    curl -sS --fail -X POST -d "{\"revoked\":$1}" "$url/sim/accounts/alpha" >/dev/null
}

# --- worker A meets the revoked key and marks alpha down ----------------------------
revoke true
MJQ_WORKER_ID=share-a start_worker wa --concurrency 1
push_jobs first 1
assert_invariant first 1 30
wait_until 10 "share-a: alpha left rotation" eval '[ "$(changes_of share-a)" = left_rotation ]'
mark=$(rcli GET mjq:down:alpha)
[[ $mark == *key* ]] || fail "mjq:down:alpha holds '$mark', want the reason (refused key)"
ttl=$(rcli PTTL mjq:down:alpha)
[ "$ttl" -gt 0 ] && [ "$ttl" -le 4000 ] ||
    fail "mjq:down:alpha PTTL $ttl, want 1..4000 ms (next probe + timeout + 1 s)"
! grep -qF "$KA" <<<"$mark" || fail "the mark holds the key"
st=$("$MJQ_BIN" status --json)
[[ $(jq -r '.accounts[] | select(.name == "alpha") | .down.reason' <<<"$st") == *key* ]] ||
    fail "mjq status --json: alpha not shown down: $(jq -c .accounts <<<"$st")"
assert_eq "$(jq -r '.accounts[] | select(.name == "beta") | .down' <<<"$st")" null \
    "beta's down mark in mjq status --json"
"$MJQ_BIN" status | grep -q "DOWN for every worker, [0-9.]* s more: .*key" ||
    fail "mjq status does not show alpha DOWN: $("$MJQ_BIN" status | grep -A1 alpha)"
pass "share-a: alpha out of rotation, marked down for every worker ($mark); mjq status shows it"

# --- worker B skips alpha without a request of its own ------------------------------
before=$(acct beta accepted)
MJQ_WORKER_ID=share-b start_worker wb --concurrency 10
push_jobs skip 30
assert_invariant skip 30 60
assert_eq "$(changes_of share-b)" "" "share-b's account events about alpha"
[ "$(acct beta accepted)" -ge $((before + 30)) ] ||
    fail "beta accepted $(($(acct beta accepted) - before)) of 30 jobs"
pass "share-b: 30 jobs SUCCESS on beta, none sent to alpha (no refusal heard)"

# --- the finder's probe clears the mark ---------------------------------------------
revoke false
wait_until 10 "share-a: alpha returned" \
    eval '[ "$(changes_of share-a | tail -n 1)" = returned ]'
wait_until 5 "the mark cleared" eval '[ "$(rcli EXISTS mjq:down:alpha)" = 0 ]'
before=$(acct alpha accepted)
push_jobs back 20
assert_invariant back 20 60
[ "$(acct alpha accepted)" -gt "$before" ] || fail "alpha took no job after its return"
pass "alpha answered share-a's probe: mark cleared, alpha takes jobs again"

# --- a finder that dies: its mark expires, the next worker marks it again -----------
revoke true
push_jobs again 20
assert_invariant again 20 60
wait_until 10 "alpha marked down again" eval '[ "$(rcli EXISTS mjq:down:alpha)" = 1 ]'
kill9() { signal_proc "$1" KILL; wait_exit "$1" 10; }
kill9 wa
kill9 wb
wait_until 8 "the mark of the dead workers expired" \
    eval '[ "$(rcli EXISTS mjq:down:alpha)" = 0 ]'
MJQ_WORKER_ID=share-c start_worker wc --concurrency 1
push_jobs late 3
assert_invariant late 3 60
wait_until 10 "share-c: alpha left rotation" eval '[ "$(changes_of share-c)" = left_rotation ]'
wait_until 5 "share-c's mark" eval '[ "$(rcli EXISTS mjq:down:alpha)" = 1 ]'
pass "the mark died with the workers that kept it; share-c found alpha broken and marked it"
stop_proc wc

for f in "$E2E_DIR"/*.log; do
    ! grep -qF -- "$KA" "$f" || fail "$(basename "$f") contains alpha's key"
done
pass "no key in the logs"
