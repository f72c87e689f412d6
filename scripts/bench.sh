#!/usr/bin/env bash
# mjq benchmarks (docs/benchmarks.md records the figures and the machine).
#
#   (a) throughput: N jobs (default 20000) against `mjq sim` with task
#       duration 0 and poll schedule 0, one worker process, concurrency 200;
#   (b) capacity: 10000 jobs in flight at once in one worker process (sim
#       duration 60 s, schedule 2000,4000,8000): peak RSS and CPU while
#       holding them;
#   (c) polling: 2000 jobs of 3 s each polled every 500 ms, task by task
#       and then with batch_fetch (list-by-condition): HTTP requests per
#       job, worker CPU.
#
# Usage: scripts/bench.sh [throughput|capacity|polling|all]   (default: all)
# Env:   BENCH_JOBS (20000), BENCH_CONCURRENCY (200), BENCH_INFLIGHT (10000),
#        BENCH_HOLD_S (20), BENCH_POLL_JOBS (2000)
# It builds a Release binary in build-bench/ and binds only to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
what=${1:-all}
jobs=${BENCH_JOBS:-20000}
concurrency=${BENCH_CONCURRENCY:-200}
inflight=${BENCH_INFLIGHT:-10000}
hold_s=${BENCH_HOLD_S:-20}

scripts/setup.sh
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
    >/dev/null
cmake --build build-bench -j"$(nproc)" >/dev/null
mjq=$root/build-bench/mjq

dir=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

. scripts/free_port.sh

start_redis() {
    rport=$(free_port)
    redis-server --port "$rport" --bind 127.0.0.1 --save '' \
        --appendonly no --daemonize no --logfile "$dir/redis.log" &
    redis_pid=$!
    pids+=("$redis_pid")
    for _ in $(seq 100); do
        redis-cli -p "$rport" ping >/dev/null 2>&1 && return
        sleep 0.05
    done
    echo "redis did not start" >&2
    exit 1
}

start_sim() {
    rm -f "$dir/sim.port"
    "$mjq" sim --listen 127.0.0.1:0 --port-file "$dir/sim.port" \
        --key bench-key "$@" >"$dir/sim.log" 2>&1 &
    sim_pid=$!
    pids+=("$sim_pid")
    for _ in $(seq 100); do
        [ -s "$dir/sim.port" ] && break
        sleep 0.05
    done
    sport=$(cat "$dir/sim.port")
}

# Fills the queue with n imagine jobs through redis-cli's pipe mode.
fill_queue() {
    local n=$1 prefix=$2
    awk -v n="$n" -v p="$prefix" 'BEGIN {
        for (i = 0; i < n; i++) {
            j = sprintf("{\"id\":\"%s-%d\",\"action\":\"imagine\",\"body\":{\"prompt\":\"bench cat %d\"}}", p, i, i)
            printf "*3\r\n$5\r\nLPUSH\r\n$17\r\nmjq:queue:default\r\n$%d\r\n%s\r\n", length(j), j
        }
    }' | redis-cli -p "$rport" --pipe >/dev/null
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
redis_cmds() {
    redis-cli -p "$rport" info stats | tr -d '\r' |
        awk -F: '/^total_commands_processed/ {print $2}'
}
sim_stat() {
    curl -s "http://127.0.0.1:$sport/sim/stats" |
        grep -o "\"$1\":[0-9]*" | head -1 | cut -d: -f2
}
now_ms() { date +%s%3N; }
hz=$(getconf CLK_TCK)

machine() {
    echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)," \
        "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "kernel: $(uname -r); redis $(redis-server --version | grep -o 'v=[0-9.]*' | cut -d= -f2);" \
        "mjq $("$mjq" --version | cut -d' ' -f2)"
}

throughput() {
    start_redis
    start_sim --duration-ms 0
    fill_queue "$jobs" tput
    local cmds0 t0 t1 c0 c1 w elapsed n
    cmds0=$(redis_cmds)
    local r0 s0 r1 s1
    r0=$(cpu_ticks "$redis_pid")
    s0=$(cpu_ticks "$sim_pid")
    MJQ_REDIS_URL=redis://127.0.0.1:$rport/0 \
        MJQ_API_BASE_URL=http://127.0.0.1:$sport MJQ_API_KEY=bench-key \
        MJQ_CONCURRENCY=$concurrency MJQ_POLL_SCHEDULE_MS=0 \
        MJQ_LOG_LEVEL=warn "$mjq" worker >"$dir/worker.log" 2>&1 &
    w=$!
    pids+=("$w")
    t0=$(now_ms)
    c0=$(cpu_ticks "$w")
    for _ in $(seq 6000); do
        n=$(redis-cli -p "$rport" xlen mjq:results)
        [ "$n" -ge "$jobs" ] && break
        sleep 0.02
    done
    t1=$(now_ms)
    c1=$(cpu_ticks "$w")
    r1=$(cpu_ticks "$redis_pid")
    s1=$(cpu_ticks "$sim_pid")
    local hwm
    hwm=$(hwm_kb "$w")
    local cmds1 submits fetches
    cmds1=$(redis_cmds)
    submits=$(sim_stat submits)
    fetches=$(sim_stat fetches)
    kill "$w"
    wait "$w" 2>/dev/null || true
    elapsed=$((t1 - t0))
    local ok
    ok=$(redis-cli -p "$rport" xrange mjq:results - + | grep -c '^SUCCESS$' || true)
    echo
    echo "(a) throughput: $jobs jobs, concurrency $concurrency, sim duration 0, poll schedule 0"
    awk -v n="$n" -v ms="$elapsed" -v ticks=$((c1 - c0)) -v hz="$hz" \
        -v hwm="$hwm" -v cmds=$((cmds1 - cmds0)) -v nsub="$submits" \
        -v fet="$fetches" -v ok="$ok" -v rt=$((r1 - r0)) \
        -v st=$((s1 - s0)) 'BEGIN {
        printf "  %-34s %s\n", "results (SUCCESS)", n " (" ok ")"
        printf "  %-34s %.0f\n", "jobs/s", n / (ms / 1000)
        printf "  %-34s %.3f\n", "worker CPU s per 1000 jobs", (ticks / hz) / (n / 1000)
        printf "  %-34s %.1f MB\n", "worker peak RSS", hwm / 1024
        printf "  %-34s %.1f\n", "Redis commands per job", cmds / n
        printf "  %-34s %.2f (%d submits, %d fetches)\n", "HTTP requests per job", (nsub + fet) / n, nsub, fet
        printf "  %-34s %.3f\n", "redis-server CPU s per 1000 jobs", (rt / hz) / (n / 1000)
        printf "  %-34s %.3f\n", "mjq sim CPU s per 1000 jobs", (st / hz) / (n / 1000)
        printf "  %-34s %.2f s\n", "wall time", ms / 1000
    }'
    kill "$sim_pid" 2>/dev/null || true
    redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1 || true
}

capacity() {
    start_redis
    start_sim --duration-ms 60000 --max-tasks 2000000
    fill_queue "$inflight" cap
    local w n t0 c0 c1 rss hwm
    MJQ_REDIS_URL=redis://127.0.0.1:$rport/0 \
        MJQ_API_BASE_URL=http://127.0.0.1:$sport MJQ_API_KEY=bench-key \
        MJQ_CONCURRENCY=$inflight MJQ_POLL_SCHEDULE_MS=2000,4000,8000 \
        MJQ_JOB_TIMEOUT_S=600 MJQ_LOG_LEVEL=warn \
        "$mjq" worker >"$dir/worker.log" 2>&1 &
    w=$!
    pids+=("$w")
    for _ in $(seq 600); do
        n=$(redis-cli -p "$rport" llen mjq:queue:default)
        [ "$n" -eq 0 ] && break
        sleep 0.1
    done
    # Every job taken; wait until each has been submitted.
    for _ in $(seq 600); do
        [ "$(sim_stat accepted)" -ge "$inflight" ] && break
        sleep 0.1
    done
    sleep 2
    c0=$(cpu_ticks "$w")
    t0=$(now_ms)
    sleep "$hold_s"
    c1=$(cpu_ticks "$w")
    local t1
    t1=$(now_ms)
    rss=$(rss_kb "$w")
    hwm=$(hwm_kb "$w")
    local held
    held=$(redis-cli -p "$rport" keys 'mjq:processing:*' | head -1 |
        xargs -r redis-cli -p "$rport" llen)
    echo
    echo "(b) capacity: $inflight jobs in flight in one worker (sim duration 60 s, schedule 2000,4000,8000)"
    awk -v held="$held" -v rss="$rss" -v hwm="$hwm" -v ticks=$((c1 - c0)) \
        -v hz="$hz" -v ms=$((t1 - t0)) -v acc="$(sim_stat accepted)" 'BEGIN {
        printf "  %-34s %s (accepted upstream: %s)\n", "jobs held in processing list", held, acc
        printf "  %-34s %.1f MB (peak %.1f MB)\n", "worker RSS while holding", rss / 1024, hwm / 1024
        printf "  %-34s %.1f %%\n", "worker CPU while holding (polling)", 100 * (ticks / hz) / (ms / 1000)
    }'
    kill "$w"
    wait "$w" 2>/dev/null || true
}

# One polling run: n jobs of 3 s, polled every 500 ms, batch on or off.
polling_run() {
    local batch=$1 n=$2 w t0 t1 c0 c1 got
    start_redis
    start_sim --duration-ms 3000
    fill_queue "$n" poll
    MJQ_REDIS_URL=redis://127.0.0.1:$rport/0 \
        MJQ_API_BASE_URL=http://127.0.0.1:$sport MJQ_API_KEY=bench-key \
        MJQ_CONCURRENCY=$n MJQ_POLL_SCHEDULE_MS=500 \
        MJQ_API_BATCH_FETCH=$batch MJQ_API_BATCH_WINDOW_MS=200 \
        MJQ_LOG_LEVEL=warn "$mjq" worker >"$dir/worker.log" 2>&1 &
    w=$!
    pids+=("$w")
    t0=$(now_ms)
    c0=$(cpu_ticks "$w")
    for _ in $(seq 3000); do
        got=$(redis-cli -p "$rport" xlen mjq:results)
        [ "$got" -ge "$n" ] && break
        sleep 0.02
    done
    t1=$(now_ms)
    c1=$(cpu_ticks "$w")
    awk -v label="$([ "$batch" = true ] && echo "batch_fetch on" || echo "task by task")" \
        -v n="$got" -v nsub="$(sim_stat submits)" -v fet="$(sim_stat fetches)" \
        -v lists="$(sim_stat batch_fetches)" -v ticks=$((c1 - c0)) -v hz="$hz" \
        -v ms=$((t1 - t0)) 'BEGIN {
        printf "  %-16s %5d results, %.2f HTTP requests per job (%d submits, %d fetches, %d list-by-condition), worker CPU %.3f s per 1000 jobs, %.1f s\n",
            label, n, (nsub + fet + lists) / n, nsub, fet, lists, (ticks / hz) / (n / 1000), ms / 1000
    }'
    kill "$w"
    wait "$w" 2>/dev/null || true
    kill "$sim_pid" 2>/dev/null || true
    redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1 || true
}

polling() {
    local n=${BENCH_POLL_JOBS:-2000}
    echo
    echo "(c) polling: $n jobs of 3 s in flight at once, poll schedule 500 ms"
    polling_run false "$n"
    polling_run true "$n"
}

echo "mjq benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
machine
case $what in
throughput) throughput ;;
capacity) capacity ;;
polling) polling ;;
all)
    throughput
    capacity
    polling
    ;;
*)
    echo "usage: scripts/bench.sh [throughput|capacity|polling|all]" >&2
    exit 64
    ;;
esac
