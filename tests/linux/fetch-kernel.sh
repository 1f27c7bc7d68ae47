#!/usr/bin/env bash
# fetch-kernel.sh CACHE_DIR: puts Debian 12's cloud kernel into CACHE_DIR as
#   vmlinuz  - the bzImage from the linux-image-*-cloud-amd64 .deb (apt-get download +
#              dpkg-deb -x; the package is never installed on the host)
#   vmlinux  - the uncompressed ELF kernel (for the PVH entry), extracted from vmlinuz
#   kernel-version - the package name it came from
# The package is the one Debian 12's metapackage linux-image-cloud-amd64 depends on (the
# newest cloud kernel of the release); set FERRY_KERNEL_PACKAGE to pick another.
# Needs: apt-get, dpkg-deb, and the decompressor of the payload (xz-utils, zstd or gzip).
# Idempotent: does nothing if CACHE_DIR already has both files.
set -euo pipefail

cache=${1:?usage: fetch-kernel.sh CACHE_DIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

if [[ -s $cache/vmlinux && -s $cache/vmlinuz ]]; then
  echo "fetch-kernel: cached in $cache ($(cat "$cache/kernel-version" 2>/dev/null || echo '?'))"
  exit 0
fi

pkg=${FERRY_KERNEL_PACKAGE:-}
if [[ -z $pkg ]]; then
  pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
fi
if [[ -z $pkg ]]; then
  # No metapackage in the lists: take the highest-versioned cloud image on offer.
  pkg=$(apt-cache search --names-only '^linux-image-[0-9].*-cloud-amd64$' |
        awk '{ print $1 }' | grep -v -- '-dbg' | sort -V | tail -n 1)
fi
if [[ -z $pkg ]]; then
  echo "fetch-kernel: no linux-image-*-cloud-amd64 in apt's lists (run apt-get update)" >&2
  exit 1
fi

work=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "fetch-kernel: apt-get download $pkg"
(cd "$work" && apt-get download -q "$pkg" >/dev/null 2>"$work/apt.err") || {
  cat "$work/apt.err" >&2
  exit 1
}
dpkg-deb -x "$work"/*.deb "$work/root"
vmlinuz=$(ls "$work"/root/boot/vmlinuz-* 2>/dev/null | head -n 1)
if [[ -z $vmlinuz ]]; then
  echo "fetch-kernel: $pkg has no /boot/vmlinuz-*" >&2
  exit 1
fi
cp "$vmlinuz" "$work/vmlinuz"
"$here/extract-vmlinux.sh" "$work/vmlinuz" "$work/vmlinux"
mv "$work/vmlinuz" "$cache/vmlinuz"
mv "$work/vmlinux" "$cache/vmlinux"
echo "$pkg" >"$cache/kernel-version"
echo "fetch-kernel: $pkg -> $cache/vmlinuz, $cache/vmlinux"
