#!/usr/bin/env bash
# ctest-timeout: 120
# Respawn backoff. `mjq run --workers 1` whose worker is killed (SIGKILL)
# as soon as it appears, 4 times: each death is reported (worker_exited,
# signal 9) and the worker respawned (worker_respawned), each time after a
# longer delay (docs/operations.md: an early death n waits d/2..d with
# d = 2 s x 2^(n-1)), measured from the events' ts and matching the
# events' delay_ms; their failures count 1, 2, 3, 4.
# Then a worker that exits with the fatal-configuration code 78 (its API
# key file was removed after the supervisor read it) is never respawned,
# and the supervisor exits 78 once no worker is left.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_redis
start_sim --duration-ms 3000
unset MJQ_WORKER_ID
KILLS=4

# Events of TYPE written by WORKER (a supervisor writes as
# supervisor-<pid>) as JSON objects, one a line.
events_by()
{
    rcli --json XRANGE mjq:events - + |
        jq -c --arg t "$1" --arg w "$2" '.[] | .[1] as $kv
               | [range(0; $kv | length; 2) | {($kv[.]): $kv[. + 1]}] | add
               | select(.type == $t and .worker == $w)'
}

# A child of NAME that is not in the list "$2" (space-separated pids).
new_child()
{
    local k
    for k in $(proc_children "$1"); do
        [[ " $2 " == *" $k "* ]] || {
            echo "$k"
            return 0
        }
    done
    return 1
}

count_by() { [ "$(events_by "$1" "$2" | wc -l)" -ge "$3" ]; }

# --- a worker that keeps dying early -------------------------------------------------
start_run sup --workers 1
sid=supervisor-$(proc_pid sup)
killed=()
for i in $(seq 1 $KILLS); do
    wait_until 30 "worker #$i" new_child sup "${killed[*]}"
    k=$(new_child sup "${killed[*]}")
    kill -KILL "$k"
    killed+=("$k")
    wait_until 5 "worker $k gone" eval '! proc_alive '"$k"
    wait_until 5 "worker_exited for $k" eval \
        '[ "$(events_by worker_exited '"$sid"' | jq -r .pid | grep -cx '"$k"')" = 1 ]'
done
# The last respawn comes 8-16 s after the 4th death.
wait_until 25 "$KILLS worker_respawned events" count_by worker_respawned "$sid" $KILLS
proc_alive sup || fail "the supervisor died"
last=$(new_child sup "${killed[*]}") || fail "no worker after the last respawn"

events_by worker_exited "$sid" >"$E2E_DIR/exited.jsonl"
events_by worker_respawned "$sid" >"$E2E_DIR/respawned.jsonl"
assert_eq "$(jq -r .pid "$E2E_DIR/exited.jsonl" | xargs)" "${killed[*]}" \
    "pids of the worker_exited events"
bad=$(jq -r 'select(.signal != "9" or has("code")) | tojson' "$E2E_DIR/exited.jsonl")
[ -z "$bad" ] || fail "worker_exited events without signal 9: $bad"
assert_eq "$(jq -r .pid "$E2E_DIR/respawned.jsonl" | xargs)" \
    "${killed[*]:1} $last" "pids of the worker_respawned events"
pass "$KILLS x SIGKILL: worker_exited (signal 9) and worker_respawned for each"

# Delay of respawn i: its ts minus the ts of death i.
mapfile -t gaps < <(jq -s -r --slurpfile r "$E2E_DIR/respawned.jsonl" '
    to_entries[] | (($r[.key].ts | tonumber) - (.value.ts | tonumber))' \
    "$E2E_DIR/exited.jsonl")
echo "respawn delays (ms, from events' ts): ${gaps[*]}"
# Expected ranges: 1-2 s, 2-4 s, 4-8 s, 8-16 s (plus the fork and the
# event write; minus clock granularity).
lo=(1000 2000 4000 8000)
for i in $(seq 0 $((KILLS - 1))); do
    [ "${gaps[i]}" -ge $((lo[i] - 100)) ] ||
        fail "respawn $((i + 1)) after ${gaps[i]} ms, want >= ${lo[i]} ms (delays: ${gaps[*]})"
    [ "${gaps[i]}" -le $((2 * lo[i] + 1500)) ] ||
        fail "respawn $((i + 1)) after ${gaps[i]} ms, want <= $((2 * lo[i])) ms (delays: ${gaps[*]})"
    if [ "$i" -gt 0 ]; then
        [ "${gaps[i]}" -ge $((gaps[i - 1] - 200)) ] ||
            fail "respawn delays shrink: ${gaps[*]}"
    fi
done
[ $((2 * gaps[2])) -gt $((3 * gaps[0])) ] ||
    fail "3rd respawn delay ${gaps[2]} ms not clearly above the 1st ${gaps[0]} ms"
[ $((2 * gaps[3])) -gt $((3 * gaps[1])) ] ||
    fail "4th respawn delay ${gaps[3]} ms not clearly above the 2nd ${gaps[1]} ms"
pass "respawn delays grow: ${gaps[*]} ms"

# Each event carries the delay drawn (delay_ms) and the count of
# consecutive early deaths (failures), docs/contract.md.
bad=$(jq -r 'select((.delay_ms // "" | test("^[0-9]+$") | not)
    or (.failures // "" | test("^[0-9]+$") | not)) | tojson' \
    "$E2E_DIR/respawned.jsonl")
[ -z "$bad" ] || fail "worker_respawned events without numeric delay_ms and failures: $bad"
assert_eq "$(jq -r .failures "$E2E_DIR/respawned.jsonl" | xargs)" "1 2 3 4" \
    "failures of the worker_respawned events"
mapfile -t delays < <(jq -r '.delay_ms' "$E2E_DIR/respawned.jsonl")
for i in $(seq 0 $((KILLS - 1))); do
    if [ "${delays[i]}" -lt "${lo[i]}" ] || [ "${delays[i]}" -gt $((2 * lo[i])) ]; then
        fail "respawn $((i + 1)): delay_ms ${delays[i]}, want ${lo[i]}..$((2 * lo[i])) (all: ${delays[*]})"
    fi
    [ "$i" = 0 ] || [ "${delays[i]}" -ge "${delays[i - 1]}" ] ||
        fail "delay_ms shrinks: ${delays[*]}"
    d=$((gaps[i] - delays[i]))
    if [ "$d" -lt -100 ] || [ "$d" -gt 1500 ]; then
        fail "respawn $((i + 1)): delay_ms ${delays[i]} but it came after ${gaps[i]} ms"
    fi
done
pass "worker_respawned: failures 1 2 3 4, delay_ms ${delays[*]}"
stop_proc sup TERM 15
assert_eq "$(proc_status sup)" 0 "exit status of the first mjq run"

# --- exit code 78: never respawned ----------------------------------------------------
printf '%s\n' "$SIM_KEY" >"$E2E_DIR/api.key"
start_run sup78 --workers 1 --api-key-file "$E2E_DIR/api.key"
sid78=supervisor-$(proc_pid sup78)
wait_until 20 "a worker of sup78" new_child sup78 ""
first=$(new_child sup78 "")
wait_until 20 "worker $first up" eval \
    '[ -n "$(rcli --scan --pattern "mjq:worker:*-'"$first"'-*")" ]'
rm -f "$E2E_DIR/api.key"
kill -KILL "$first"
wait_exit sup78 20
assert_eq "$(proc_status sup78)" 78 "exit status of mjq run once its only worker exited 78"
events_by worker_respawned "$sid78" >"$E2E_DIR/respawned78.jsonl"
assert_eq "$(wc -l <"$E2E_DIR/respawned78.jsonl")" 1 \
    "worker_respawned events of sup78 (one after the SIGKILL, none after the 78)"
second=$(jq -r .pid "$E2E_DIR/respawned78.jsonl")
grep -q "worker $second exited with code 78" "$(log_file sup78)" ||
    fail "the respawned worker $second did not exit 78: $(grep -E "worker $second" "$(log_file sup78)" | xargs)"
grep -q "cannot read the key file" "$(log_file sup78)" ||
    fail "no key file error from the respawned worker"
grep -q "fatal-configuration code 78: not restarting it" "$(log_file sup78)" ||
    fail "no 'not restarting it' line"
[ "$(grep -c 'worker started: pid' "$(log_file sup78)")" = 2 ] ||
    fail "sup78 started $(grep -c 'worker started: pid' "$(log_file sup78)") workers, want 2"
events_by worker_exited "$sid78" >"$E2E_DIR/exited78.jsonl"
jq -s -e --arg p "$first" 'any(.[]; .pid == $p and .signal == "9")' \
    "$E2E_DIR/exited78.jsonl" >/dev/null ||
    fail "no worker_exited (signal 9) event for $first"
jq -s -e --arg p "$second" 'any(.[]; .pid == $p and .code == "78")' \
    "$E2E_DIR/exited78.jsonl" >/dev/null ||
    fail "no worker_exited (code 78) event for $second: events of sup78: $(xargs <"$E2E_DIR/exited78.jsonl")"
pass "worker exit 78 not respawned; mjq run exited 78"
