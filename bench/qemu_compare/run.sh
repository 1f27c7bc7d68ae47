#!/bin/sh
# Full Ferry vs QEMU 7.2 comparison: installs qemu-system-x86 if missing, builds the
# benchmark in $BUILD (default build-bench, RelWithDebInfo) and keeps the output in
# bench/qemu_compare/results-<UTC date>.txt. Extra arguments go to qemu_compare_bench
# (e.g. `--repeat 5`, `--only idle`, `--ferry-arg=--channels=4`).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$root/build-bench}
if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
  echo "installing qemu-system-x86 (QEMU 7.2 on Debian 12)"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends qemu-system-x86
fi
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFERRY_BUILD_BENCH=ON
fi
cmake --build "$build" -j"${JOBS:-2}" --target qemu_compare_bench
out="$root/bench/qemu_compare/results-$(date -u +%F).txt"
{
  echo "# $(date -u '+%F %T') UTC, $(git -C "$root" rev-parse --short HEAD), load: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# command: bench/qemu_compare/run.sh $*"
  "$build/bench/qemu_compare/qemu_compare_bench" "$@"
} 2>&1 | tee "$out"
