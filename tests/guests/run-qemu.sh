#!/bin/sh
# Boot Ferry's test guest under QEMU (Debian's qemu-system-x86, 7.2) with KVM and exit with
# the guest's own status (0 ok, 1 verification failure, 2 bad command line, 3 exception;
# 124 = timeout, 125 = QEMU failed / no exit-port write). Serial output goes to stdout.
#
#   run-qemu.sh [-g GUEST.bin] [-m MiB] [-c CPUS] [-d DISK.img] [-M pc|microvm]
#               [-t TIMEOUT_S] [-q "extra qemu args"] [-- guest command line...]
#
# Defaults: the guest from FERRY_TEST_GUEST or ./build*/tests/guests/ferry-test-guest.bin,
# 512 MiB, 1 vCPU, machine microvm (boots in ~70 ms here; -M pc takes ~4 s because SeaBIOS
# runs in the emulated ring 0), timeout 120 s. -d needs microvm (the only x86 machine with
# virtio-mmio); the guest then gets virtio_mmio.device=... for the disk.
# Used by the QEMU side-by-side benchmark (bench/) as well; docs/test-guest.md.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
guest=${FERRY_TEST_GUEST:-}
mem=512
cpus=1
disk=
machine=
timeout_s=120
extra=

while [ $# -gt 0 ]; do
    case "$1" in
    -g) guest=$2; shift 2 ;;
    -m) mem=$2; shift 2 ;;
    -c) cpus=$2; shift 2 ;;
    -d) disk=$2; shift 2 ;;
    -M) machine=$2; shift 2 ;;
    -t) timeout_s=$2; shift 2 ;;
    -q) extra=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) break ;;
    esac
done
cmdline="$*"

if [ -z "$guest" ]; then
    for cand in "$here"/../../build*/tests/guests/ferry-test-guest.bin; do
        if [ -f "$cand" ]; then guest=$cand; break; fi
    done
fi
if [ -z "$guest" ] || [ ! -f "$guest" ]; then
    echo "run-qemu.sh: test guest not found (build target ferry_test_guest or pass -g)" >&2
    exit 125
fi
qemu=${QEMU:-qemu-system-x86_64}
if ! command -v "$qemu" >/dev/null 2>&1; then
    echo "run-qemu.sh: $qemu not installed (apt-get install qemu-system-x86)" >&2
    exit 125
fi

[ -n "$machine" ] || machine=microvm
if [ -n "$disk" ] && [ "$machine" != microvm ]; then
    echo "run-qemu.sh: -d needs -M microvm (virtio-mmio)" >&2
    exit 125
fi

set -- -enable-kvm -cpu host,-arch-capabilities -m "$mem" -smp "$cpus" \
    -nographic -no-reboot -display none -monitor none -serial stdio -net none \
    -kernel "$guest" -device isa-debug-exit,iobase=0xf4,iosize=0x04
if [ "$machine" = microvm ]; then
    # microvm: no PCI, no ACPI; its first virtio-mmio transport (the one a lone
    # virtio-blk-device lands on) is the last one (bus 23): 512 bytes at 0xfeb02e00. The guest
    # polls, so the IRQ number is informational.
    set -- -M microvm,x-option-roms=off,rtc=off,pit=off,pic=off,isa-serial=on \
        -global virtio-mmio.force-legacy=false "$@"
    if [ -n "$disk" ]; then
        set -- "$@" -drive "id=d0,file=$disk,format=raw,if=none,cache=none" \
            -device virtio-blk-device,drive=d0
        cmdline="$cmdline virtio_mmio.device=512@0xfeb02e00:12"
    fi
else
    set -- -M pc "$@"
fi
# shellcheck disable=SC2086
set -- "$@" $extra -append "$cmdline"

rc=0
timeout "$timeout_s" "$qemu" "$@" || rc=$?
if [ "$rc" -eq 124 ]; then
    echo "run-qemu.sh: timeout after ${timeout_s}s" >&2
    exit 124
fi
# isa-debug-exit: QEMU exits with (status << 1) | 1.
if [ $((rc % 2)) -eq 1 ]; then
    exit $((rc >> 1))
fi
echo "run-qemu.sh: QEMU exited with $rc without the guest's exit-port write" >&2
exit 125
