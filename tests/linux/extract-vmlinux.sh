#!/usr/bin/env bash
# extract-vmlinux.sh BZIMAGE OUT: writes the uncompressed ELF kernel inside a bzImage.
# Like the kernel's scripts/extract-vmlinux, but it first reads the payload position the
# boot protocol (>= 2.08) records in the setup header (payload_offset at 0x248,
# payload_length at 0x24c, relative to the protected-mode code at (setup_sects+1)*512),
# and only falls back to scanning for a compressor's magic bytes when that fails.
# Decompressors: xz (xz-utils), zstd, gzip, bzip2, lz4 - whichever the payload needs.
set -euo pipefail

in=${1:?usage: extract-vmlinux.sh BZIMAGE OUT}
out=${2:?usage: extract-vmlinux.sh BZIMAGE OUT}

u8() { od -An -tu1 -j "$1" -N 1 "$in" | tr -d ' '; }
u32() { od -An -tu4 -j "$1" -N 4 "$in" | tr -d ' '; }

is_elf() { [[ -s $1 && $(head -c 4 "$1" | od -An -tx1 | tr -d ' ') == 7f454c46 ]]; }

# try FORMAT OFFSET [LENGTH]: decompress from OFFSET (bytes) into $out; true if ELF.
try() {
  local fmt=$1 off=$2 len=${3:-}
  local cmd
  case $fmt in
    xz) cmd=(xz -dc --single-stream) ;;
    zstd) cmd=(zstd -dcq) ;;
    gzip) cmd=(gzip -dc) ;;
    bzip2) cmd=(bzip2 -dc) ;;
    lz4) cmd=(lz4 -dcq) ;;
    *) return 1 ;;
  esac
  command -v "${cmd[0]}" >/dev/null || { echo "extract-vmlinux: need ${cmd[0]}" >&2; return 1; }
  # Trailing bytes after the stream (the kernel appends the decompressed size) make some
  # tools exit non-zero after writing everything: judge by the result, not the status.
  if [[ -n $len ]]; then
    tail -c "+$((off + 1))" "$in" | head -c "$len" | "${cmd[@]}" >"$out" 2>/dev/null || true
  else
    tail -c "+$((off + 1))" "$in" | "${cmd[@]}" >"$out" 2>/dev/null || true
  fi
  is_elf "$out"
}

magic_format() {
  local m
  m=$(od -An -tx1 -j "$1" -N 6 "$in" | tr -d ' \n')
  case $m in
    fd377a585a00*) echo xz ;;
    28b52ffd*) echo zstd ;;
    1f8b08*) echo gzip ;;
    425a68*) echo bzip2 ;;
    02214c18*) echo lz4 ;;
    *) echo unknown ;;
  esac
}

if [[ $(od -An -tx1 -j 0x202 -N 4 "$in" | tr -d ' \n') == 48647253 ]]; then # "HdrS"
  setup_sects=$(u8 $((0x1f1)))
  ((setup_sects == 0)) && setup_sects=4
  pm=$(((setup_sects + 1) * 512))
  poff=$(u32 $((0x248)))
  plen=$(u32 $((0x24c)))
  if ((plen > 0)); then
    fmt=$(magic_format $((pm + poff)))
    if try "$fmt" $((pm + poff)) "$plen"; then
      echo "extract-vmlinux: $fmt payload at $((pm + poff)) ($plen bytes) -> $out"
      exit 0
    fi
  fi
fi

# Fallback: scan for each compressor's magic and try every hit.
for spec in 'xz:\xfd7zXZ\x00' 'zstd:\x28\xb5\x2f\xfd' 'gzip:\x1f\x8b\x08' \
            'bzip2:BZh' 'lz4:\x02\x21\x4c\x18'; do
  fmt=${spec%%:*}
  pat=${spec#*:}
  while IFS=: read -r off _; do
    if try "$fmt" "$off"; then
      echo "extract-vmlinux: $fmt stream found at $off -> $out"
      exit 0
    fi
  done < <(LC_ALL=C grep -obUaP "$pat" "$in" 2>/dev/null | head -n 16 || true)
done
rm -f "$out"
echo "extract-vmlinux: no decompressible ELF kernel found in $in" >&2
exit 1
