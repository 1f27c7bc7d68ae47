#!/bin/sh
# /init of the Ferry test initramfs (see make-initramfs.sh). Runs the command after
# "ferry.cmd=" on the kernel command line, framed by marker lines, then powers off.
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || mknod /dev/port c 1 4

cmdline=$(cat /proc/cmdline)
cmd=""
case "$cmdline" in
  *ferry.cmd=*) cmd=${cmdline#*ferry.cmd=} ;;
esac
port=""
for word in $cmdline; do
  case "$word" in
    ferry.exit_port=*) port=${word#ferry.exit_port=} ;;
  esac
done

echo "FERRY-CMD-BEGIN"
sh -c "$cmd"
rc=$?
echo "FERRY-CMD-END rc=$rc"

if [ -n "$port" ] && [ -e /dev/port ]; then
  # One byte, the command's status, to the VMM's exit port.
  printf "\\$(printf '%03o' $((rc & 255)))" | dd of=/dev/port bs=1 count=1 seek=$((port)) 2>/dev/null
fi
poweroff -f
# Without ACPI poweroff may only halt; a triple-fault reset ends the VM as a last resort.
reboot -f
