#!/usr/bin/env bash
# The test suite, as CI runs it: dependencies, an ASan+UBSan debug build in
# build-asan/, then every unit and end-to-end test through ctest, two at a
# time. Extra arguments go to ctest (e.g. `scripts/test.sh -L unit` or
# `scripts/test.sh -R e2e.test_enqueue`). Exits with ctest's status; ctest's
# summary is the last thing printed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

scripts/setup.sh

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMJQ_ASAN=ON \
    -DMJQ_UBSAN=ON >/dev/null
cmake --build build-asan -j"$(nproc)"

cd build-asan
exec ctest --output-on-failure -j2 --timeout 600 "$@"
