#!/bin/bash
# A disk that fills up while `plm train` writes a checkpoint (issue 25): output_dir on a tmpfs with room for one
# checkpoint and a half. The run must fail with a message naming the file and "No space left on device", leave
# the previous checkpoint complete and nothing of the failed one, and, once there is room again, resume from it
# to the uninterrupted run's final weights bit for bit. The tmpfs is mounted in a private mount namespace
# (unshare; as root, or as a user where user namespaces are allowed); exits 77 (ctest: skipped) where neither works.
# Usage: plm_train_disk_full_test.sh PLM SOURCE_DIR SCRATCH
set -eu
plm=$1 src=$2 scratch=$3
fail() { echo "FAIL: $*" >&2; exit 1; }
run=(--config configs/train/tiny-sft.yaml steps=6 checkpoint.every=2 checkpoint.keep=3 log_every=1)

if [ "${PLM_DISK_FULL_NS:-}" != 1 ]; then
  rm -rf "$scratch" && mkdir -p "$scratch/disk"
  cd "$src"
  "$plm" train "${run[@]}" output_dir="$scratch/whole" > "$scratch/whole.log" 2>&1 || { cat "$scratch/whole.log"; fail "uninterrupted run"; }
  for flags in "--mount" "--user --map-root-user --mount"; do
    # shellcheck disable=SC2086
    if unshare $flags true 2> /dev/null; then
      PLM_DISK_FULL_NS=1 exec unshare $flags bash "$0" "$@"
    fi
  done
  echo "skipped: cannot mount a tmpfs here (unshare --mount needs root or user namespaces)"
  exit 77
fi

# In the private mount namespace: a disk of 1.5 checkpoints plus 4 MiB for the logs.
cd "$src"
checkpoint_bytes=$(du -sb "$scratch/whole/checkpoints/step-00000002" | cut -f1)
disk_bytes=$((checkpoint_bytes * 3 / 2 + (4 << 20)))
mount -t tmpfs -o size="$disk_bytes" tmpfs "$scratch/disk" || { echo "skipped: mount -t tmpfs failed"; exit 77; }
out="$scratch/disk/out"
set +e
"$plm" train "${run[@]}" output_dir="$out" > "$scratch/full.log" 2>&1
code=$?
set -e
cat "$scratch/full.log"
[ "$code" -eq 1 ] || fail "exit status $code on a full disk, expected 1"
grep -qE "^plm train: .*checkpoint of step 4 not saved .*checkpoints/step-00000004\.tmp-[0-9]+/[^ ]+: .*No space left on device" \
  "$scratch/full.log" || fail "no message naming the step, the file and the full disk"
held=$(find "$out/checkpoints" -mindepth 1 -maxdepth 1 -printf '%f ')
[ "$held" = "step-00000002 " ] || fail "checkpoints/ holds $held, expected step-00000002 only"
[ -e "$out/checkpoints/step-00000002/COMPLETE" ] || fail "the previous checkpoint has no COMPLETE marker"

# Room again (the run's directory copied to a disk with space): it resumes from step 2 to the same weights.
cp -a "$out" "$scratch/resumed"
umount "$scratch/disk"
"$plm" train "${run[@]}" output_dir="$scratch/resumed" > "$scratch/resumed.log" 2>&1 || { cat "$scratch/resumed.log"; fail "resumed run"; }
grep -q "resum.*step-00000002" "$scratch/resumed.log" || { cat "$scratch/resumed.log"; fail "did not resume from step-00000002"; }
cmp "$scratch/resumed/final-hf/model.safetensors" "$scratch/whole/final-hf/model.safetensors" || fail "final weights differ"
echo "plm train disk full: ok (exit 1 with the error above; step-00000002 intact; resumed to the same weights)"
