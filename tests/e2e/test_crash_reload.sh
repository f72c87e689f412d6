#!/usr/bin/env bash
# ctest-timeout: 120
# SIGHUP reloads `mjq run --config FILE`. A valid change
# (worker.concurrency 50 -> 60) while 200 jobs are in flight: the new
# workers are started before the old ones are told to stop (supervisor log
# order), the old ones drain and exit 0, the supervisor keeps running with
# 2 new children that run with concurrency 60, and every job ends with
# exactly one SUCCESS result and one accepted submit. An invalid file
# (worker.concurrency = 0): the reload is refused with a log line naming
# the key, the same children keep running and 20 more jobs succeed.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init
start_redis
start_sim --duration-ms 3000
unset MJQ_WORKER_ID
N=200
Q=mjq:queue:default
CONF=$E2E_DIR/mjq.conf

# Helpers: wait_alive, events_of, results_jsonl, push_jobs, assert_invariant
# and friends are in lib.sh.
# PREFIX COUNT: the simulator accepted a submit for COUNT ids PREFIX-*.
accepted_for()
{
    [ "$(sim_stats | jq --arg p "$1-" '.accepted_by_state // {} | keys
        | map(select(startswith($p))) | length')" -ge "$2" ]
}

# write_conf CONCURRENCY: replaces the config file in one rename.
write_conf()
{
    cat >"$CONF.tmp" <<CONF
worker:
{
    concurrency = $1;
    poll_schedule_ms = [500];
};
supervisor:
{
    workers = 2;
};
CONF
    mv -f "$CONF.tmp" "$CONF"
}

# Line number of the first supervisor log line matching the ERE, or none.
log_line() { grep -nE -m1 -- "$1" "$(log_file sup)" | cut -d: -f1; }

children() { proc_children sup | sort | xargs; }

# --- valid reload with 200 jobs in flight -----------------------------------------
write_conf 50
start_run sup --config "$CONF"
wait_until 20 "2 workers" eval '[ "$(proc_children sup | wc -l)" = 2 ]'
mapfile -t old < <(proc_children sup)
push_jobs rl $N
# Both workers full (2 x 50), the rest queued.
wait_alive sup 30 "100 jobs accepted upstream" accepted_for rl 100
[ "$(results_count)" -lt $N ] || fail "every job finished before the reload"

write_conf 60
signal_proc sup HUP
replaced()
{
    local kids k
    kids=$(proc_children sup)
    [ "$(wc -l <<<"$kids")" = 2 ] || return 1
    for k in "${old[@]}"; do
        grep -qx "$k" <<<"$kids" && return 1
        proc_alive "$k" && return 1
    done
    return 0
}
wait_alive sup 20 "2 new workers and the old ones gone" replaced
mapfile -t new < <(proc_children sup)
pass "reload: workers ${old[*]} replaced by ${new[*]}"

# New before old: both new workers were started before the first old one
# was told to stop (the supervisor's "worker started: pid N" lines are
# stamped no later than the old workers' "draining (SIGTERM)"; the workers
# log to the supervisor's stderr), and every old one drained and exited 0.
l_reload=$(log_line 'configuration reloaded: rolling 2 workers')
[ -n "$l_reload" ] || fail "no 'configuration reloaded' line in the supervisor log"
last_start=
for k in "${new[@]}"; do
    l=$(log_line "worker started: pid $k\$")
    [ -n "$l" ] || fail "no 'worker started: pid $k' line"
    [ "$l" -gt "$l_reload" ] || fail "new worker $k started before the reload"
    ts=$(sed -n "${l}p" "$(log_file sup)" | cut -d' ' -f1)
    [[ $ts > $last_start ]] && last_start=$ts
done
for k in "${old[@]}"; do
    l=$(log_line "-$k-[0-9a-f]{4}: draining \(SIGTERM\)")
    [ -n "$l" ] || fail "no 'draining (SIGTERM)' line of old worker $k"
    ts=$(sed -n "${l}p" "$(log_file sup)" | cut -d' ' -f1)
    [[ $ts < $last_start ]] &&
        fail "old worker $k was told to stop ($ts) before the new workers were both started ($last_start)"
    grep -q "worker $k exited with code 0" "$(log_file sup)" ||
        fail "old worker $k did not exit with code 0: $(grep -E "worker $k (exited|killed)" "$(log_file sup)")"
    events_of worker_exited | jq -s -e --arg p "$k" \
        'any(.[]; .pid == $p and .code == "0")' >/dev/null ||
        fail "no worker_exited event with code 0 for old worker $k"
done
for k in "${new[@]}"; do
    grep -qE -- "-$k-[0-9a-f]{4}: worker started: concurrency 60," \
        "$(log_file sup)" || fail "new worker $k does not run with concurrency 60"
done
if events_of worker_respawned | jq -s -e 'length > 0' >/dev/null; then
    fail "a reload is no respawn: $(events_of worker_respawned | xargs)"
fi
pass "new workers started first (concurrency 60); old ones drained and exited 0"

assert_invariant rl $N 40
proc_alive sup || fail "the supervisor died"
assert_eq "$(children)" "$(printf '%s\n' "${new[@]}" | sort | xargs)" \
    "children after the reload"

# --- invalid configuration: refused, nothing changes -------------------------------
write_conf 0
signal_proc sup HUP
wait_until 10 "the reload refusal naming worker.concurrency" \
    grep -qE 'reload refused, keeping the running configuration: .*worker\.concurrency' \
    "$(log_file sup)"
grep -E 'reload refused' "$(log_file sup)" | sed 's/^/  /'
[ "$(grep -c 'configuration reloaded' "$(log_file sup)")" = 1 ] ||
    fail "the invalid configuration was applied"
proc_alive sup || fail "the supervisor died on an invalid reload"
assert_eq "$(children)" "$(printf '%s\n' "${new[@]}" | sort | xargs)" \
    "children after the refused reload"
push_jobs rv 20
assert_invariant rv 20 30
assert_eq "$(children)" "$(printf '%s\n' "${new[@]}" | sort | xargs)" \
    "children after 20 more jobs"
proc_alive sup || fail "the supervisor died"
pass "invalid reload refused; same workers ${new[*]} kept taking jobs"

# The old workers drained and left: the sweeps since (one every 2 s) must
# not report them as dead workers.
sweeps=$(grep -c "worker .* is gone (no heartbeat)" "$(log_file sup)" || true)
assert_eq "$sweeps" 0 "sweep warnings about workers that drained and left"
pass "no 'is gone' warning for the drained workers"

# --- reloads and a stop while old workers still drain --------------------------------
# Submits hang 3 s upstream, so the workers a reload retires drain for a
# while. A second reload and then SIGTERM come during that drain: the
# draining workers must not get a second SIGTERM (which means "exit now,
# leave the jobs to the sweep"), nor do new workers that are still
# starting; every worker exits 0 and every job ends once, after a new
# `mjq run`.
write_conf 50
restart_sim --duration-ms 1000 --rate-slow 1 --slow-ms 3000
slow_on_wire() { sim_stats | jq -e '.faults.slow >= 4' >/dev/null; }
push_jobs dr 8
wait_alive sup 20 "submits on the wire" slow_on_wire
signal_proc sup HUP
wait_alive sup 10 "a retired worker draining" \
    eval '[ "$(grep -c "draining (SIGTERM): [1-9]" "$(log_file sup)")" -ge 1 ]'
signal_proc sup HUP
sleep 0.3 # let the second reload act (nothing to wait for: its absence of effect is checked)
signal_proc sup TERM
wait_exit sup 30
assert_eq "$(proc_status sup)" 0 "supervisor exit status"
! grep -q "second signal" "$(log_file sup)" ||
    fail "a draining worker was told twice: $(grep -m1 "second signal" "$(log_file sup)")"
bad=$(grep -E "worker [0-9]+ (exited with code [1-9]|killed by)" "$(log_file sup)" || true)
[ -z "$bad" ] || fail "workers that did not exit 0: $bad"
# (Slow submits are answered 503 with no task: nothing was accepted, so a
# fresh simulator loses nothing.)
restart_sim --duration-ms 1000
start_run sup2 --config "$CONF"
assert_invariant dr 8 60
signal_proc sup2 TERM
wait_exit sup2 30
pass "two reloads and a stop during a drain: no second signal, every worker exited 0, 8 jobs once"
