#!/usr/bin/env bash
# ctest-timeout: 180
# Several accounts (the file's `upstreams` list) on one simulator, each
# account a key that owns its tasks:
#  - jobs spread over the accounts that serve their mode, and only those;
#  - a follow-up (action) goes to the account that ran its parent task
#    (the simulator answers "parent not found" on any other);
#  - an account whose key is refused, then one out of quota, leaves
#    rotation (an "account" event, no key anywhere) while its jobs succeed
#    on the other account, and returns once a probe finds it healthy;
#  - keys from a file, from the environment (key_env), sent as a Bearer
#    token or as mj-api-secret.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_redis
KA=key-alpha-71c2e9
KB=key-beta-5d08aa
start_sim --duration-ms 600 --account alpha=$KA --account beta=$KB
url=$MJQ_API_BASE_URL
unset MJQ_API_KEY MJQ_API_BASE_URL MJQ_WORKER_ID
printf '%s\n' "$KB" >"$E2E_DIR/beta.key"
export MJ_KEY_ALPHA=$KA
cat >"$E2E_DIR/mjq.conf" <<EOF
api: { probe_interval_ms = 1000; };
upstreams = (
    { name = "alpha"; base_url = "$url"; key_env = "MJ_KEY_ALPHA";
      modes = ["default", "fast"]; },
    { name = "beta"; base_url = "$url"; key_file = "$E2E_DIR/beta.key";
      auth = "mj-api-secret"; modes = ["default", "relax"]; }
);
EOF
export MJQ_CONFIG=$E2E_DIR/mjq.conf MJQ_POLL_SCHEDULE_MS=150
export MJQ_RETRY_BASE_MS=50 MJQ_RETRY_MAX_MS=200
admin=$(free_port)
start_run pod --workers 2 --http-listen "127.0.0.1:$admin"
# metric NAME LABELS: the value of one sample on the supervisor's /metrics.
metric()
{
    curl -sS --fail --max-time 5 "http://127.0.0.1:$admin/metrics" |
        awk -v m="$1{$2}" '$1 == m {print $2}'
}

acct() { sim_stats | jq -r --arg a "$1" --arg f "$2" '.accounts[$a][$f]'; }
accepted_on() { acct "$1" accepted; }

# --- spread, modes, follow-ups ------------------------------------------------------
push_jobs img 20
args=()
for i in $(seq 1 6); do
    args+=("{\"id\":\"fast-$i\",\"action\":\"imagine\",\"mode\":\"fast\",\"body\":{\"prompt\":\"fast $i\"}}")
    args+=("{\"id\":\"relax-$i\",\"action\":\"imagine\",\"mode\":\"relax\",\"body\":{\"prompt\":\"relax $i\"}}")
done
rcli LPUSH mjq:queue:default "${args[@]}" >/dev/null
assert_invariant img 20 60
wait_results 32 30
for i in $(seq 1 6); do
    assert_eq "$(result_field "fast-$i" status)" SUCCESS "fast-$i"
    assert_eq "$(result_field "relax-$i" status)" SUCCESS "relax-$i"
done
a=$(accepted_on alpha)
b=$(accepted_on beta)
[ "$a" -ge 8 ] && [ "$b" -ge 8 ] ||
    fail "default-mode jobs not spread over both accounts: alpha $a, beta $b"
stats=$(sim_stats)
assert_eq "$(jq -r '.accounts.alpha.in_flight_max_by_mode.relax // 0' <<<"$stats")" 0 \
    "relax jobs on alpha, which does not serve relax"
assert_eq "$(jq -r '.accounts.beta.in_flight_max_by_mode.fast // 0' <<<"$stats")" 0 \
    "fast jobs on beta, which does not serve fast"
pass "20 jobs spread (alpha $a, beta $b accepted); fast only on alpha, relax only on beta"

# An upscale of every image: each must go where its grid was made.
args=()
for i in $(seq 1 20); do
    tid=$(result_field "img-$i" task_id)
    cid=$(result_field "img-$i" buttons | jq -r '.[] | select(.label == "U1") | .customId')
    args+=("{\"id\":\"up-$i\",\"action\":\"action\",\"body\":{\"taskId\":\"$tid\",\"customId\":\"$cid\"}}")
done
rcli LPUSH mjq:queue:default "${args[@]}" >/dev/null
wait_results 52 60
bad=$(results_jsonl | jq -r 'select(.id | startswith("up-")) | select(.status != "SUCCESS")
    | "\(.id) \(.status) \(.fail_reason)"' | head -n 3)
[ -z "$bad" ] || fail "follow-ups that failed (sent to the wrong account?): $bad"
assert_eq "$(rcli --scan --pattern 'mjq:task:*' | wc -l)" 52 "task owners recorded"
pass "20 follow-ups SUCCESS, each on the account of its parent"

# --- a refused key: alpha leaves rotation, beta takes the jobs ----------------------
curl -sS --fail -X POST -d '{"revoked":true}' "$url/sim/accounts/alpha" >/dev/null
before=$(accepted_on alpha)
push_jobs rev 20
assert_invariant rev 20 60
assert_eq "$(accepted_on alpha)" "$before" "jobs accepted on the revoked account"
left() { events_of account | jq -s -e --arg c "$1" 'any(.[]; .account == "alpha"
    and .change == $c)' >/dev/null; }
wait_until 5 "an account event: alpha left rotation" left left_rotation
events_of account | jq -s -e 'any(.[]; .account == "alpha" and
    .change == "left_rotation" and (.reason | test("key")))' >/dev/null ||
    fail "left_rotation without a reason naming the key: $(events_of account | tail -n 2)"
pass "revoked key: alpha out of rotation (event), 20 jobs SUCCESS on beta"
wait_until 10 "mjq_account_up{account=alpha} 0 on /metrics" \
    eval '[ "$(metric mjq_account_up account=\"alpha\")" = 0 ]'
assert_eq "$(metric mjq_account_up 'account="beta"')" 1 "mjq_account_up of beta"
[ "$(metric mjq_account_changes_total 'account="alpha",change="left_rotation"')" -ge 1 ] ||
    fail "mjq_account_changes_total{left_rotation} of alpha: $(metric mjq_account_changes_total 'account="alpha",change="left_rotation"')"
pass "metrics: mjq_account_up 0 for alpha, 1 for beta; left_rotation counted"

curl -sS --fail -X POST -d '{"revoked":false}' "$url/sim/accounts/alpha" >/dev/null
wait_until 10 "alpha back in rotation (a probe found it healthy)" left returned
push_jobs back 20
assert_invariant back 20 60
[ "$(accepted_on alpha)" -gt "$before" ] || fail "alpha took no job after it returned"
wait_until 10 "mjq_account_up{account=alpha} 1 again" \
    eval '[ "$(metric mjq_account_up account=\"alpha\")" = 1 ]'
pass "alpha returned after a probe and took jobs again (mjq_account_up 1)"

# --- out of quota: the same, with the reason ------------------------------------------
curl -sS --fail -X POST -d '{"quota":false}' "$url/sim/accounts/beta" >/dev/null
push_jobs quota 20
assert_invariant quota 20 60
events_of account | jq -s -e 'any(.[]; .account == "beta" and
    .change == "left_rotation" and (.reason | test("quota")))' >/dev/null ||
    fail "no event: beta left rotation for its quota"
pass "beta out of quota: out of rotation, 20 jobs SUCCESS on alpha"
curl -sS --fail -X POST -d '{"quota":true}' "$url/sim/accounts/beta" >/dev/null

# --- no key anywhere ----------------------------------------------------------------
for f in "$E2E_DIR"/*.log; do
    for k in "$KA" "$KB"; do
        ! grep -qF -- "$k" "$f" || fail "$(basename "$f") contains an API key"
    done
done
for k in "$KA" "$KB"; do
    ! rcli --json XRANGE mjq:events - + | grep -qF -- "$k" ||
        fail "an event contains an API key"
    ! rcli --json XRANGE mjq:results - + | grep -qF -- "$k" ||
        fail "a result contains an API key"
    ! rcli HGETALL mjq:accounts | grep -qF -- "$k" ||
        fail "mjq:accounts contains an API key"
done
pass "no key in logs, events, results or mjq:accounts"
