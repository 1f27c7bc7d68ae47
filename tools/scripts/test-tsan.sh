#!/usr/bin/env bash
# ThreadSanitizer build of the multi-threaded unit tests: the migration engine (sender and
# receiver pipelines), the transport (io_uring streams, TLS, channels) and io_uring itself.
# Not part of .ci/run yet (it adds ~4 min on 2 cores); measured clean on 2026-11-25.
# Usage: bash tools/scripts/test-tsan.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
jobs=$(nproc)
bash tools/scripts/install-deps.sh
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFERRY_TSAN=ON \
  -DFERRY_BUILD_BENCH=OFF >/dev/null
cmake --build build-tsan -j"$jobs" --target migration_unit_tests transport_tests kernel_io_tests
cd build-tsan
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  ctest --output-on-failure -j"$jobs" -R '^(migration_unit_tests|transport_tests|kernel_io_tests)$' \
  --timeout 900
