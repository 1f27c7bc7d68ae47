#!/usr/bin/env bash
# ThreadSanitizer build of the multi-threaded unit tests: the migration engine (sender and
# receiver pipelines, fault injection, the listener's accept limits), the transport
# (io_uring streams, TLS, channels), io_uring itself, and the control server (one thread
# per connection, one command at a time). The real-KVM migration tests (tests/integration)
# run the `ferry` binary and are not TSan-built: their threads are the same engine code.
# Usage: bash tools/scripts/test-tsan.sh [-j N]     (FERRY_TSAN_BUILD=dir to relocate)
# Built with clang (as .ci/run does, through tools/scripts/test-all.sh); a build-tsan
# configured with another compiler is recreated. Measured 2026-11-26 on the idle 2-core
# host: build 64 s from scratch with -j2 (precompiled headers), tests 40 s; clean.
set -euo pipefail
cd "$(dirname "$0")/../.."
jobs=$(nproc)
if [[ "${1:-}" == "-j" ]]; then
  jobs=$2
fi
build=${FERRY_TSAN_BUILD:-build-tsan}
start=$(date +%s)
bash tools/scripts/install-deps.sh
if [[ -f $build/CMakeCache.txt ]] && ! grep -q '^CMAKE_CXX_COMPILER:.*clang' "$build/CMakeCache.txt"; then
  rm -rf "$build"
fi
CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DFERRY_TSAN=ON -DFERRY_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j"$jobs" \
  --target migration_unit_tests transport_tests kernel_io_tests vmm_unit_tests
built=$(date +%s)
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
(
  cd "$build"
  ctest --output-on-failure -j"$jobs" -R '^(migration_unit_tests|transport_tests|kernel_io_tests)$' \
    --timeout 900
)
"$build/tests/unit/vmm/vmm_unit_tests" --gtest_filter='ControlServer.*' --gtest_brief=1
echo "test-tsan.sh: build $((built - start)) s, tests $(($(date +%s) - built)) s"
