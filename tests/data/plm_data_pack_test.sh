#!/bin/sh
# `plm data pack` end to end: a JSONL with text, image and video conversations (media relative to the file)
# packs into a store and reports its counts; a bad line exits 1 naming file:line and leaves no output; a
# missing input and a bad option are errors. Usage: plm_data_pack_test.sh PLM_BINARY MODELS_FIXTURE_DIR
set -u
plm=$1
models=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

fail() {
  echo "FAIL $1"
  failures=$((failures + 1))
}

mkdir "$tmp/media"
cp "$models/inputs/image_150x100.png" "$tmp/media/cat.png"
cp "$models/inputs/video_64x48_4f.mp4" "$tmp/media/clip.mp4"
cat > "$tmp/train.jsonl" <<'JSONL'
{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
{"messages": [{"role": "user", "content": [{"type": "image", "path": "media/cat.png"}, {"type": "text", "text": "What?"}]}, {"role": "assistant", "content": "A cat."}]}
{"messages": [{"role": "user", "content": [{"type": "video", "path": "media/clip.mp4"}, {"type": "text", "text": "And?"}]}, {"role": "assistant", "content": "It moves."}]}
JSONL
out=$("$plm" data pack "$tmp/train.jsonl" "$tmp/train.h5" --model "$models/cls_tied" --num-frames 4 2>/dev/null)
code=$?
echo "$out"
[ $code -eq 0 ] || fail "pack: exit status $code"
case $out in
  *"train.h5: 3 samples"*"4 video frames"*) echo "ok   pack: summary" ;;
  *) fail "pack: summary '$out'" ;;
esac
[ -s "$tmp/train.h5" ] || fail "pack: no store written"
[ -z "$(ls "$tmp" | grep tmp-)" ] || fail "pack: temporary file left"

echo '{"messages": [{"role": "user", "content": "no answer"}]}' >> "$tmp/train.jsonl"
err=$("$plm" data pack "$tmp/train.jsonl" "$tmp/bad.h5" --model "$models/cls_tied" 2>&1 >/dev/null)
code=$?
echo "$err"
[ $code -eq 1 ] || fail "bad line: exit status $code"
case $err in
  *"train.jsonl:4: no assistant turn"*) echo "ok   bad line: message" ;;
  *) fail "bad line: message '$err'" ;;
esac
[ ! -e "$tmp/bad.h5" ] || fail "bad line: output written"

err=$("$plm" data pack "$tmp/none.jsonl" "$tmp/x.h5" --model "$models/cls_tied" 2>&1 >/dev/null)
[ $? -eq 1 ] && case $err in *"none.jsonl: cannot open"*) true ;; *) false ;; esac || fail "missing input: '$err'"
"$plm" data pack "$tmp/train.jsonl" "$tmp/x.h5" --model "$models/cls_tied" --deflate 12 >/dev/null 2>&1
[ $? -eq 2 ] || fail "--deflate 12: not a usage error"

[ $failures -eq 0 ] && echo "all passed"
exit $failures
