#!/usr/bin/env bash
# Ferry's main job on this host: install, build, boot the self-verifying test guest,
# live-migrate it to a second Ferry process over loopback while it dirties memory and
# disk, and print the migration report.
# Usage: bash tools/scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
bash tools/scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target ferry ferry_test_guest
exec build/tools/ferry demo --workdir "${FERRY_DEMO_DIR:-/tmp/ferry-demo}"
