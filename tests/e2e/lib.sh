# shellcheck shell=bash
# The end-to-end harness, sourced by every tests/e2e/test_*.sh:
#
#     . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#     e2e_init
#     start_redis; start_sim; start_worker w1
#     enqueue_json '{"id":"j1","action":"imagine","body":{"prompt":"cat"}}'
#     wait_until 30 "a result for j1" result_field j1 status
#     assert_eq "$(result_field j1 status)" SUCCESS "j1 status"
#
# ctest provides MJQ_BIN (the mjq binary) and MJQ_SRC (the repository).
# Every process started here runs in its own session, is stopped by the
# EXIT trap (SIGTERM, bounded wait, SIGKILL of its whole session) and logs
# to $E2E_DIR/<name>.log. On failure the tail of every log is printed and
# $E2E_DIR is kept; on success it is removed (E2E_KEEP=1 keeps it).
# Every wait is a bounded poll: there is no bare sleep for synchronisation.
# Never call a bare `wait`: it would wait for every process started here
# (redis too); wait for your own background job with `wait $!`.
#
# Functions (NAME is a process name: letters, digits, '.', '_', '-';
# "redis" and "sim" are the names start_redis and start_sim use):
#   e2e_init                      strict mode, $E2E_DIR, cleanup trap
#   fail MSG / pass MSG           end the test with a failure / print "ok:"
#   assert_eq GOT WANT MSG        fail unless GOT == WANT
#   wait_until SECS DESC CMD...   poll CMD every 0.1 s; fail with DESC on timeout
#   now_ms                        unix time in milliseconds
#   free_port                     a free 127.0.0.1 TCP port below the ephemeral range
#   start_redis [ARGS...]         private redis-server; exports REDIS_PORT,
#                                 MJQ_REDIS_URL (extra ARGS go to redis-server)
#   stop_redis / restart_redis    stop it / start it again, same port and dir
#   rcli ARGS...                  redis-cli against it (raw output; an error
#                                 reply fails, so set -e stops the test)
#   start_sim [ARGS...]           `mjq sim` on a free port; exports SIM_PORT,
#                                 MJQ_API_BASE_URL, MJQ_API_KEY (=$SIM_KEY)
#   restart_sim [ARGS...]         stop the simulator, start it on the same port
#   sim_stats / sim_reset         GET /sim/stats (JSON) / POST /sim/reset
#   sim_stat KEY                  a top-level value of the stats (fails if absent)
#   sim_accepted_for STATE        .accepted_by_state[STATE] (0 if absent): how
#                                 many submits carried state STATE (a job id)
#   start_worker NAME [ARGS...]   `mjq worker ARGS` in the background
#   start_run NAME [ARGS...]      `mjq run ARGS` (the supervisor)
#   start_proc NAME CMD...        any other command, same bookkeeping
#   proc_pid NAME                 its pid
#   proc_alive NAME|PID           true while it runs (zombies count as dead)
#   proc_children NAME            pids of its direct children, one a line
#   signal_proc NAME SIG          send SIG, do not wait
#   wait_exit NAME SECS           wait for it to exit (fail on timeout)
#   stop_proc NAME [SIG] [SECS]   send SIG (TERM), wait SECS (15), then KILL
#   kill9 NAME                    SIGKILL it (not its children) and wait
#   proc_status NAME              exit status once it exited (128+n: signal n)
#   log_file NAME                 path of its log
#   check_logs_clean              fail if a log has a sanitizer report
#   results_key [STREAM]          results stream key (see below)
#   results_count [STREAM]        XLEN of the results stream
#   result_json ID [STREAM]       the result entry for ID as one JSON object
#   result_field ID FIELD [STREAM] FIELD of the result for ID (status 1 if none)
#   results_for ID [STREAM]       how many entries (DUPLICATEs too) carry ID
#   wait_results N SECS [STREAM]  wait until the stream holds >= N entries
#   enqueue_json JSON [QUEUE]     LPUSH JSON onto ${MJQ_PREFIX}queue:QUEUE
#   cpu_ticks NAME|PID            utime+stime of the process, in clock ticks
#   wait_alive NAME SECS DESC CMD...  wait_until, failing at once if NAME died
#   events_of TYPE                events of TYPE as JSON objects, one a line
#   results_jsonl                 every result entry as a JSON object, a line
#   push_jobs PREFIX COUNT        LPUSH imagine jobs PREFIX-1..PREFIX-COUNT
#   processing_left               "key=len" of non-empty processing lists
#   assert_invariant PREFIX N SECS  one SUCCESS result and one accepted submit
#                                 per id PREFIX-1..N; queue and lists empty
#
# Results helpers read ${MJQ_PREFIX:-mjq:}results by default. STREAM may be
# a whole key starting with the prefix ("mjq:results:r1") or a reply_to
# name ("r1" means "mjq:results:r1"). For ID, result_json and result_field
# pick the entry whose status is not DUPLICATE (the contract allows exactly
# one), or the first entry if all are DUPLICATE.

declare -gA E2E_PID=()     # name -> pid (also its session and group id)
declare -gA E2E_STATUS=()  # name -> exit status, once it has exited
declare -ga E2E_NAMES=()   # names in start order
declare -ga E2E_REDIS_ARGS=()
: "${SIM_KEY:=e2e-secret-key}"

e2e_init()
{
    set -euo pipefail
    set -E +m
    E2E_MAIN_PID=$BASHPID
    E2E_DIR=$(mktemp -d "${TMPDIR:-/tmp}/mjq-e2e.XXXXXX")
    export E2E_DIR
    trap e2e_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'e2e_on_err $? "$BASH_COMMAND"' ERR
}

e2e_on_err()
{
    # Only report in the main shell, once: subshells and command
    # substitutions report through their caller's failure.
    [ "$BASHPID" = "${E2E_MAIN_PID:-}" ] || return 0
    echo "e2e: '$2' failed with status $1 at" \
        "${BASH_SOURCE[1]:-?}:${BASH_LINENO[0]:-?}" >&2
}

fail()
{
    echo "FAIL: $*" >&2
    exit 1
}

pass()
{
    echo "ok: $*"
}

assert_eq()
{
    [ "$1" = "$2" ] || fail "$3: got '$1', want '$2'"
}

now_ms()
{
    local t=${EPOCHREALTIME//[.,]/}
    echo $((t / 1000))
}

# Seconds, possibly fractional ("1.5"), to milliseconds.
e2e_secs_to_ms()
{
    local int=${1%%.*} frac=
    [[ $1 == *.* ]] && frac=${1#*.}
    frac=${frac}000
    echo $((10#${int:-0} * 1000 + 10#${frac:0:3}))
}

# CMD runs in a subshell, so a helper that calls fail (e.g. while the
# thing it asks is not up yet) only fails that attempt.
wait_until()
{
    local secs=$1 desc=$2 deadline
    shift 2
    deadline=$(($(now_ms) + $(e2e_secs_to_ms "$secs")))
    while :; do
        if ("$@") >/dev/null 2>&1; then
            return 0
        fi
        if [ "$(now_ms)" -ge "$deadline" ]; then
            echo "last attempt of: $*" >&2
            ("$@") >&2 || true
            fail "timed out after ${secs}s waiting for: $desc"
        fi
        sleep 0.1
    done
}

# --- processes ----------------------------------------------------------

e2e_check_name()
{
    [[ $1 =~ ^[A-Za-z0-9._-]+$ ]] || fail "bad process name '$1'"
}

start_proc()
{
    local name=$1
    shift
    e2e_check_name "$name"
    [ -n "${E2E_DIR:-}" ] || fail "start_proc before e2e_init"
    if [ -n "${E2E_PID[$name]:-}" ] && proc_alive "${E2E_PID[$name]}"; then
        fail "process '$name' is already running"
    fi
    # setsid execs in place (a background child is no group leader), so
    # $! is the program itself and also its session id.
    setsid "$@" >>"$E2E_DIR/$name.log" 2>&1 </dev/null &
    E2E_PID[$name]=$!
    unset "E2E_STATUS[$name]"
    local n
    for n in "${E2E_NAMES[@]}"; do
        [ "$n" = "$name" ] && return 0
    done
    E2E_NAMES+=("$name")
}

e2e_need_bin()
{
    [ -n "${MJQ_BIN:-}" ] && [ -x "$MJQ_BIN" ] ||
        fail "MJQ_BIN is not set to the mjq binary (ctest sets it)"
}

start_worker()
{
    e2e_need_bin
    local name=$1
    shift
    start_proc "$name" "$MJQ_BIN" worker "$@"
}

start_run()
{
    e2e_need_bin
    local name=$1
    shift
    start_proc "$name" "$MJQ_BIN" run "$@"
}

proc_pid()
{
    [ -n "${E2E_PID[$1]:-}" ] || fail "no process named '$1'"
    echo "${E2E_PID[$1]}"
}

e2e_resolve_pid()
{
    if [[ $1 =~ ^[0-9]+$ ]]; then
        echo "$1"
    else
        proc_pid "$1"
    fi
}

proc_alive()
{
    local pid stat
    pid=$(e2e_resolve_pid "$1")
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat:0:1}" != Z ]
}

proc_children()
{
    pgrep -P "$(proc_pid "$1")" || true
}

signal_proc()
{
    kill "-$2" "$(proc_pid "$1")"
}

log_file()
{
    echo "$E2E_DIR/$1.log"
}

# Records the exit status of NAME, which must have exited.
e2e_reap()
{
    local name=$1 pid st=0
    pid=${E2E_PID[$name]}
    [ -n "${E2E_STATUS[$name]:-}" ] && return 0
    wait "$pid" 2>/dev/null || st=$?
    E2E_STATUS[$name]=$st
}

# Polls until NAME has exited or SECS passed. Returns 1 on timeout.
e2e_wait_dead()
{
    local name=$1 deadline
    deadline=$(($(now_ms) + $(e2e_secs_to_ms "$2")))
    while proc_alive "${E2E_PID[$name]}"; do
        [ "$(now_ms)" -ge "$deadline" ] && return 1
        sleep 0.05
    done
    e2e_reap "$name"
}

wait_exit()
{
    proc_pid "$1" >/dev/null
    e2e_wait_dead "$1" "$2" || fail "'$1' still running after ${2}s"
}

proc_status()
{
    [ -n "${E2E_STATUS[$1]:-}" ] || fail "'$1' has not exited (yet)"
    echo "${E2E_STATUS[$1]}"
}

stop_proc()
{
    local name=$1 sig=${2:-TERM} secs=${3:-15} pid
    pid=$(proc_pid "$name")
    if proc_alive "$pid"; then
        kill "-$sig" "$pid" 2>/dev/null || true
        if ! e2e_wait_dead "$name" "$secs"; then
            echo "e2e: '$name' ignored SIG$sig for ${secs}s: SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
            e2e_wait_dead "$name" 5 || fail "'$name' survives SIGKILL"
        fi
    fi
    e2e_reap "$name"
    # Anything it left behind in its session (orphaned children).
    kill -KILL -- "-$pid" 2>/dev/null || true
}

kill9()
{
    local pid
    pid=$(proc_pid "$1")
    kill -KILL "$pid" 2>/dev/null || true
    e2e_wait_dead "$1" 5 || fail "'$1' survives SIGKILL"
}

cpu_ticks()
{
    local pid stat
    pid=$(e2e_resolve_pid "$1")
    stat=$(cat "/proc/$pid/stat") || fail "no process $pid"
    stat=${stat##*) }
    local -a f
    read -ra f <<<"$stat"
    # After "comm)", field 3 (state) is f[0]: utime (14) and stime (15).
    echo $((f[11] + f[12]))
}

check_logs_clean()
{
    local hits
    [ -d "${E2E_DIR:-}" ] || return 0
    hits=$(grep -l -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' \
        "$E2E_DIR"/*.log 2>/dev/null || true)
    [ -z "$hits" ] || fail "sanitizer report in: $hits"
}

# Waits for NAME until the deadline (ms), then SIGKILLs it; then sweeps
# its session.
e2e_cleanup_one()
{
    local name=$1 deadline=$2 pid=${E2E_PID[$1]:-}
    [ -n "$pid" ] || return 0
    while proc_alive "$pid" && [ "$(now_ms)" -lt "$deadline" ]; do
        sleep 0.05
    done
    if proc_alive "$pid"; then
        echo "e2e: cleanup: '$name' ($pid) did not exit: SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null
    fi
    kill -KILL -- "-$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

e2e_cleanup()
{
    local rc=$? name deadline f
    [ "$BASHPID" = "${E2E_MAIN_PID:-}" ] || return "$rc"
    set +e
    trap - ERR
    # SIGTERM everything but redis at once, so workers drain while Redis
    # is still up, with one shared deadline; redis last.
    for name in "${E2E_NAMES[@]}"; do
        [ "$name" != redis ] && proc_alive "${E2E_PID[$name]}" &&
            kill -TERM "${E2E_PID[$name]}" 2>/dev/null
    done
    deadline=$(($(now_ms) + 15000))
    for name in "${E2E_NAMES[@]}"; do
        [ "$name" != redis ] && e2e_cleanup_one "$name" "$deadline"
    done
    if [ -n "${E2E_PID[redis]:-}" ]; then
        kill -TERM "${E2E_PID[redis]}" 2>/dev/null
        e2e_cleanup_one redis $(($(now_ms) + 10000))
    fi
    if [ "$rc" -eq 0 ]; then
        (check_logs_clean) || rc=1
    fi
    if [ "$rc" -ne 0 ] && [ -d "${E2E_DIR:-}" ]; then
        for f in "$E2E_DIR"/*.log; do
            [ -f "$f" ] || continue
            echo "----- last 40 lines of $f -----" >&2
            tail -n 40 "$f" >&2
        done
        echo "e2e: FAILED (status $rc); files kept in $E2E_DIR" >&2
    elif [ -n "${E2E_DIR:-}" ] && [ -z "${E2E_KEEP:-}" ]; then
        rm -rf "$E2E_DIR"
    fi
    exit "$rc"
}

# --- redis --------------------------------------------------------------

# free_port: a loopback port below the ephemeral range that no socket
# uses (shared with demo.sh and bench.sh).
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/free_port.sh"

# -e: an error reply is a non-zero exit (plain redis-cli exits 0 on it).
rcli()
{
    redis-cli -e -h 127.0.0.1 -p "$REDIS_PORT" "$@"
}

# Starts redis-server on $1 with E2E_REDIS_ARGS and waits until it answers
# as itself (not some other server that owns the port). Returns 1 if it
# died, e.g. because the port was taken meanwhile.
e2e_redis_launch()
{
    local port=$1 pid deadline
    start_proc redis redis-server --port "$port" --bind 127.0.0.1 \
        --save '' --appendonly no --dir "$E2E_DIR/redis" --daemonize no \
        --pidfile "$E2E_DIR/redis/redis.pid" \
        --logfile "$E2E_DIR/redis.log" "${E2E_REDIS_ARGS[@]}"
    pid=${E2E_PID[redis]}
    deadline=$(($(now_ms) + 10000))
    while proc_alive "$pid"; do
        if redis-cli -h 127.0.0.1 -p "$port" INFO server 2>/dev/null |
            grep -qE "^process_id:${pid}([^0-9]|\$)"; then
            return 0
        fi
        [ "$(now_ms)" -ge "$deadline" ] &&
            fail "redis-server on port $port did not answer within 10s"
        sleep 0.05
    done
    e2e_reap redis
    return 1
}

start_redis()
{
    local try port
    E2E_REDIS_ARGS=("$@")
    mkdir -p "$E2E_DIR/redis"
    for try in $(seq 1 10); do
        port=$(free_port)
        if e2e_redis_launch "$port"; then
            export REDIS_PORT=$port
            export MJQ_REDIS_URL="redis://127.0.0.1:$port/0"
            [ "$(rcli DBSIZE)" = 0 ] ||
                fail "refusing to run: redis on $port is not empty"
            return 0
        fi
        echo "e2e: redis-server failed on port $port (try $try)" >&2
    done
    fail "redis-server did not start in 10 tries (see redis.log)"
}

stop_redis()
{
    stop_proc redis TERM 10
}

# Same port, same dir, same arguments: an AOF (--appendonly yes) survives.
restart_redis()
{
    [ -n "${REDIS_PORT:-}" ] || fail "restart_redis before start_redis"
    if proc_alive redis; then
        stop_redis
    fi
    local deadline
    deadline=$(($(now_ms) + 10000))
    until e2e_redis_launch "$REDIS_PORT"; do
        [ "$(now_ms)" -ge "$deadline" ] &&
            fail "redis-server did not restart on port $REDIS_PORT"
        sleep 0.2
    done
}

# --- simulator ------------------------------------------------------------

# Starts `mjq sim` on 127.0.0.1:PORT and waits for its port file.
# Returns 1 if it exited first (the port was taken).
e2e_sim_launch()
{
    local port=$1 deadline
    shift
    e2e_need_bin
    rm -f "$E2E_DIR/sim.port"
    start_proc sim "$MJQ_BIN" sim --listen "127.0.0.1:$port" \
        --port-file "$E2E_DIR/sim.port" --key "$SIM_KEY" "$@"
    deadline=$(($(now_ms) + 15000))
    until grep -qE '^[0-9]+$' "$E2E_DIR/sim.port" 2>/dev/null; do
        proc_alive sim || return 1
        [ "$(now_ms)" -lt "$deadline" ] ||
            fail "timed out after 15s waiting for the simulator's port file"
        sleep 0.05
    done
    export SIM_PORT=$port
    export MJQ_API_BASE_URL="http://127.0.0.1:$port"
    export MJQ_API_KEY=$SIM_KEY
}

# On a free port (free_port), not one the kernel picks: restart_sim binds
# the same port again, and a port of the ephemeral range may meanwhile be
# taken by an outgoing connection.
start_sim()
{
    local try port
    for try in $(seq 1 10); do
        port=$(free_port)
        e2e_sim_launch "$port" "$@" && return 0
        echo "e2e: mjq sim failed on port $port (try $try)" >&2
    done
    fail "mjq sim did not start in 10 tries (see sim.log)"
}

restart_sim()
{
    local deadline
    [ -n "${SIM_PORT:-}" ] || fail "restart_sim before start_sim"
    if proc_alive sim; then
        stop_proc sim
    fi
    deadline=$(($(now_ms) + 10000))
    until e2e_sim_launch "$SIM_PORT" "$@"; do
        [ "$(now_ms)" -lt "$deadline" ] ||
            fail "mjq sim did not restart on port $SIM_PORT (see sim.log)"
        sleep 0.2
    done
}

sim_stats()
{
    curl -sS --fail --max-time 5 "http://127.0.0.1:$SIM_PORT/sim/stats"
}

sim_reset()
{
    curl -sS --fail --max-time 5 -X POST \
        "http://127.0.0.1:$SIM_PORT/sim/reset" >/dev/null
}

sim_stat()
{
    local stats
    stats=$(sim_stats) || fail "GET /sim/stats failed"
    jq -er --arg k "$1" \
        'if has($k) then .[$k] else error("no \($k) in /sim/stats") end' \
        <<<"$stats"
}

sim_accepted_for()
{
    local stats
    stats=$(sim_stats) || fail "GET /sim/stats failed"
    jq -r --arg s "$1" '(.accepted_by_state // {})[$s] // 0' <<<"$stats"
}

# --- results and queues -----------------------------------------------------

results_key()
{
    local prefix=${MJQ_PREFIX:-mjq:}
    case "${1:-}" in
    "") echo "${prefix}results" ;;
    "$prefix"*) echo "$1" ;;
    *) echo "${prefix}results:$1" ;;
    esac
}

results_count()
{
    rcli XLEN "$(results_key "${1:-}")"
}

wait_results()
{
    local n=$1 secs=$2 stream=${3:-}
    wait_until "$secs" "$n result(s) in $(results_key "$stream")" \
        e2e_results_at_least "$n" "$stream"
}

e2e_results_at_least()
{
    [ "$(results_count "$2")" -ge "$1" ]
}

# Every entry of the stream as {"<field>": "<value>", ..., "_id": entry id},
# one JSON object per line.
e2e_results_objects()
{
    rcli --json XRANGE "$(results_key "${1:-}")" - + |
        jq -c '.[] | .[1] as $kv | [range(0; $kv | length; 2)
               | {($kv[.]): $kv[. + 1]}] + [{"_id": .[0]}] | add'
}

result_json()
{
    local out
    out=$(e2e_results_objects "${2:-}" | jq -cs --arg id "$1" \
        'map(select(.id == $id))
         | (map(select(.status != "DUPLICATE")) + .)[0] // empty')
    [ -n "$out" ] || return 1
    echo "$out"
}

result_field()
{
    local entry
    entry=$(result_json "$1" "${3:-}") || return 1
    jq -er --arg f "$2" 'if has($f) then .[$f] else empty end' \
        <<<"$entry" || return 1
}

results_for()
{
    e2e_results_objects "${2:-}" | jq -s --arg id "$1" \
        'map(select(.id == $id)) | length'
}

enqueue_json()
{
    rcli LPUSH "${MJQ_PREFIX:-mjq:}queue:${2:-default}" "$1" >/dev/null
}

# ---------------------------------------------------------------------------
# Crash-safety helpers (test_crash_*.sh, test_supervisor.sh, ...). The
# queue is $Q when a test sets it, else <prefix>queue:default.
# wait_alive NAME SECS DESC CMD...: wait_until CMD, but fail at once if
# process NAME died meanwhile.
dead_or() { ! proc_alive "$1" || "${@:2}"; }
wait_alive()
{
    wait_until "$2" "$3" dead_or "$1" "${@:4}"
    proc_alive "$1" || fail "'$1' died while waiting for: $3 (see its log)"
}

# The first 5 lines of stdin on one line; reads all of it (no SIGPIPE).
first5() { awk 'NR <= 5' | xargs; }

# Redis commands from stdin, one a line; one reply a line.
rbatch() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT"; }

# Events of TYPE as JSON objects, one a line.
events_of()
{
    rcli --json XRANGE mjq:events - + |
        jq -c --arg t "$1" '.[] | .[1] as $kv | [range(0; $kv | length; 2)
               | {($kv[.]): $kv[. + 1]}] | add | select(.type == $t)'
}

results_jsonl()
{
    rcli --json XRANGE mjq:results - + |
        jq -c '.[] | .[1] as $kv | [range(0; $kv | length; 2)
               | {($kv[.]): $kv[. + 1]}] | add'
}

push_jobs() # PREFIX COUNT
{
    local args=() i
    for i in $(seq 1 "$2"); do
        args+=("{\"id\":\"$1-$i\",\"action\":\"imagine\",\"body\":{\"prompt\":\"crash $i\"}}")
    done
    rcli LPUSH "${Q:-${MJQ_PREFIX:-mjq:}queue:default}" "${args[@]}" >/dev/null
}

# "key=len ..." of every non-empty mjq:processing:* list.
processing_left()
{
    local k n out=
    for k in $(rcli --scan --pattern 'mjq:processing:*'); do
        n=$(rcli LLEN "$k")
        [ "$n" = 0 ] || out+="$k=$n "
    done
    echo "$out"
}

# PREFIX COUNT: COUNT distinct ids PREFIX-* have a result, and no payload
# is left in the queue or in any processing list.
settled()
{
    [ "$(results_jsonl | jq -r --arg p "$1-" 'select(.id | startswith($p))
        | .id' | sort -u | wc -l)" -ge "$2" ] &&
        [ "$(rcli LLEN "${Q:-${MJQ_PREFIX:-mjq:}queue:default}")" = 0 ] && [ -z "$(processing_left)" ]
}

# assert_invariant PREFIX COUNT SECS: waits up to SECS for jobs
# PREFIX-1..PREFIX-COUNT to settle, then fails unless each id has exactly
# one result (none missing, none twice), every result is SUCCESS, the
# simulator accepted exactly one submit per id, and the queue and every
# mjq:processing:* list are empty.
assert_invariant()
{
    local p=$1 n=$2 secs=$3 f ids dups missing bad subs left queued id
    local problems=()
    (wait_until "$secs" "jobs $p-* to settle" settled "$p" "$n") \
        >/dev/null 2>&1 || true
    f=$E2E_DIR/$p.results.jsonl
    results_jsonl | jq -c --arg p "$p-" 'select(.id | startswith($p))' >"$f"
    ids=$(jq -r .id "$f" | sort)
    dups=$(uniq -d <<<"$ids")
    missing=$(comm -23 <(seq 1 "$n" | sed "s/^/$p-/" | sort) \
        <(sort -u <<<"$ids"))
    bad=$(jq -r 'select(.status != "SUCCESS")
        | "\(.id)=\(.status)(\(.fail_reason // ""))"' "$f")
    subs=$(sim_stats | jq -r --arg p "$p-" --argjson n "$n" '
        (.accepted_by_state // {}) as $a | range(1; $n + 1) | "\($p)\(.)"
        | select(($a[.] // 0) != 1) | "\(.)=\($a[.] // 0)"')
    left=$(processing_left)
    queued=$(rcli LLEN "${Q:-${MJQ_PREFIX:-mjq:}queue:default}")
    [ -z "$missing" ] || problems+=("$(wc -l <<<"$missing") ids without a result [$(first5 <<<"$missing")]")
    [ -z "$dups" ] || problems+=("$(wc -l <<<"$dups") ids with more than one result [$(first5 <<<"$dups")]")
    [ -z "$bad" ] || problems+=("$(wc -l <<<"$bad") results not SUCCESS [$(first5 <<<"$bad")]")
    [ -z "$subs" ] || problems+=("$(wc -l <<<"$subs") ids not accepted upstream exactly once (id=accepted) [$(first5 <<<"$subs")]")
    [ -z "$left" ] || problems+=("payloads left in processing lists: $left")
    [ "$queued" = 0 ] || problems+=("$queued payloads left in the queue")
    if [ "${#problems[@]}" -gt 0 ]; then
        for id in $(first5 <<<"$missing"); do
            echo "record of $id: $(rcli HGETALL "mjq:job:$id" | xargs)" >&2
        done
        fail "invariant for $n jobs $p-*: $(printf '%s; ' "${problems[@]}")"
    fi
    pass "invariant: $n jobs $p-*: one SUCCESS result and one accepted submit each; queue and processing lists empty"
}
