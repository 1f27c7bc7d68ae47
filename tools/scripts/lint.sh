#!/usr/bin/env bash
# Static checks on Ferry's own C++ (vmm, migration, predictor, kernel-interfaces, tools):
# clang-tidy with the root .clang-tidy, then cppcheck. Tests, benchmarks and the
# freestanding test guests (tests/guests, C with its own flags) are not linted.
# Both tools read build-lint/compile_commands.json (configured here without precompiled
# headers; nothing is compiled), filtered down to the project's own translation units.
#
# Usage: bash tools/scripts/lint.sh [-j N] [--cppcheck-only] [--changed REF] [FILE...]
#   FILE...        lint only these .cc files
#   --cppcheck-only  skip clang-tidy (what .ci/run does: cppcheck over everything takes
#                  about a minute, clang-tidy about ten)
#   --changed REF  lint only the .cc files changed since git REF (e.g. origin/main or
#                  HEAD~1, as .ci/run does): the full run costs ~15 CPU-minutes of clang-tidy.
# Exit status: 0 clean, 1 findings (printed as file:line: check), 2 setup error.
# cppcheck 2.10 gives up on elf_reader.cc's templated ELF32/64 reader with an internal
# "Cyclic reverse analysis" error (not a finding); that one is suppressed below.
# False positives are suppressed inline with a reason:
#   clang-tidy: // NOLINT(check-name): why        cppcheck: // cppcheck-suppress id ; why
set -uo pipefail
cd "$(dirname "$0")/../.."

jobs=2
if [[ "${1:-}" == "-j" ]]; then
  jobs=$2
  shift 2
fi
tidy_enabled=1
if [[ "${1:-}" == "--cppcheck-only" ]]; then
  tidy_enabled=0
  shift
fi
if [[ "${1:-}" == "--changed" ]]; then
  ref=$2
  shift 2
  if ! git rev-parse --verify -q "$ref^{commit}" >/dev/null; then
    echo "lint.sh: $ref is not in this clone (a shallow clone?): nothing linted" >&2
    exit 0
  fi
  mapfile -t changed < <(git diff --name-only --diff-filter=d "$ref" -- '*.cc')
  if [[ ${#changed[@]} -eq 0 ]]; then
    echo "lint.sh: no .cc file changed since $ref" >&2
    exit 0
  fi
  set -- "${changed[@]}"
  changed_mode=1
fi
build=${FERRY_LINT_BUILD:-build-lint}
tidy=$(command -v clang-tidy || command -v clang-tidy-14 || true)
if { ((tidy_enabled)) && [[ -z "$tidy" ]]; } || ! command -v cppcheck >/dev/null; then
  echo "lint.sh: needs clang-tidy and cppcheck (apt-get install clang-tidy cppcheck)" >&2
  exit 2
fi
# Configured every time (a few seconds): the database follows the source tree. Precompiled
# headers off: their forced -include would make both tools parse the whole standard library.
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFERRY_BUILD_BENCH=OFF \
  -DFERRY_PCH=OFF >/dev/null || exit 2

# The project's own translation units, and a compile database with just those.
db=$build/lint
mkdir -p "$db"
python3 - "$build/compile_commands.json" "$db/compile_commands.json" "$PWD" "$@" <<'EOF' || exit 2
import json, os, re, sys
src, dst, root, only = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
own = re.compile(r"^(vmm|migration|predictor|kernel-interfaces|tools)/.*\.cc$")
only = {os.path.relpath(os.path.abspath(f), root) for f in only}
keep, seen = [], set()
for entry in json.load(open(src)):
    rel = os.path.relpath(os.path.join(entry["directory"], entry["file"]), root)
    if own.match(rel) and rel not in seen and (not only or rel in only):
        seen.add(rel)
        keep.append(entry)
json.dump(keep, open(dst, "w"), indent=1)
print(f"lint.sh: {len(keep)} translation units", file=sys.stderr)
EOF
mapfile -t files < <(python3 -c 'import json,sys; [print(e["file"]) for e in json.load(open(sys.argv[1]))]' \
  "$db/compile_commands.json")
if [[ ${#files[@]} -eq 0 ]]; then
  echo "lint.sh: no project translation unit to lint" >&2
  exit $((${changed_mode:-0} ? 0 : 2))
fi

status=0
logs=$(mktemp -d "${TMPDIR:-/tmp}/ferry-lint.XXXXXX")  # per run: concurrent runs do not mix
if ((tidy_enabled)); then
  start=$(date +%s)
  # clang-tidy parses with clang: drop the g++-only warning flags it does not know.
  printf '%s\n' "${files[@]}" |
    xargs -P "$jobs" -n 4 "$tidy" -p "$db" --quiet --warnings-as-errors='*' \
      --extra-arg=-Wno-unknown-warning-option --extra-arg=-Wno-unused-command-line-argument \
      >"$logs/clang-tidy.log" 2>&1 || status=1
  grep -E "(warning|error):" "$logs/clang-tidy.log" | sort -u
  echo "lint.sh: clang-tidy $(( $(date +%s) - start )) s" >&2
fi

start=$(date +%s)
cppcheck --project="$db/compile_commands.json" -j "$jobs" --quiet --inline-suppr \
  --enable=warning,performance,portability --std=c++20 --error-exitcode=1 \
  --suppress=missingIncludeSystem --suppress=unmatchedSuppression \
  --suppress='cppcheckError:*elf_reader.cc' \
  --suppress='*:/usr/*' --suppress='*:*/tests/*' \
  --cppcheck-build-dir="$db" \
  --template='{file}:{line}: {severity}: {message} [cppcheck-{id}]' 2>"$logs/cppcheck.log" ||
  status=1
cat "$logs/cppcheck.log"
echo "lint.sh: cppcheck $(( $(date +%s) - start )) s" >&2

if [[ $status -ne 0 ]]; then
  echo "lint.sh: findings above (logs in $logs/)" >&2
fi
exit $status
