#!/usr/bin/env bash
# The demo: mjq on embedded defaults against a private Redis and the
# built-in MJ simulator. It enqueues an imagine, then an upscale (U1) using a
# button customId from the imagine's result, then a describe, and prints the
# three results. Every process it starts is stopped on exit.
#
# Usage: scripts/demo.sh      (as root on a fresh Debian 12 machine is fine:
#                              scripts/setup.sh installs what is missing)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

scripts/setup.sh
if [ ! -x build/mjq ] || [ -n "$(find src CMakeLists.txt -newer build/mjq \
    -print -quit 2>/dev/null)" ]; then
    echo "== building mjq (build/)"
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build build -j"$(nproc)" >/dev/null
fi
mjq=$root/build/mjq

dir=$(mktemp -d)
pids=()
cleanup() {
    status=$?
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do
        for _ in $(seq 150); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null || true
    done
    if [ "$status" -ne 0 ]; then
        echo "== demo failed; last log lines:" >&2
        tail -n 20 "$dir"/*.log >&2 || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT

. scripts/free_port.sh

wait_for() { # seconds description command...
    local secs=$1 what=$2
    shift 2
    for _ in $(seq $((secs * 10))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "demo: timed out waiting for $what" >&2
    return 1
}

echo "== starting a private redis-server, mjq sim and mjq run"
rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$dir" --logfile "$dir/redis.log" >/dev/null &
pids+=($!)
wait_for 10 "redis-server" redis-cli -p "$rport" ping

# The simulator: tasks take 4 s and report progress, like a fast MJ relay.
"$mjq" sim --listen 127.0.0.1:0 --port-file "$dir/sim.port" \
    --key demo-key --duration-ms 4000 >"$dir/sim.log" 2>&1 &
pids+=($!)
wait_for 10 "mjq sim" test -s "$dir/sim.port"

export MJQ_REDIS_URL=redis://127.0.0.1:$rport/0
MJQ_API_BASE_URL=http://127.0.0.1:$(cat "$dir/sim.port")
export MJQ_API_BASE_URL
export MJQ_API_KEY=demo-key
export MJQ_POLL_SCHEDULE_MS=500,1000
"$mjq" run >"$dir/mjq.log" 2>&1 &
pids+=($!)
wait_for 10 "the worker" sh -c \
    "redis-cli -p $rport xrange mjq:events - + | grep -q worker_started"

# Prints a result entry (enqueue --json) in a few readable lines.
show() {
    jq -r '
        "  id:          \(.id)",
        "  status:      \(.status)   action: \(.action)   task_id: \(.task_id // "-")",
        (if .image_url then "  image_url:   \(.image_url)" else empty end),
        (if .fail_reason then "  fail_reason: \(.fail_reason)" else empty end),
        (if .task.properties.finalPrompt and (.action == "describe" or .action == "shorten")
         then "  prompts:     \(.task.properties.finalPrompt | gsub("\n+"; " | "))"
         else empty end),
        (if .buttons then "  buttons:     \([.buttons[] | (.label | select(. != "")) // .emoji] | join(" "))"
         else empty end),
        (if .meta then "  meta:        \(.meta | tojson)" else empty end),
        "  cost:        \(.submits) submit(s), \(.polls) poll(s), \((.finished_ms | tonumber) - (.started_ms | tonumber)) ms, worker \(.worker)"
    ' "$1"
}

run_job() { # file, enqueue options...
    local out=$1
    shift
    "$mjq" enqueue "$@" --wait --wait-timeout 60 --json >"$out" 2>/dev/null ||
        true
    show "$out"
    [ "$(jq -r .status "$out")" = SUCCESS ]
}

echo
echo "== 1. imagine"
run_job "$dir/imagine.json" --action imagine --mode fast \
    --prompt "a lighthouse at dawn, oil painting" --meta '{"demo":"imagine"}'
task_id=$(jq -r .task_id "$dir/imagine.json")
custom_id=$(jq -r '.buttons[] | select(.label == "U1") | .customId' \
    "$dir/imagine.json")

echo
echo "== 2. upscale: action U1 on task $task_id"
echo "   (customId $custom_id, from the imagine's buttons)"
run_job "$dir/upscale.json" --action action --task-id "$task_id" \
    --custom-id "$custom_id"

echo
echo "== 3. describe an image"
# A 1x1 PNG, enough for the simulator's describe.
printf '%s' 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==' |
    base64 -d >"$dir/pixel.png"
run_job "$dir/describe.json" --action describe --image "$dir/pixel.png"

echo
echo "== events of the run (mjq:events)"
redis-cli -p "$rport" --no-raw xrange mjq:events - + |
    grep -A1 '"type"' | grep -v -e '"type"' -e '^--' | sort | uniq -c |
    awk '{gsub(/"/, "", $3); printf "  %-16s %s\n", $3, $1}'
echo
echo "== done: three results above; stopping everything"
