#!/usr/bin/env bash
# Installs every Debian package Ferry needs to build, test and run its demos.
# Idempotent and quiet when everything is already there (no apt-get update then).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config clang
  linux-libc-dev liburing-dev libexpected-dev libzstd-dev libxxhash-dev libssl-dev openssl
  libgtest-dev libgmock-dev libbenchmark-dev libfmt-dev nlohmann-json3-dev libcli11-dev
  libxgboost-dev zlib1g-dev
  # Static checks (tools/scripts/lint.sh; .ci/run runs cppcheck).
  cppcheck clang-tidy
  # The fleet: etcd (tests start their own), network namespaces for the end-to-end test.
  etcd-server iproute2
  # Linux guest preparation (tests/linux): kernel and busybox unpacking.
  xz-utils zstd lz4 cpio
  # The test guest is also checked under QEMU (multiboot path), and bench/ compares to it.
  qemu-system-x86
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
