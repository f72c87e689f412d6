#!/usr/bin/env bash
# House checks on the C sources: clang-format clean, and none of the calls
# STYLE.md bans (use snprintf, strtol with full checks, sigaction).
set -euo pipefail
cd "${MJQ_SRC:-$(dirname "$0")/../..}"
status=0
files=$(find src tests -name '*.c' -o -name '*.h' | sort)
for f in $files; do
    if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
        echo "not clang-format clean: $f"
        status=1
    fi
done
banned='\b(sprintf|vsprintf|strcpy|strcat|gets|strtok|atoi|atol|atoll|signal)[[:space:]]*\('
if grep -nE "$banned" $(find src -name '*.c') | grep -v '^\S*:[0-9]*:\s*/\?\*'; then
    echo "banned calls above (see STYLE.md rule 21)"
    status=1
fi
[ "$status" -eq 0 ] && echo "1 passed, 0 failed"
exit "$status"
