#!/usr/bin/env bash
# make-initramfs.sh CACHE_DIR: builds CACHE_DIR/initramfs.cpio, a busybox-static initramfs
# (cpio newc, uncompressed so the guest kernel spends no time inflating it).
# Its /init mounts /proc, /sys and /dev, runs the shell command that follows
# "ferry.cmd=" on the kernel command line (everything to the end of the line, so put it
# last), prints its output between the lines FERRY-CMD-BEGIN and FERRY-CMD-END rc=N,
# then powers the machine off: it writes the exit status to the I/O port given by
# "ferry.exit_port=0xNN" through /dev/port (if given), then falls back to poweroff -f.
# Needs: apt-get, dpkg-deb (busybox-static is downloaded, never installed; busybox's own
# cpio applet writes the archive).
set -euo pipefail

cache=${1:?usage: make-initramfs.sh CACHE_DIR}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
out=$cache/initramfs.cpio
here=$(cd "$(dirname "$0")" && pwd)

if [[ -s $out && $out -nt $here/make-initramfs.sh && $out -nt $here/init.sh ]]; then
  echo "make-initramfs: cached $out"
  exit 0
fi

work=$(mktemp -d "$cache/.initramfs.XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -q busybox-static >/dev/null 2>"$work/apt.err") || {
  cat "$work/apt.err" >&2
  exit 1
}
dpkg-deb -x "$work"/busybox-static_*.deb "$work/pkg"
bb=$work/pkg/bin/busybox
[[ -x $bb ]] || { echo "make-initramfs: busybox-static has no /bin/busybox" >&2; exit 1; }

root=$work/root
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,etc}
cp "$bb" "$root/bin/busybox"
for applet in $("$bb" --list); do
  [[ $applet == busybox ]] || ln -sf busybox "$root/bin/$applet"
done
install -m 0755 "$here/init.sh" "$root/init"
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | "$bb" cpio -o -H newc -R 0:0 >"$work/initramfs.cpio" 2>/dev/null)
mv "$work/initramfs.cpio" "$out"
echo "make-initramfs: $(stat -c %s "$out") bytes -> $out"
