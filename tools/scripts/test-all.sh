#!/usr/bin/env bash
# Installs dependencies, builds Ferry and runs the whole test suite:
#   1. the release build (RelWithDebInfo): every unit and integration test (real KVM);
#   2. an ASan+UBSan build of the unit tests.
# Usage: bash tools/scripts/test-all.sh   (from anywhere; builds under ./build-*)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
jobs=$(nproc)

bash tools/scripts/install-deps.sh

section() { printf '\n==== %s ====\n' "$*"; }

section "release build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFERRY_BUILD_BENCH=ON >/dev/null
cmake --build build -j"$jobs"

section "all tests (release build)"
(cd build && ctest --output-on-failure -j"$jobs" --timeout 600)

section "unit tests under AddressSanitizer + UndefinedBehaviorSanitizer"
# Built with clang so the same tree also holds the libFuzzer targets (tests/fuzz/,
# docs/reliability.md "Fuzzing"); a build-asan left by an older gcc setup is recreated.
if [[ -f build-asan/CMakeCache.txt ]] && ! grep -q '^FERRY_FUZZ:BOOL=ON' build-asan/CMakeCache.txt; then
  rm -rf build-asan
fi
CC=clang CXX=clang++ cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DFERRY_SANITIZE=ON \
  -DFERRY_FUZZ=ON -DFERRY_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j"$jobs" --target ferry_unit_tests ferry_fuzzers
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --output-on-failure -j"$jobs" -L unit --timeout 600)
# Then every fuzzer for 40 s, two at a time (about 3.5 min); any crash fails the run.
bash tools/scripts/fuzz.sh --build-dir build-asan --seconds 40 --jobs 2

section "done: all suites passed"
echo "build dirs: $root/build $root/build-asan"
