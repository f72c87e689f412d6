#!/usr/bin/env bash
# ctest-timeout: 60
# End-to-end test of `mjq sim` alone: auth, the task life cycle, actions,
# the modal flow, describe/shorten, batch fetch, the three dialects' wire
# shapes, prompt magic words, faults, counters and a clean SIGTERM exit.
# Needs MJQ_BIN (ctest sets it), curl and jq. Every wait is bounded.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/sim_lib.sh"
KEY=test-key
sim_init sim
SIM_ARGS=(--key "$KEY")
AUTH="Authorization: Bearer $KEY"

# wait_status NAME ID STATUS: polls fetch (max 5 s); BODY = last task.
wait_status()
{
    local _
    for _ in $(seq 1 50); do
        req "$1" GET "/mj/task/$2/fetch"
        [ "$CODE" = 200 ] && [ "$(j .status)" = "$3" ] && return 0
        sleep 0.1
    done
    fail "task $2 on $1 never reached $3 (last: HTTP $CODE $BODY)"
}

start tai --dialect trueai --duration-ms 1500 # slow enough to see a fresh task on a loaded machine
start nzk --dialect novicezk
start napi --dialect newapi
start faulty --dialect trueai --rate-500 1 --seed 7
start slow --dialect trueai --rate-slow 1 --slow-ms 300 --seed 7
start queued --dialect trueai --rate-in-queue 1 --numeric-ids --seed 7
start busy --dialect newapi --rate-429 1 --seed 7
start broken --dialect novicezk --rate-malformed 1 --rate-queue-full 1 --seed 7
ok "eight simulators started"

# --- health and auth ---------------------------------------------------------
AUTH=""
req tai GET /healthz
expect "$CODE:$BODY" "200:ok" "healthz without a key"
submit tai imagine '{"prompt":"cat"}'
expect "$CODE:$BODY" "403:未登录" "trueai without a key"
submit nzk imagine '{"prompt":"cat"}'
expect "$CODE:$BODY" "401:" "novicezk without a key"
submit napi imagine '{"prompt":"cat"}'
expect "$CODE:$(j .error.message)" "401:无效的令牌" "newapi without a key"
AUTH="Authorization: Bearer wrong"
req tai GET /mj/task/1/fetch
expect "$CODE" 403 "trueai with a wrong key"
AUTH="mj-api-secret: $KEY"
submit tai imagine '{"prompt":"cat"}'
expect "$CODE:$(j .code)" "200:1" "mj-api-secret header accepted"
AUTH="Authorization: Bearer $KEY"
ok "auth: per-dialect refusals, Bearer and mj-api-secret accepted"

# --- imagine to SUCCESS --------------------------------------------------------
submit tai imagine '{"prompt":"a red cat","state":"job-1"}'
expect "$CODE:$(j .code):$(j .description)" "200:1:Submit success" "imagine"
grid=$(j .result)
[[ $grid =~ ^[1-9][0-9]{15}$ ]] || fail "task id '$grid' is not 16 digits"
req tai GET "/mj/task/$grid/fetch"
case "$(j .status)" in
NOT_START | SUBMITTED | IN_PROGRESS) ;;
*) fail "fresh task status $(j .status)" ;;
esac
expect "$(j .state)" job-1 "state echoed"
wait_status tai "$grid" SUCCESS
expect "$(j .progress):$(j .action)" "100%:IMAGINE" "success progress"
expect "$(j '.buttons | length')" 9 "grid buttons"
u1=$(j '.buttons[] | select(.label == "U1") | .customId')
[[ $u1 == MJ::JOB::upsample::1::* ]] || fail "U1 customId '$u1'"
[[ $(j .imageUrl) == https://cdn.mjq-sim.invalid/*/grid_0.png?ex=* ]] ||
    fail "imageUrl $(j .imageUrl)"
[ "$(j .finishTime)" -gt "$(j .submitTime)" ] || fail "finishTime"
ok "imagine: accepted, progresses to SUCCESS with 9 buttons"

# --- actions -----------------------------------------------------------------
submit tai action "{\"taskId\":\"$grid\",\"customId\":\"$u1\",\"state\":\"job-2\"}"
expect "$(j .code)" 1 "U1 action"
up=$(j .result)
wait_status tai "$up" SUCCESS
expect "$(j .action)" UPSCALE "U1 makes an UPSCALE"
[[ $(j .imageUrl) == */upscale_1.png?* ]] || fail "upscale url"
zoom=$(j '.buttons[] | select(.label == "Custom Zoom") | .customId')
[[ $zoom == MJ::CustomZoom::* ]] || fail "Custom Zoom button '$zoom'"
ok "action U1 gives an UPSCALE task with its own buttons"

submit tai action '{"taskId":"1999999999999999","customId":"x"}'
expect "$CODE:$(j .code):$(j .description)" "404:3:关联任务不存在或已失效" \
    "action on a missing parent"
submit tai action "{\"taskId\":\"$grid\",\"customId\":\"MJ::JOB::nope\"}"
expect "$CODE:$(j .code):$(j .description)" "200:4:未知的 Action 类型" \
    "unknown customId"
submit tai imagine '{"prompt":"wait forever"}'
forever=$(j .result)
submit tai action "{\"taskId\":\"$forever\",\"customId\":\"$u1\"}"
expect "$(j .code):$(j .description)" "4:关联任务状态错误" "parent not done"
ok "action refusals: missing parent (404/3), unknown customId, not SUCCESS"

# --- modal flow ----------------------------------------------------------------
submit tai action "{\"taskId\":\"$up\",\"customId\":\"$zoom\"}"
expect "$(j .code):$(j .description):$(j .properties.remix)" \
    "21:Waiting for window confirm:true" "CustomZoom answers 21"
expect "$(j .properties.finalPrompt)" "a red cat" "modal finalPrompt"
modal=$(j .result)
[ "$modal" != "$up" ] || fail "modal task must be a new task"
req tai GET "/mj/task/$modal/fetch"
expect "$(j .status)" MODAL "modal task status"
submit tai modal "{\"taskId\":\"$modal\",\"prompt\":\"a red cat --zoom 1.5\"}"
expect "$(j .code):$(j .result)" "1:$modal" "modal submit"
wait_status tai "$modal" SUCCESS
expect "$(j .action):$(j .prompt)" "ZOOM:a red cat --zoom 1.5" "zoom result"
submit tai modal "{\"taskId\":\"$modal\"}"
expect "$(j .code)" 4 "modal on a task no longer MODAL"
submit napi imagine '{"prompt":"dog"}'
napi_grid=$(j .result)
wait_status napi "$napi_grid" SUCCESS
napi_u2=$(j '.buttons[] | select(.label == "U2") | .customId')
submit napi action "{\"taskId\":\"$napi_grid\",\"customId\":\"$napi_u2\"}"
napi_up=$(j .result)
wait_status napi "$napi_up" SUCCESS
inpaint=$(j '.buttons[] | select(.label == "Vary (Region)") | .customId')
submit napi action "{\"taskId\":\"$napi_up\",\"customId\":\"$inpaint\"}"
expect "$(j .code)" 21 "newapi keeps code 21 for Inpaint"
ok "modal: CustomZoom -> 21 + MODAL -> modal submit -> SUCCESS"

# --- describe and shorten ------------------------------------------------------
submit tai describe '{"base64":"data:image/png;base64,iVBORw0KGgo="}'
desc=$(j .result)
wait_status tai "$desc" SUCCESS
fp=$(j .properties.finalPrompt)
[[ $fp == "1️⃣ "*$'\n\n'"2️⃣ "*$'\n\n'"3️⃣ "*$'\n\n'"4️⃣ "* ]] ||
    fail "describe finalPrompt: $fp"
expect "$(j .promptEn)" "$fp" "trueai describe promptEn"
expect "$(j '[.buttons[].customId] | join(",")')" \
    "MJ::Job::PicReader::1,MJ::Job::PicReader::2,MJ::Job::PicReader::3,MJ::Job::PicReader::4" \
    "describe buttons"
submit tai describe '{}'
expect "$(j .code)" 4 "describe without an image"
submit tai shorten '{"prompt":"a very red cat sitting on a sunny window sill"}'
short=$(j .result)
wait_status tai "$short" SUCCESS
fp=$(j .properties.finalPrompt)
[[ $fp == "**Important tokens**"*"**Shortened prompts**"*"5️⃣ "* ]] ||
    fail "shorten finalPrompt: $fp"
expect "$(j '.buttons | length'):$(j .buttons[4].customId)" \
    "5:MJ::Job::PromptAnalyzer::5" "shorten buttons"
ok "describe (4 prompts, PicReader buttons) and shorten (analysis)"

# --- list-by-condition ---------------------------------------------------------
req tai POST /mj/task/list-by-condition \
    "{\"ids\":[\"$grid\",\"1999999999999999\",\"$up\",\"bogus\"]}"
expect "$CODE:$(j 'length')" "200:2" "list drops unknown ids"
expect "$(j '[.[].id] | sort | join(",")')" \
    "$(printf '%s\n' "$grid" "$up" | sort | paste -sd,)" "list ids"
expect "$(j '.[0].id')" "$up" "list order differs from the request"
req tai POST /mj/task/list-by-ids "{\"ids\":[\"$grid\"]}"
expect "$(j 'length')" 1 "list-by-ids alias"
ok "list-by-condition: existing tasks only, not in request order"

# --- not found, per dialect -------------------------------------------------------
req tai GET /mj/task/1999999999999999/fetch
expect "$CODE:$BODY" "204:" "trueai not found"
req nzk GET /mj/task/1999999999999999/fetch
expect "$CODE:$BODY" "200:" "novicezk not found"
req napi GET /mj/task/1999999999999999/fetch
expect "$CODE:$(j .description):$(j .code)" "400:task_no_found :4" \
    "newapi not found"
ok "fetch of an unknown id: 204 / 200 empty / 400 task_no_found"

# --- magic prompt words ----------------------------------------------------------
submit nzk imagine '{"prompt":"a banned thing"}'
expect "$(j .code):$(j .description):$(j .properties.bannedWord)" \
    "24:可能包含敏感词:banned" "novicezk banned word"
submit tai imagine '{"prompt":"a BANNED thing"}'
expect "$(j .code)" 1 "trueai accepts a banned word"
id=$(j .result)
wait_status tai "$id" FAILURE
expect "$(j .failReason)" "可能包含敏感词" "trueai banned failReason"
submit napi imagine '{"prompt":"banned"}'
id=$(j .result)
wait_status napi "$id" FAILURE
expect "$(j .failReason):$(j .progress)" "可能包含敏感词:100%" "newapi banned"
submit nzk imagine '{"prompt":"please fail"}'
id=$(j .result)
wait_status nzk "$id" FAILURE
expect "$(j .failReason)" "[Invalid parameter] Invalid value" "novicezk fail"
submit tai imagine '{"prompt":"please fail"}'
id=$(j .result)
wait_status tai "$id" FAILURE
expect "$(j .failReason)" "Invalid parameter, Invalid value" "trueai fail"
submit tai imagine '{"prompt":"vanish"}'
expect "$(j .code)" 1 "vanish is accepted"
req tai GET "/mj/task/$(j .result)/fetch"
expect "$CODE" 204 "vanished task is never found"
ok "banned (per dialect), fail, vanish"

# --- validation --------------------------------------------------------------------
submit tai imagine '{"prompt":"  "}'
expect "$CODE:$(j .code):$(j .description)" "200:4:prompt不能为空" "blank prompt"
submit napi imagine '{"prompt":""}'
expect "$CODE:$(j .code):$(j .type)" "400:4:upstream_error" "newapi blank"
submit tai imagine 'not json'
expect "$CODE:$(j .code)" "200:4" "body not JSON"
submit napi imagine 'not json'
expect "$CODE:$(j .description)" "400:bind_request_body_failed " "newapi JSON"
submit tai blend '{"base64Array":["data:image/png;base64,AA"]}'
expect "$(j .code)" 4 "blend with one image"
submit tai blend \
    '{"base64Array":["data:image/png;base64,AA","data:image/png;base64,BB"]}'
expect "$(j .code)" 1 "blend with two images"
ok "validation: code 4 (HTTP 200), newapi HTTP 400 wrapper"

# --- cancel -----------------------------------------------------------------------
req tai POST "/mj/task/$forever/cancel"
expect "$CODE:$BODY" "200:" "cancel"
req tai GET "/mj/task/$forever/fetch"
expect "$(j .status):$(j .failReason)" "FAILURE:取消任务" "trueai cancel"
submit nzk imagine '{"prompt":"forever"}'
id=$(j .result)
req nzk POST "/mj/task/$id/cancel"
req nzk GET "/mj/task/$id/fetch"
expect "$(j .status)" CANCEL "novicezk cancel"
ok "cancel: trueai FAILURE 取消任务, novicezk CANCEL"

# --- modes and counters ----------------------------------------------------------
submit tai imagine '{"prompt":"a fox","state":"job-1"}' >/dev/null
req tai POST /mj-fast/mj/submit/imagine '{"prompt":"fast fox","state":"job-3"}'
expect "$(j .code)" 1 "/mj-fast prefix"
req tai GET /sim/stats
expect "$(j '.accepted_by_state["job-1"]'):$(j '.accepted_by_state["job-3"]')" \
    "2:1" "accepted_by_state"
expect "$(j .by_mode.fast)" 1 "by_mode.fast"
expect "$(j .rejected)" 8 "rejected count"
[ "$(j .auth_failures)" -ge 2 ] || fail "auth_failures $(j .auth_failures)"
expect "$(j .batch_fetches):$(j .batch_ids)" "2:5" "batch counters"
ok "stats: accepted_by_state, by_mode, rejected, batch counters"
req napi POST /sim/reset '{"tasks":true}'
expect "$(j .reset)" true "reset"
req napi GET /sim/stats
expect "$(j .submits):$(j .tasks)" "0:0" "stats after reset"
ok "reset zeroes counters and drops tasks"

# --- faults ---------------------------------------------------------------------------
submit faulty imagine '{"prompt":"cat","state":"f1"}'
expect "$CODE:$(j .code)" "500:-1" "trueai 500 fault"
req faulty GET /sim/stats
expect "$(j '.faults["500"]'):$(j .accepted):$(j .tasks)" "1:0:0" \
    "a faulted submit creates nothing"
t0=$(date +%s%N)
submit slow imagine '{"prompt":"cat"}'
t1=$(date +%s%N)
expect "$CODE" 503 "slow submit ends in 503"
[ $(((t1 - t0) / 1000000)) -ge 250 ] || fail "slow reply was not slow"
# A client that gives up during a slow reply must not hurt the server.
curl -s -o /dev/null --max-time 0.1 -H "$AUTH" \
    "http://127.0.0.1:${PORT[slow]}/mj/task/1/fetch" || true
sleep 0.4
req slow GET /healthz
expect "$CODE" 200 "alive after a client hung up on a slow reply"
submit queued imagine '{"prompt":"cat"}'
expect "$(j .code):$(j '.result | type'):$(j '.properties.numberOfQueues > 0')" \
    "22:number:true" "in-queue code 22 with a numeric id"
submit busy imagine '{"prompt":"cat"}'
expect "$CODE:$(j .code)" "429:30" "newapi 429 fault"
req busy GET /mj/task/1/fetch
expect "$CODE" 429 "faults hit fetches too"
submit broken imagine '{"prompt":"cat"}'
expect "$CODE" 200 "malformed reply status"
if jq -e . <<<"$BODY" >/dev/null 2>&1; then
    fail "malformed body parses as JSON: $BODY"
fi
req broken GET /sim/stats
expect "$(j .faults.malformed):$(j .accepted)" "1:0" "malformed counted"
ok "faults: 500, 429, slow (503 for submits), malformed, in-queue 22"

# --- clean exit ----------------------------------------------------------------------
stop_all
if grep -l -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$dir"/*.log; then
    fail "sanitizer report"
fi
ok "SIGTERM: every simulator exited 0, no sanitizer report"
