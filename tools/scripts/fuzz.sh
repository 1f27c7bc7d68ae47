#!/usr/bin/env bash
# Runs Ferry's libFuzzer targets (tests/fuzz/, docs/reliability.md "Fuzzing") for a bounded
# time each and fails on any crash, leak, timeout or sanitizer report.
#
#   bash tools/scripts/fuzz.sh [--seconds N] [--jobs J] [--build-dir D] [--only NAME]...
#   bash tools/scripts/fuzz.sh --make-seeds [--build-dir D]
#
#   --seconds N     run each target N seconds (default 60; CI uses 40, a long run 600)
#   --jobs J        run J targets at a time, one process each (default 1)
#   --build-dir D   build tree with FERRY_FUZZ=ON (default build-fuzz); configured with clang,
#                   FERRY_SANITIZE=ON and FERRY_FUZZ=ON if missing; the targets are built
#                   incrementally first (FUZZ_BUILD_JOBS, default 2)
#   --only NAME     run only this target (repeatable; "wire" or "wire_fuzzer")
#   --make-seeds    regenerate tests/fuzz/corpus/ (generated and copied seeds) and exit
#   --keep          keep the work directory (grown corpora, logs) and print its path
#
# Seeds are copied to a temporary directory first: the repository is never written. A
# crash leaves its input in the work directory, whose path is printed; the script then
# exits 1. Per target it prints executions, coverage at start and end, and corpus size.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

seconds=60
jobs=1
build_dir=build-fuzz
only=()
make_seeds=0
keep=0
usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }
while (($#)); do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --build-dir) build_dir=$2; shift 2 ;;
    --only) only+=("${2%_fuzzer}"); shift 2 ;;
    --make-seeds) make_seeds=1; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "fuzz.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ $build_dir = /* ]] || build_dir=$root/$build_dir

targets=(wire receiver page_codec virtqueue virtio_mmio control boot telemetry backblaze_csv)
if ((${#only[@]})); then
  for t in "${only[@]}"; do
    [[ " ${targets[*]} " == *" $t "* ]] || { echo "fuzz.sh: no target '$t' (${targets[*]})" >&2; exit 2; }
  done
  targets=("${only[@]}")
fi

build() {
  if [[ ! -f $build_dir/CMakeCache.txt ]]; then
    echo "fuzz.sh: configuring $build_dir (clang, ASan+UBSan, libFuzzer)"
    CC=clang CXX=clang++ cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
      -DFERRY_SANITIZE=ON -DFERRY_FUZZ=ON -DFERRY_BUILD_BENCH=OFF >/dev/null
  fi
  grep -q '^FERRY_FUZZ:BOOL=ON' "$build_dir/CMakeCache.txt" ||
    { echo "fuzz.sh: $build_dir is not configured with -DFERRY_FUZZ=ON" >&2; exit 2; }
  cmake --build "$build_dir" -j"${FUZZ_BUILD_JOBS:-2}" --target "$@"
}

corpus=$root/tests/fuzz/corpus

# Seeds that are text or a few bytes: control lines, telemetry fixtures, CSV, codec blocks.
# The first byte of telemetry / CSV seeds selects the parser or mode (see the targets).
make_text_seeds() {
  local fx=$root/tests/unit/predictor/fixtures c=$corpus
  printf '{"cmd":"status"}\n' >"$c/control/status"
  printf '{"cmd":"migrate","to":"tcp:127.0.0.1:4444","channels":4,"compress":"zstd:3"}\nquoted \xff text' \
    >"$c/control/migrate_quoted"
  printf '{"cmd":"x","a":[1,2.5e3,{"b":null}],"s":"\\u00e9\\ud83d\\ude00"}' >"$c/control/nested"
  { printf '\x00'; cat "$fx/host_metal/proc/diskstats"; } >"$c/telemetry/diskstats"
  { printf '\x01'; cat "$fx/host_metal/sys/block/sda/stat"; } >"$c/telemetry/block_stat"
  { printf '\x02'; cat "$fx/host_bad/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq"; } \
    >"$c/telemetry/sysfs_u64"
  { printf '\x03'; cat "$fx/smartctl/ata.json"; } >"$c/telemetry/smartctl_ata"
  { printf '\x03'; cat "$fx/smartctl/nvme.json"; } >"$c/telemetry/smartctl_nvme"
  printf '\x042013-04-10' >"$c/telemetry/iso_date"
  { printf '\x05\x64'; tr -d '\n' <"$fx/host_metal/sys/block/sda/stat"; printf '|';
    cat "$fx/host_metal/sys/block/nvme0n1/stat"; } >"$c/telemetry/io_rates"
  local csv='date,serial_number,model,capacity_bytes,failure,smart_1_raw,smart_5_raw,smart_9_raw,smart_194_raw,smart_197_raw'
  printf '\x00%s\n2013-04-10,S1,ST3000DM001,3000,0,100,0,4031,26,0\n2013-04-10,S2,ST3000DM001,3000,1,,8,,30,2\r\n' \
    "$csv" >"$c/backblaze_csv/two_rows"
  printf '\x01%s\n2013-04-11,S1,M,1,0,1,2,3,4,5\n2013-02-30,S3,M,1,0,nan,,,,\nshort,row\n' \
    "$csv" >"$c/backblaze_csv/skip_malformed"
  # Codec: {codec, level selector, output length u32 (even: one page), hash u64, payload}.
  local page; page=$(mktemp)
  for i in $(seq 0 299); do printf 'ferry page %03d.' "$i"; done | head -c 4096 >"$page"
  { printf '\x04\x02\x00\x10\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00'; zstd -q -c --no-check "$page"; } \
    >"$c/page_codec/zstd_page"
  { printf '\x03\x81\x00\x10\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00'; cat "$page"; } >"$c/page_codec/raw_page"
  printf '\x01\x00\x01\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00' >"$c/page_codec/zero_extent"
  rm -f "$page"
}
if ((make_seeds)); then
  build fuzz_make_seeds
  mkdir -p "$corpus"/{wire,receiver,page_codec,virtqueue,virtio_mmio,control,boot,telemetry,backblaze_csv}
  cp "$root"/tests/golden/*.bin "$corpus/wire/"
  "$build_dir/tests/fuzz/fuzz_make_seeds" "$corpus"
  make_text_seeds
  echo "fuzz.sh: seeds regenerated in $corpus"
  exit 0
fi

build "${targets[@]/%/_fuzzer}"

work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-fuzz.XXXXXX")
((keep)) || trap 'rm -rf "$work"' EXIT
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

run_one() {
  local t=$1 dir=$work/$1
  mkdir -p "$dir/corpus" "$dir/artifacts"
  cp "$corpus/$t"/* "$dir/corpus/" 2>/dev/null || true
  local start=$SECONDS rc=0
  "$build_dir/tests/fuzz/${t}_fuzzer" "$dir/corpus" \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -detect_leaks=1 -print_final_stats=1 -artifact_prefix="$dir/artifacts/" \
    >"$dir/log" 2>&1 || rc=$?
  echo "$rc $((SECONDS - start))" >"$dir/status"
}

running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if ((running >= jobs)); then
    wait -n || true
    running=$((running - 1))
  fi
done
wait

failed=0
printf '%-16s %12s %8s %10s %8s %6s  %s\n' target executions exec/s cov0→cov ft corpus result
for t in "${targets[@]}"; do
  dir=$work/$t
  read -r rc took <"$dir/status"
  # libFuzzer's -print_final_stats=1 summary, and the last status line (cov/ft/corp).
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n1 || true)
  last=$(grep -E '^#[0-9]+' "$dir/log" | tail -n1 || true)
  cov0=$(grep -m1 'INITED' "$dir/log" | grep -o 'cov: [0-9]*' | cut -d' ' -f2 || true)
  cov=$(grep -o 'cov: [0-9]*' <<<"$last" | cut -d' ' -f2 || true)
  ft=$(grep -o 'ft: [0-9]*' <<<"$last" | cut -d' ' -f2 || true)
  corp=$(grep -o 'corp: [0-9]*' <<<"$last" | cut -d' ' -f2 || true)
  crash=$(find "$dir/artifacts" -type f | head -n1 || true)
  result=ok
  if ((rc != 0)) || [[ -n $crash ]] ||
     grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$dir/log"; then
    result="FAILED (rc $rc)"
    failed=1
    keep=1
  fi
  printf '%-16s %12s %8s %10s %8s %6s  %s\n' "$t" "${execs:-?}" \
    "$(( ${execs:-0} / (took > 0 ? took : 1) ))" "${cov0:-?}→${cov:-?}" "${ft:-?}" "${corp:-?}" \
    "$result"
  if [[ $result != ok ]]; then
    grep -m5 -E 'ERROR|runtime error|SUMMARY|deadly signal' "$dir/log" | sed 's/^/    /' || true
    if [[ -n $crash ]]; then echo "    crash input: $crash"; fi
    echo "    log: $dir/log"
  fi
done
if ((keep)); then
  trap - EXIT
  echo "fuzz.sh: work directory kept: $work"
fi
exit "$failed"
