#!/usr/bin/env bash
# ctest-timeout: 90
# End-to-end test of `mjq sim` accounts over HTTP: keys select accounts
# that own their tasks; per-account and per-mode limits (each dialect's
# refusal, in_flight_max never above the limit, even under a burst);
# revoked / quota / down flags and clearing them; --no-batch; faults on
# list-by-condition; min_read_gap_ms; reset keeping accounts; keys never
# in logs, stats or replies; the no-key default account. Needs MJQ_BIN
# (ctest sets it), curl and jq. Every wait is bounded. The limit checks
# hold slots with "forever" tasks and free them with cancels, so that
# no result depends on how fast a loaded machine runs the script.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/sim_lib.sh"
sim_init sim-accounts
KA=key-alice-8f3e1c
KB=key-bob-27d9a4
KC=key-carol-c0ffee

as()
{
    case $1 in
    alice) AUTH="Authorization: Bearer $KA" ;;
    bob) AUTH="Authorization: Bearer $KB" ;;
    bob-secret) AUTH="mj-api-secret: $KB" ;;
    carol) AUTH="Authorization: Bearer $KC" ;;
    none) AUTH="" ;;
    esac
}

# acct NAME ACCOUNT FILTER: jq FILTER on /sim/stats .accounts[ACCOUNT].
acct()
{
    local saved=$AUTH
    AUTH=""
    req "$1" GET /sim/stats
    AUTH=$saved
    jq -r --arg a "$2" ".accounts[\$a] | $3" <<<"$BODY"
}

# flags NAME ACCOUNT JSON: POST /sim/accounts/ACCOUNT.
flags()
{
    local saved=$AUTH
    AUTH=""
    req "$1" POST "/sim/accounts/$2" "$3"
    AUTH=$saved
    [ "$CODE" = 200 ] || fail "POST /sim/accounts/$2 $3: HTTP $CODE $BODY"
}

# cancel NAME ID...: cancels the current account's tasks (frees slots).
cancel()
{
    local name=$1 id
    shift
    for id in "$@"; do
        req "$name" POST "/mj/task/$id/cancel"
        [ "$CODE" = 200 ] || fail "cancel $id on $name: HTTP $CODE"
    done
}

ACCTS=(--account "alice=$KA" --account "bob=$KB")
start tai --dialect trueai "${ACCTS[@]}" --duration-ms 1500
start nzk --dialect novicezk "${ACCTS[@]}" --account-limit 2 \
    --duration-ms 4000
start napi --dialect newapi "${ACCTS[@]}" --account-limit 3 \
    --mode-limit fast=1 --duration-ms 4000
start tlim --dialect trueai "${ACCTS[@]}" --account-limit 2 --duration-ms 3000
MJQ_SIM_ACCOUNTS="alice=$KA,carol=$KC" MJQ_SIM_NO_BATCH=1 \
    start nobatch --dialect newapi
start flaky --dialect novicezk "${ACCTS[@]}" --rate-500 1 --seed 3
start open --dialect trueai
start keyed --dialect trueai --key "$KC"
ok "eight simulators started"

# --- two accounts isolate their tasks -------------------------------------
as alice
submit tai imagine '{"prompt":"a red cat","state":"iso-1"}'
expect "$CODE:$(j .code)" "200:1" "alice imagine"
grid=$(j .result)
req tai GET "/mj/task/$grid/fetch"
expect "$(j .state)" iso-1 "alice sees her task"
as bob
req tai GET "/mj/task/$grid/fetch"
expect "$CODE:$BODY" "204:" "bob fetches alice's task: trueai not found"
as bob-secret
req tai GET "/mj/task/$grid/fetch"
expect "$CODE:$BODY" "204:" "bob by mj-api-secret: not found either"
req tai POST /mj/task/list-by-condition "{\"ids\":[\"$grid\"]}"
expect "$CODE:$BODY" "200:[]" "bob lists alice's task"
submit tai imagine '{"prompt":"a blue dog","state":"iso-2"}'
bobs=$(j .result)
as alice
req tai POST /mj/task/list-by-ids "{\"ids\":[\"$grid\",\"$bobs\"]}"
expect "$(j 'length'):$(j '.[0].id')" "1:$grid" "alice lists only hers"
as alice
for _ in $(seq 1 100); do
    req tai GET "/mj/task/$grid/fetch"
    [ "$(j .status)" = SUCCESS ] && break
    sleep 0.1
done
expect "$(j .status)" SUCCESS "alice's grid finishes"
u1=$(j '.buttons[] | select(.label == "U1") | .customId')
as bob
submit tai action "{\"taskId\":\"$grid\",\"customId\":\"$u1\"}"
expect "$CODE:$(j .code):$(j .description)" "404:3:关联任务不存在或已失效" \
    "bob's action on alice's task: parent missing"
req tai POST "/mj/task/$grid/cancel"
expect "$CODE" 204 "bob cancels alice's task: not found"
as alice
submit tai action "{\"taskId\":\"$grid\",\"customId\":\"$u1\"}"
expect "$(j .code)" 1 "alice's own action"
# new-api and novicezk shapes for another account's task.
submit napi imagine '{"prompt":"cat forever"}'
napi_id=$(j .result)
submit nzk imagine '{"prompt":"cat forever"}'
nzk_id=$(j .result)
as bob
req napi GET "/mj/task/$napi_id/fetch"
expect "$CODE:$(j .description)" "400:task_no_found " "newapi: not found"
req nzk GET "/mj/task/$nzk_id/fetch"
expect "$CODE:$BODY" "200:" "novicezk: empty 200"
req tai GET /sim/stats
expect "$(j '.accepted_by_state["iso-1"]'):$(j '.accepted_by_state["iso-2"]')" \
    "1:1" "accepted_by_state counts every account"
expect "$(j .accounts.alice.accepted):$(j .accounts.bob.accepted)" "2:1" \
    "accepted per account"
expect "$(j .accounts.bob.batch_fetches):$(j .accounts.bob.batch_ids)" "1:1" \
    "bob's batch counters"
expect "$(j .accounts.alice.batch_fetches):$(j .accounts.alice.batch_ids)" \
    "1:2" "alice's batch counters"
ok "isolation: another account's task is not found in every dialect"

# --- limits: each dialect's refusal --------------------------------------
as alice
submit nzk imagine '{"prompt":"one forever"}' # the cat above is the first
expect "$(j .code)" 1 "novicezk second task"
submit nzk imagine '{"prompt":"three","state":"over"}'
expect "$CODE:$(j .code):$(j .description)" "200:23:队列已满，请稍后尝试" \
    "novicezk limit: code 23"
submit tlim imagine '{"prompt":"a forever"}'
ta=$(j .result)
submit tlim imagine '{"prompt":"b forever"}'
tb=$(j .result)
submit tlim imagine '{"prompt":"c"}'
expect "$CODE:$(j .code):$(j .description)" \
    "200:9:提交失败，队列已满，请稍后重试" "trueai limit: code 9"
as bob
submit tlim imagine '{"prompt":"d"}'
expect "$(j .code)" 1 "bob has his own budget"
as alice
submit napi imagine '{"prompt":"b forever"}'
nb1=$(j .result)
submit napi imagine '{"prompt":"c forever"}'
nb2=$(j .result)
submit napi imagine '{"prompt":"d"}'
expect "$CODE:$(j .code):$(j .description)" \
    "429:30:当前分组负载已饱和，请稍后再试" "newapi limit: HTTP 429 code 30"
req nzk GET /sim/stats
expect "$(j .accounts.alice.limit_refusals):$(j .limit_refusals)" "1:1" \
    "novicezk limit_refusals"
expect "$(j '.accepted_by_state.over // 0')" 0 "a refused submit is not accepted"
ok "limits: novicezk 23, trueai 9, newapi 429/30, per account"

# --- a burst never goes above the limit ----------------------------------
as alice
cancel tlim "$ta" "$tb"
req tlim POST /sim/reset
pids=()
for i in $(seq 1 12); do
    curl -s -o "$dir/burst.$i.json" -w '%{http_code}\n' --max-time 10 \
        -H "$AUTH" --data-binary "{\"prompt\":\"burst $i forever\"}" \
        "http://127.0.0.1:${PORT[tlim]}/mj/submit/imagine" \
        >"$dir/burst.$i.code" &
    pids+=($!)
done
for p in "${pids[@]}"; do
    wait "$p" || fail "burst curl failed"
done
[ "$(cat "$dir"/burst.*.code | sort -u)" = 200 ] || fail "burst statuses"
mapfile -t won < <(jq -r 'select(.code == 1) | .result' "$dir"/burst.*.json)
[ "${#won[@]}" = 2 ] || fail "burst: ${#won[@]} accepted, want 2"
req tlim GET /sim/stats
expect "$(j .accounts.alice.in_flight_max):$(j .accounts.alice.in_flight)" \
    "2:2" "burst: in_flight_max is the limit"
expect "$(j .accounts.alice.accepted):$(j .accounts.alice.limit_refusals)" \
    "2:10" "burst: 2 accepted, 10 refused"
expect "$(j .accounts.alice.in_flight_max_by_mode.default)" 2 "by mode"
submit tlim imagine '{"prompt":"after"}'
expect "$(j .code)" 9 "still full"
cancel tlim "${won[@]}"
submit tlim imagine '{"prompt":"after"}'
expect "$(j .code)" 1 "room again once the tasks ended"
expect "$(acct tlim alice .in_flight_max)" 2 "in_flight_max stays 2"
ok "burst of 12 at limit 2: in_flight_max 2, 10 refusals, room again later"

# --- per-mode limit ----------------------------------------------------------
cancel napi "$napi_id" "$nb1" "$nb2"
req napi POST /mj-fast/mj/submit/imagine '{"prompt":"fast 1 forever"}'
expect "$(j .code)" 1 "first fast task"
req napi POST /mj-fast/mj/submit/imagine '{"prompt":"fast 2"}'
expect "$CODE:$(j .code)" "429:30" "second fast task over fast=1"
req napi POST /mj-relax/mj/submit/imagine '{"prompt":"relax 1 forever"}'
expect "$(j .code)" 1 "relax has no mode limit"
req napi GET /sim/stats
expect "$(j .accounts.alice.in_flight_max_by_mode.fast)" 1 "fast max"
expect "$(j .accounts.alice.in_flight_by_mode.relax)" 1 "relax in flight"
req napi GET /sim/accounts
expect "$(j .account_limit):$(j .mode_limits.fast):$(j .auth)" "3:1:true" \
    "GET /sim/accounts settings"
ok "mode limit: fast=1 refuses the second fast task, relax unaffected"

# --- revoked, quota, down ----------------------------------------------------
as alice
submit tai imagine '{"prompt":"kept"}'
kept=$(j .result)
flags tai alice '{"revoked":true}'
expect "$(j .revoked):$(j .name)" "true:alice" "revoke answer"
req tai GET "/mj/task/$kept/fetch"
expect "$CODE:$BODY" "403:未登录" "revoked key: trueai 403"
submit tlim imagine '{"prompt":"x"}' # tlim: alice still fine there
expect "$(j .code)" 1 "flags are per simulator"
flags nzk alice '{"revoked":true}'
submit nzk imagine '{"prompt":"x"}'
expect "$CODE:$BODY" "401:" "revoked key: novicezk 401 empty"
flags napi alice '{"revoked":true}'
submit napi imagine '{"prompt":"x"}'
expect "$CODE:$(j .error.message)" "401:无效的令牌" "revoked key: newapi 401"
as bob
submit tai imagine '{"prompt":"bob still works"}'
expect "$(j .code)" 1 "another account is not revoked"
flags tai alice '{"revoked":false}'
as alice
req tai GET "/mj/task/$kept/fetch"
expect "$CODE:$(j .id)" "200:$kept" "unrevoked: the task is back"
flags nzk alice '{"revoked":false}'
flags napi alice '{"revoked":false}'
expect "$(acct tai alice .auth_refusals)" 1 "auth_refusals"
ok "revoked: per-dialect auth refusal, other accounts unaffected, cleared"

flags napi alice '{"quota":false}'
expect "$(j .quota)" false "quota flag"
submit napi imagine '{"prompt":"x"}'
expect "$CODE:$(j .description):$(j .type):$(j .code)" \
    "400:quota_not_enough :upstream_error:4" "newapi quota_not_enough"
req napi GET "/mj/task/$napi_id/fetch"
expect "$CODE:$(j .id)" "200:$napi_id" "fetch works without quota"
flags tai alice '{"quota":false}'
submit tai imagine '{"prompt":"x"}'
expect "$CODE:$(j .code):$(j .description)" "200:4:quota_not_enough" \
    "trueai quota_not_enough"
flags nzk alice '{"quota":false}'
submit nzk imagine '{"prompt":"x"}'
expect "$CODE:$(j .code):$(j .description)" "200:4:quota_not_enough" \
    "novicezk quota_not_enough"
flags napi alice '{"quota":true}'
submit napi imagine '{"prompt":"x"}'
expect "$(j .code)" 1 "quota back"
flags tai alice '{"quota":true}'
flags nzk alice '{"quota":true}'
expect "$(acct napi alice .quota_refusals)" 1 "quota_refusals"
ok "quota: quota_not_enough (newapi 400, others 200 code 4), fetches work"

flags tai alice '{"down":true}'
req tai GET "/mj/task/$kept/fetch"
expect "$CODE:$(j .code)" "500:-1" "down: trueai fetch 500"
submit tai imagine '{"prompt":"x"}'
expect "$CODE" 500 "down: submit 500"
req tai POST /mj/task/list-by-condition "{\"ids\":[\"$kept\"]}"
expect "$CODE" 500 "down: list 500"
flags napi alice '{"down":true}'
req napi GET "/mj/task/$napi_id/fetch"
expect "$CODE:$BODY" "500:Internal Server Error" "down: newapi 500"
as bob
req tai GET "/mj/task/$bobs/fetch"
expect "$CODE" 200 "bob is not down"
as alice
req tai GET /sim/stats
expect "$(j .accounts.alice.down_refusals):$(j .down_refusals)" "3:3" \
    "down_refusals"
flags tai alice '{"down":false,"revoked":false,"quota":true}'
flags napi alice '{"down":false}'
req tai GET "/mj/task/$kept/fetch"
expect "$CODE:$(j .id)" "200:$kept" "up again"
ok "down: every request of the account answers 500, then clears"

# bad control requests
req tai POST /sim/accounts/nobody '{"down":true}'
expect "$CODE" 404 "unknown account"
req tai POST /sim/accounts/alice '{"down":"yes"}'
expect "$CODE" 400 "non-boolean flag"
req tai POST /sim/accounts/alice '{"dwon":true}'
expect "$CODE" 400 "unknown field"
req tai GET /sim/accounts/alice
expect "$CODE" 405 "GET on an account"
req tai GET /sim/accounts
expect "$(j '.accounts | keys | join(",")'):$(j .accounts.alice.down)" \
    "alice,bob:false" "GET /sim/accounts"
ok "control endpoint: 404 unknown account, 400 bad body, 405"

# --- reset keeps accounts and flags ----------------------------------------
flags tlim bob '{"quota":false}'
as alice
req tlim POST /sim/reset '{"tasks":true}'
submit tlim imagine '{"prompt":"forever"}'
req tlim POST /sim/reset
expect "$(j .reset)" true "reset"
req tlim GET /sim/accounts
expect "$(j .accounts.bob.quota):$(j .accounts.alice.limit_refusals)" \
    "false:0" "reset keeps flags, zeroes counters"
expect "$(j .accounts.alice.in_flight):$(j .accounts.alice.in_flight_max)" \
    "1:1" "in_flight_max restarts from in_flight"
req tlim POST /sim/reset '{"tasks":true}'
req tlim GET /sim/accounts
expect "$(j .accounts.alice.in_flight):$(j .accounts.alice.in_flight_max)" \
    "0:0" "dropping the tasks empties in_flight"
flags tlim bob '{"quota":true}'
ok "reset: counters zeroed, flags kept, in_flight_max from in_flight"

# --- --no-batch, faults on list-by-condition ---------------------------------
as alice
submit nobatch imagine '{"prompt":"x"}'
expect "$(j .code)" 1 "MJQ_SIM_ACCOUNTS: alice"
nb=$(j .result)
req nobatch POST /mj/task/list-by-condition "{\"ids\":[\"$nb\"]}"
expect "$CODE:$BODY" "404:Not Found" "--no-batch: 404"
req nobatch POST /mj-fast/mj/task/list-by-ids "{\"ids\":[\"$nb\"]}"
expect "$CODE" 404 "--no-batch: alias 404 too"
req nobatch GET "/mj/task/$nb/fetch"
expect "$CODE:$(j .id)" "200:$nb" "fetch still works"
as carol
submit nobatch imagine '{"prompt":"x"}'
expect "$(j .code)" 1 "MJQ_SIM_ACCOUNTS: carol"
as bob
submit nobatch imagine '{"prompt":"x"}'
expect "$CODE" 401 "bob is not in MJQ_SIM_ACCOUNTS"
req nobatch GET /sim/stats
expect "$(j .batch_not_found):$(j .accounts.alice.batch_not_found)" "2:2" \
    "batch_not_found counted"
expect "$(j .batch_fetches)" 0 "no batch call served"
as alice
req flaky POST /mj/task/list-by-condition '{"ids":["1"]}'
expect "$CODE:$BODY" "500:Internal Server Error" "--rate-500 hits list"
req flaky GET /sim/stats
expect "$(j '.faults["500"]'):$(j .accounts.alice.batch_fetches)" "1:1" \
    "a faulted list call is counted"
ok "--no-batch answers 404 (counted); faults apply to list-by-condition"

# --- min_read_gap_ms -----------------------------------------------------------
as bob
req tai POST /sim/reset
submit tai imagine '{"prompt":"poll me"}'
pm=$(j .result)
[ "$(acct tai bob .min_read_gap_ms)" = null ] || fail "gap before reads"
req tai GET "/mj/task/$pm/fetch"
[ "$(acct tai bob .min_read_gap_ms)" = null ] || fail "gap after one read"
sleep 1
req tai POST /mj/task/list-by-condition "{\"ids\":[\"$pm\"]}"
gap=$(acct tai bob .min_read_gap_ms)
[ "$gap" -ge 990 ] && [ "$gap" -lt 60000 ] || fail "gap $gap after 1 s"
req tai GET "/mj/task/$pm/fetch"
req tai GET "/mj/task/$pm/fetch"
gap2=$(acct tai bob .min_read_gap_ms)
[ "$gap2" -lt "$gap" ] || fail "back-to-back reads: gap $gap2 not below $gap"
[ "$(acct tai alice .min_read_gap_ms)" = null ] || fail "alice's gap"
ok "min_read_gap_ms: null until a task is read twice, then the smallest gap ($gap then $gap2 ms)"

# --- no key: one default account, as before -----------------------------------
as none
submit open imagine '{"prompt":"x","state":"o1"}'
expect "$(j .code)" 1 "no auth"
oid=$(j .result)
as bob # any key is ignored without auth
req open GET "/mj/task/$oid/fetch"
expect "$CODE:$(j .id)" "200:$oid" "any key sees the default account"
req open GET /sim/stats
expect "$(j '.accounts | keys | join(",")'):$(j .accounts.default.accepted)" \
    "default:1" "default account"
for f in submits accepted rejected fetches batch_fetches batch_ids cancels \
    auth_failures accepted_by_state by_action by_mode faults tasks; do
    [ "$(j "has(\"$f\")")" = true ] || fail "/sim/stats lost $f"
done
as carol
submit keyed imagine '{"prompt":"x"}'
expect "$(j .code)" 1 "--key is the account default"
req keyed GET /sim/accounts
expect "$(j '.accounts | keys | join(",")'):$(j .accounts.default.accepted)" \
    "default:1" "--key account"
ok "no key: everything in account default; --key: account default"

# --- bad options, keys never shown ---------------------------------------------
st=0
"$MJQ_BIN" sim --account "x=$KA" --account "y=$KA" 2>"$dir/bad.err" || st=$?
[ "$st" = 64 ] || fail "duplicate key: exit $st"
st=0
"$MJQ_BIN" sim --account "no-equals-$KA" 2>>"$dir/bad.err" || st=$?
[ "$st" = 64 ] || fail "no '=': exit $st"
grep -q -- --account "$dir/bad.err" || fail "errors name the option"
stop_all
for k in "$KA" "$KB" "$KC"; do
    if grep -l -F -- "$k" "$dir"/*.log "$dir/replies" "$dir/bad.err"; then
        fail "a key appears in the files above"
    fi
done
if grep -l -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$dir"/*.log; then
    fail "sanitizer report"
fi
ok "keys never in logs, stats or replies; exit 0 on SIGTERM, no sanitizer report"
