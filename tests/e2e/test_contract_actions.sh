#!/usr/bin/env bash
# ctest-timeout: 90
# Contract §1-§2, the six actions end to end against `mjq sim`: each one
# SUCCEEDs with the fields the contract promises (image_url, buttons, task,
# submits, polls, worker, started_ms/finished_ms, action); a follow-up
# `action` built from a result's task_id + buttons; the modal flow
# (CustomZoom -> FAILURE "modal" -> `modal` job -> SUCCESS); `mode`
# routing (sim by_mode counts exactly); `state` set to the job id upstream.
# Against a recording fake API: the body goes upstream unchanged except
# state (the job id) and notifyHook (MJQ_NOTIFY_HOOK); a mode uses its
# configured route (MJQ_ROUTE_RELAX) for submit and fetch; the key is sent.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_redis
start_sim --duration-ms 500
MJQ_POLL_SCHEDULE_MS=100,200 start_worker w1

# Asserts the fields every SUCCESS carries; $1 id, $2 action.
check_success()
{
    local id=$1 action=$2 r task
    r=$(result_json "$id") || fail "$id: no result"
    assert_eq "$(jq -r .status <<<"$r")" SUCCESS "$id status ($r)"
    assert_eq "$(jq -r .action <<<"$r")" "$action" "$id action"
    assert_eq "$(jq -r 'has("fail_reason")' <<<"$r")" false \
        "$id: SUCCESS carries no fail_reason"
    assert_eq "$(jq -r 'has("meta")' <<<"$r")" false "$id: no meta in job"
    [[ $(jq -r .task_id <<<"$r") =~ ^[0-9]+$ ]] || fail "$id task_id: $r"
    task=$(jq -r .task <<<"$r")
    assert_eq "$(jq -r .id <<<"$task")" "$(jq -r .task_id <<<"$r")" \
        "$id: task.id == task_id"
    assert_eq "$(jq -r .status <<<"$task")" SUCCESS "$id: task.status"
    assert_eq "$(jq -r .state <<<"$task")" "$id" "$id: state sent upstream"
    # buttons is the task's buttons array, as JSON text.
    assert_eq "$(jq -r '.buttons | fromjson | type' <<<"$r")" array \
        "$id: buttons is a JSON array"
    assert_eq "$(jq -c '.buttons | fromjson' <<<"$r")" \
        "$(jq -c .buttons <<<"$task")" "$id: buttons == task.buttons"
    assert_eq "$(jq -r .submits <<<"$r")" 1 "$id submits"
    [[ $(jq -r .polls <<<"$r") =~ ^[1-9][0-9]*$ ]] || fail "$id polls: $r"
    [ -n "$(jq -r .worker <<<"$r")" ] || fail "$id: empty worker"
    [[ $(jq -r .started_ms <<<"$r") =~ ^[0-9]{13}$ ]] || fail "$id started_ms"
    [[ $(jq -r .finished_ms <<<"$r") =~ ^[0-9]{13}$ ]] ||
        fail "$id finished_ms"
    [ "$(jq -r .started_ms <<<"$r")" -le "$(jq -r .finished_ms <<<"$r")" ] ||
        fail "$id: started_ms > finished_ms: $r"
}

# image_url is set and is the task's imageUrl.
check_image()
{
    local r
    r=$(result_json "$1")
    [[ $(jq -r .image_url <<<"$r") =~ ^https?://. ]] ||
        fail "$1 image_url: $(jq -r .image_url <<<"$r")"
    assert_eq "$(jq -r .image_url <<<"$r")" \
        "$(jq -r '.task | fromjson | .imageUrl' <<<"$r")" \
        "$1: image_url == task.imageUrl"
}

# --- imagine, blend, describe, shorten -------------------------------------
prompt='a red cat ☕ "quoted" --ar 16:9'
enqueue_json "$(jq -cn --arg p "$prompt" \
    '{id:"i1",action:"imagine",body:{prompt:$p}}')"
enqueue_json '{"id":"b1","action":"blend","body":{"base64Array":["data:image/png;base64,iVBORw0KGgo=","data:image/jpeg;base64,/9j/4AAQSkZJRg=="],"dimensions":"SQUARE"}}'
enqueue_json '{"id":"d1","action":"describe","body":{"base64":"data:image/png;base64,iVBORw0KGgo="}}'
enqueue_json '{"id":"s1","action":"shorten","body":{"prompt":"a very long and winding prompt about a red cat"}}'
wait_results 4 20

check_success i1 imagine
check_image i1
r=$(result_json i1)
assert_eq "$(jq -r '.task | fromjson | .prompt' <<<"$r")" "$prompt" \
    "imagine body passed through (prompt)"
assert_eq "$(jq -r '.task | fromjson | .action' <<<"$r")" IMAGINE "i1 task.action"
assert_eq "$(jq -r '.buttons | fromjson | map(.label) | join(",")' <<<"$r")" \
    "U1,U2,U3,U4,,V1,V2,V3,V4" "i1 button labels"
for n in 1 2 3 4; do
    jq -e --arg n "$n" '.buttons | fromjson | map(select(.label == "U\($n)"
        and (.customId | startswith("MJ::JOB::upsample::\($n)::"))))
        | length == 1' <<<"$r" >/dev/null || fail "i1: no U$n customId"
    jq -e --arg n "$n" '.buttons | fromjson | map(select(.label == "V\($n)"
        and (.customId | startswith("MJ::JOB::variation::\($n)::"))))
        | length == 1' <<<"$r" >/dev/null || fail "i1: no V$n customId"
done
pass "imagine: SUCCESS, image_url, buttons U1..V4, task, counters"

check_success b1 blend
check_image b1
assert_eq "$(result_field b1 task | jq -r .action)" BLEND "b1 task.action"
pass "blend: SUCCESS with two data URLs"

check_success d1 describe
final=$(result_field d1 task | jq -r .properties.finalPrompt)
assert_eq "$(grep -cE '^[1-4]️⃣ .+' <<<"$final")" 4 \
    "describe: 4 prompts in finalPrompt ($final)"
for n in 1 2 3 4; do
    grep -qE "^${n}️⃣ " <<<"$final" || fail "describe: no prompt $n: $final"
done
assert_eq "$(result_field d1 task | jq -r .action)" DESCRIBE "d1 task.action"
pass "describe: SUCCESS, finalPrompt holds 4 prompts"

check_success s1 shorten
assert_eq "$(result_field s1 task | jq -r .action)" SHORTEN "s1 task.action"
result_field s1 task | jq -e '.properties.finalPrompt | test("Shortened prompts")' \
    >/dev/null || fail "shorten: no shortened prompts in the task"
assert_eq "$(result_field s1 buttons | jq length)" 5 "shorten buttons"
pass "shorten: SUCCESS"

# --- action: a follow-up from i1's task_id and its U1 customId ---------------
i1_task=$(result_field i1 task_id)
u1=$(result_field i1 buttons | jq -r '.[] | select(.label == "U1") | .customId')
enqueue_json "$(jq -cn --arg t "$i1_task" --arg c "$u1" \
    '{id:"a1",action:"action",body:{taskId:$t,customId:$c}}')"
wait_until 20 "a result for a1" result_field a1 status
check_success a1 action
check_image a1
a1_task=$(result_field a1 task_id)
[ "$a1_task" != "$i1_task" ] || fail "upscale reused the parent's task_id"
assert_eq "$(result_field a1 task | jq -r .action)" UPSCALE "a1 task.action"
pass "action (U1): UPSCALE SUCCESS with a new task_id"

# --- modal: CustomZoom needs modal input; a `modal` job supplies it ----------
zoom=$(result_field a1 buttons |
    jq -r '.[] | select(.customId | startswith("MJ::CustomZoom::")) | .customId')
[ -n "$zoom" ] || fail "upscale result has no MJ::CustomZoom:: button"
enqueue_json "$(jq -cn --arg t "$a1_task" --arg c "$zoom" \
    '{id:"z1",action:"action",body:{taskId:$t,customId:$c}}')"
wait_until 20 "a result for z1" result_field z1 status
r=$(result_json z1)
assert_eq "$(jq -r .status <<<"$r")" FAILURE "z1 status ($r)"
assert_eq "$(jq -r .action <<<"$r")" action "z1 action"
jq -e '.fail_reason | test("modal"; "i")' <<<"$r" >/dev/null ||
    fail "z1 fail_reason does not mention modal: $r"
z1_task=$(jq -r .task_id <<<"$r")
[[ $z1_task =~ ^[0-9]+$ ]] || fail "z1 has no task_id: $r"
[ "$z1_task" != "$a1_task" ] || fail "z1 task_id is the parent's"
assert_eq "$(jq -r .submits <<<"$r")" 1 "z1 submits"

enqueue_json "$(jq -cn --arg t "$z1_task" \
    '{id:"m1",action:"modal",body:{taskId:$t,prompt:"a red cat --zoom 1.5"}}')"
wait_until 20 "a result for m1" result_field m1 status
check_success m1 modal
check_image m1
assert_eq "$(result_field m1 task_id)" "$z1_task" \
    "m1 reports the task the modal input completed"
pass "modal: CustomZoom -> FAILURE (modal) -> modal job -> SUCCESS"

# --- mode routing ---------------------------------------------------------------
declare -A MODE=([f1]=fast [f2]=fast [r1]=relax [t1]=turbo [t2]=turbo
    [t3]=turbo [n1]="")
for id in f1 f2 r1 t1 t2 t3 n1; do
    if [ -n "${MODE[$id]}" ]; then
        enqueue_json "{\"id\":\"$id\",\"action\":\"imagine\",\"body\":{\"prompt\":\"cat $id\"},\"mode\":\"${MODE[$id]}\"}"
    else
        enqueue_json "{\"id\":\"$id\",\"action\":\"imagine\",\"body\":{\"prompt\":\"cat $id\"}}"
    fi
done
for id in f1 f2 r1 t1 t2 t3 n1; do
    wait_until 20 "a result for $id" result_field "$id" status
    check_success "$id" imagine
    check_image "$id"
done
stats=$(sim_stats)
# i1 b1 d1 s1 a1 z1 m1 n1 had no mode.
assert_eq "$(jq -c '.by_mode' <<<"$stats")" \
    '{"default":8,"fast":2,"relax":1,"turbo":3}' "sim by_mode"
assert_eq "$(jq -c '.by_action' <<<"$stats")" \
    '{"action":2,"blend":1,"describe":1,"imagine":8,"modal":1,"shorten":1}' \
    "sim by_action"
pass "mode routing: fast/relax/turbo/default counted exactly"

# --- state: every job id was sent upstream as `state`, exactly once ------------
# A producer's own body.state is replaced by the job id.
enqueue_json '{"id":"st1","action":"imagine","body":{"prompt":"cat","state":"producer-state"}}'
wait_until 20 "a result for st1" result_field st1 status
check_success st1 imagine
assert_eq "$(sim_accepted_for producer-state)" 0 "producer's state upstream"
stats=$(sim_stats)
ids=(i1 b1 d1 s1 a1 z1 m1 f1 f2 r1 t1 t2 t3 n1 st1)
for id in "${ids[@]}"; do
    assert_eq "$(sim_accepted_for "$id")" 1 "accepted_by_state[$id]"
done
assert_eq "$(jq -c '.accepted_by_state | keys' <<<"$stats")" \
    "$(printf '%s\n' "${ids[@]}" | jq -Rsc 'split("\n")[:-1] | sort')" \
    "no other states upstream"
assert_eq "$(jq -r .accepted <<<"$stats")" "${#ids[@]}" "sim accepted"
assert_eq "$(jq -r .submits <<<"$stats")" "${#ids[@]}" "sim submits"
assert_eq "$(results_count)" "${#ids[@]}" "one result per job"
pass "state == job id upstream, one submit per job"

# --- the body goes upstream unchanged, plus state and notifyHook ---------------
# A recording fake API (the simulator does not show request bodies): every
# request is one JSON line in capture.jsonl; submits get task "4242", which
# is SUCCESS at once.
cat >"$E2E_DIR/capture.py" <<'PY'
import http.server, json, sys
log = open(sys.argv[2], "a")
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def reply(self, obj):
        data = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def record(self, body):
        log.write(json.dumps({"method": self.command, "path": self.path,
            "auth": self.headers.get("Authorization", ""),
            "body": body}) + "\n")
        log.flush()
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        self.record(self.rfile.read(n).decode("utf-8"))
        self.reply({"code": 1, "description": "Submit success",
                    "result": "4242"})
    def do_GET(self):
        self.record(None)
        self.reply({"id": "4242", "action": "IMAGINE", "status": "SUCCESS",
            "progress": "100%", "imageUrl": "https://cdn.example/4242.png",
            "failReason": None, "buttons": [], "properties": {}})
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1] + ".tmp", "w").write(str(s.server_address[1]))
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
s.serve_forever()
PY
command -v python3 >/dev/null || fail "python3 is needed for the recording API"
start_proc capture python3 "$E2E_DIR/capture.py" "$E2E_DIR/capture.port" \
    "$E2E_DIR/capture.jsonl"
wait_until 15 "the recording API's port file" \
    grep -qE '^[0-9]+$' "$E2E_DIR/capture.port"
hook='https://hooks.example/mj?x=1'
MJQ_PREFIX=pt: MJQ_API_BASE_URL="http://127.0.0.1:$(cat "$E2E_DIR/capture.port")" \
    MJQ_NOTIFY_HOOK=$hook MJQ_ROUTE_RELAX=/custom/relax MJQ_POLL_SCHEDULE_MS=50 \
    start_worker wpt
body='{"prompt":"a cat ☕ \"q\" \\ /","botType":"NIJI_JOURNEY","accountFilter":{"channelId":"123","modes":["FAST","RELAX"],"remix":true,"nothing":null},"base64Array":["data:image/png;base64,iVBORw0KGgo="],"n":7,"neg":-3,"f":2.5,"t":false,"state":"producer-state","notifyHook":"http://producer/hook"}'
MJQ_PREFIX=pt: enqueue_json "{\"id\":\"pt1\",\"action\":\"imagine\",\"body\":$body}"
MJQ_PREFIX=pt: enqueue_json "{\"id\":\"pt2\",\"action\":\"describe\",\"mode\":\"relax\",\"body\":{\"base64\":\"data:image/png;base64,AAAA\"}}"
MJQ_PREFIX=pt: wait_until 15 "a result for pt1" result_field pt1 status
MJQ_PREFIX=pt: wait_until 15 "a result for pt2" result_field pt2 status
assert_eq "$(MJQ_PREFIX=pt: result_field pt1 status)" SUCCESS "pt1 status"
assert_eq "$(MJQ_PREFIX=pt: result_field pt2 status)" SUCCESS "pt2 status"
cap=$E2E_DIR/capture.jsonl
sent=$(jq -c 'select(.path == "/mj/submit/imagine") | .body | fromjson' "$cap")
assert_eq "$(jq -Sc . <<<"$sent")" \
    "$(jq -Sc --arg h "$hook" '. + {state: "pt1", notifyHook: $h}' <<<"$body")" \
    "imagine body upstream"
assert_eq "$(jq -sc 'map(select(.path | test("/custom/relax/"))
    | "\(.method) \(.path)")' "$cap")" \
    '["POST /custom/relax/mj/submit/describe","GET /custom/relax/mj/task/4242/fetch"]' \
    "mode relax uses the configured route for submit and fetch"
assert_eq "$(jq -c 'select(.path == "/custom/relax/mj/submit/describe")
    | .body | fromjson' "$cap" | jq -Sc .)" \
    "$(jq -Sc --arg h "$hook" '{base64: "data:image/png;base64,AAAA",
        state: "pt2", notifyHook: $h}' <<<'{}')" "describe body upstream"
jq -se --arg k "Bearer $SIM_KEY" 'all(.[]; .auth == $k)' "$cap" >/dev/null ||
    fail "a request without the API key: $(jq -c '[.method, .path, .auth]' "$cap")"
pass "body passed through with state and notifyHook; configured route; key sent"
