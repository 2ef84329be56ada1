#!/usr/bin/env bash
# Runs the README's copy-paste examples that need no GPU: every ```sh block that follows a line
# "<!-- readme-test -->", as written, with bash -e, in a scratch folder that looks like the repository root
# (the sources linked in, build/apps/plm the binary under test), so the outputs stay out of the source tree.
# Each block runs in its own session, whose leftovers (a server a failed block left running) are killed.
# Also checks that the README opens with the two commands (set-up + demo, tests) and that what they name exists.
# Usage: readme_examples_test.sh PLM SOURCE_DIR SCRATCH_DIR
set -uo pipefail
plm=$1
src=$2
scratch=$3
fail() { echo "FAIL: $*"; exit 1; }

readme="$src/README.md"
first_block=$(awk '/^```sh$/ {inside = 1; next} inside && /^```$/ {exit} inside {print}' "$readme")
grep -q '^bash scripts/install-deps.sh && bash scripts/build.sh && ./build/apps/plm demo ' <<< "$first_block" ||
  fail "the README's first command is not set-up + plm demo"
grep -q '^bash scripts/test.sh ' <<< "$first_block" || fail "the README's second command is not the tests"
for script in scripts/install-deps.sh scripts/build.sh scripts/test.sh; do [[ -f $src/$script ]] || fail "$script is missing"; done
"$plm" demo --help > /dev/null || fail "plm demo --help failed"

rm -rf "$scratch"
mkdir -p "$scratch/root/build/apps" "$scratch/blocks"
for entry in "$src"/*; do
  [[ $(basename "$entry") == build ]] || ln -s "$entry" "$scratch/root/$(basename "$entry")"
done
ln -s "$plm" "$scratch/root/build/apps/plm"

awk -v dir="$scratch/blocks" '
  /^<!-- readme-test -->$/ {marked = 1; next}
  marked && /^```sh$/ {n++; file = sprintf("%s/%02d.sh", dir, n); inside = 1; marked = 0; next}
  inside && /^```$/ {inside = 0; close(file); next}
  inside {print > file}
  !inside && !/^[[:space:]]*$/ {marked = 0}' "$readme"
blocks=("$scratch"/blocks/*.sh)
[[ -f ${blocks[0]} ]] || fail "no block of the README is marked <!-- readme-test -->"

for block in "${blocks[@]}"; do
  echo "=== $(basename "$block"):"
  cat "$block"
  start=$(date +%s)
  (cd "$scratch/root" && exec setsid bash -e -o pipefail "$block") &
  pid=$!
  wait "$pid"
  status=$?
  kill -- "-$pid" 2> /dev/null
  echo "=== $(basename "$block"): exit status $status after $(( $(date +%s) - start )) s"
  [[ $status -eq 0 ]] || fail "README block $(basename "$block") failed"
done
echo "PASS: ${#blocks[@]} README blocks"
