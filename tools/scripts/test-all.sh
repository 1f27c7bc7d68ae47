#!/usr/bin/env bash
# Installs dependencies, builds Ferry and runs the whole test suite, sanitized:
#   1. one clang build of the whole tree with AddressSanitizer + UndefinedBehaviorSanitizer
#      (and libFuzzer coverage, so the fuzz targets come from the same tree);
#   2. every unit and real-KVM integration test on it: the VMM processes the integration
#      tests start are ASan+UBSan builds too;
#   3. a ThreadSanitizer build of the migration engine, transport, io_uring and control
#      server, and their tests;
#   4. cppcheck over the project's code, clang-tidy over the files the newest commit
#      changed (tools/scripts/lint.sh);
#   5. every libFuzzer target for 40 s, two at a time.
# The plain optimised build (build/, what the README's demo command makes) is not part of
# this run: every test it would run runs here under the sanitizers instead.
# Usage: bash tools/scripts/test-all.sh   (from anywhere; builds under ./build-asan, ./build-tsan)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
jobs=$(nproc)
t0=$(date +%s)

section() { printf '\n==== %s (at %d s) ====\n' "$*" $(($(date +%s) - t0)); }

bash tools/scripts/install-deps.sh

section "ASan+UBSan build (clang, -O1): the whole tree, fuzz targets and benchmarks included"
# A build-asan left by an older setup (gcc, or without the fuzz targets) is recreated.
if [[ -f build-asan/CMakeCache.txt ]] && ! grep -q '^FERRY_FUZZ:BOOL=ON' build-asan/CMakeCache.txt; then
  rm -rf build-asan
fi
CC=clang CXX=clang++ cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" -DCMAKE_C_FLAGS_DEBUG="-O1 -g" \
  -DFERRY_SANITIZE=ON -DFERRY_FUZZ=ON -DFERRY_BUILD_BENCH=ON >/dev/null
cmake --build build-asan -j"$jobs"

section "all tests under ASan+UBSan: unit and real-KVM integration"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure -j"$jobs" --timeout 600)

section "ThreadSanitizer build (clang) and tests: migration, transport, io_uring, control server"
bash tools/scripts/test-tsan.sh

section "static checks: cppcheck over all the project's code, clang-tidy over the newest commit's files"
# clang-tidy over everything costs ~15 CPU-minutes, more than this run can spend; the
# full run (bash tools/scripts/lint.sh) was clean on 2026-11-26.
bash tools/scripts/lint.sh --cppcheck-only
bash tools/scripts/lint.sh --changed HEAD~1

section "fuzzing: every target 40 s, two at a time"
bash tools/scripts/fuzz.sh --build-dir build-asan --seconds 40 --jobs 2

section "done: all suites passed"
echo "build dirs: $root/build-asan $root/build-tsan"
