# shellcheck shell=bash
# Sourced by demo.sh, bench.sh and tests/e2e/lib.sh: free_port prints a
# loopback TCP port that no socket uses, for a server the script starts.
# It is drawn outside the kernel's ephemeral range, where the client side
# of any connection (curl, redis-cli, the workers) may hold a port that a
# bind then finds taken. Returns 1 (after saying so) when 50 draws found
# none.
free_port()
{
    local p lo=32768 hi=60999 bottom=10000 top
    read -r lo hi </proc/sys/net/ipv4/ip_local_port_range || true
    top=$((lo - 1))
    if [ "$top" -lt $((bottom + 1000)) ]; then
        # No room below the range: above it, else anywhere.
        bottom=$((hi + 1))
        top=65535
        [ "$bottom" -lt $((top - 1000)) ] || { bottom=20000; top=60000; }
    fi
    for _ in $(seq 1 50); do
        p=$((bottom + (RANDOM * 32768 + RANDOM) % (top - bottom + 1)))
        if [ -z "$(ss -Hant "( sport = :$p )")" ]; then
            echo "$p"
            return 0
        fi
    done
    echo "no free port found in $bottom-$top" >&2
    return 1
}
