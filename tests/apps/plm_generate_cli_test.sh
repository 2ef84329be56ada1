#!/bin/sh
# `plm generate` checks that need more than one run, a computed expectation or a made input, each against
# the ids HF transformers generated (greedy, 32 tokens) or against another front door of the CLI.
# Usage: plm_generate_cli_test.sh CASE PLM_BINARY MODELS_DIR "HF_IMAGE_IDS" "HF_VIDEO_IDS"
#   CASE: stop | sampling | fps | system | images | tile_mismatch
set -u
case_name=$1
plm=$2
models=$3
hf_image_ids=$4
hf_video_ids=$5
image=$models/inputs/image_150x100.png
video=$models/inputs/video_64x48_4f.mp4
tmp=$(mktemp -d "${TEST_TMPDIR:-${TMPDIR:-/tmp}}/plm_generate_cli.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
failures=0

pass() { echo "ok   $1"; }
fail() { echo "FAIL $1"; failures=$((failures + 1)); }
check_equal() {  # NAME EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: expected '$2', got '$3'"; fi
}
check_differ() {  # NAME A B
  if [ "$2" != "$3" ]; then pass "$1"; else fail "$1: both are '$2'"; fi
}

# generate ARGS...: $ids = what plm generate ARGS... --output-ids prints (32 new tokens); a failed run ends
# the test (not in a subshell, so that `exit` does).
generate() {
  ids=$("$plm" generate --max-new-tokens 32 --output-ids "$@") || { echo "FAIL plm generate $*: exit status $?"; exit 1; }
}

# The text of ids as `plm generate` prints it: special tokens (Llama 3: ids from 128000) skipped.
decode_text() {  # MODEL "IDS"
  printf '%s\n' $2 | awk '$1 < 128000' | "$plm" tokenize --tokenizer "$1" --decode
}

# The image prompt HF's ids were generated for.
image_args="--model $models/cls_tied --image $image --prompt"
image_prompt="Describe this image."

case $case_name in
  stop)
    # The stop text first appears inside the greedy reply: the text output is HF's reply cut there, and
    # generation ends with the token that completes it (the 21st: the first 1514).
    stop=$(decode_text "$models/cls_tied" "$(echo "$hf_image_ids" | cut -d' ' -f21)")
    full=$(decode_text "$models/cls_tied" "$hf_image_ids")
    before=$(decode_text "$models/cls_tied" "$(echo "$hf_image_ids" | cut -d' ' -f1-20)")
    case $before in *"$stop"*) fail "the stop text '$stop' is already in the first 20 tokens"; exit 1 ;; esac
    text=$("$plm" generate $image_args "$image_prompt" --max-new-tokens 32 --stop "$stop") || fail "exit status $?"
    check_equal "text output cut at --stop" "${full%%"$stop"*}" "$text"
    generate $image_args "$image_prompt" --stop "$stop"
    check_equal "generation ends at the stop text" "$(echo "$hf_image_ids" | cut -d' ' -f1-21)" "$ids"
    ;;
  sampling)
    sample="--temperature 1.5 --top-k 40 --top-p 0.95"
    generate $image_args "$image_prompt" $sample --seed 7; first=$ids
    generate $image_args "$image_prompt" $sample --seed 7; again=$ids
    generate $image_args "$image_prompt" $sample --seed 8; other=$ids
    check_equal "the same seed gives the same tokens" "$first" "$again"
    check_differ "another seed gives other tokens" "$first" "$other"
    check_differ "sampling is not greedy" "$hf_image_ids" "$first"
    check_equal "32 tokens" 32 "$(echo "$first" | wc -w)"
    ;;
  fps)
    # The 4-frame fixture runs at 4 fps (HF: n = int(N / fps_video * fps)): --fps 4 takes every frame (HF's ids
    # for 4 frames), --fps 2 takes frames 0 and 2 as --num-frames 2 does, --fps 10 asks for 10 of 4 frames.
    video_args="--model $models/cls_tied --video $video --prompt"
    video_prompt="What is happening in this video?"
    generate $video_args "$video_prompt" --fps 4
    check_equal "--fps 4 = HF's 4 frames" "$hf_video_ids" "$ids"
    generate $video_args "$video_prompt" --fps 2; two_by_fps=$ids
    generate $video_args "$video_prompt" --num-frames 2
    check_equal "--fps 2 = --num-frames 2" "$ids" "$two_by_fps"
    check_differ "--fps 2 sees fewer frames than --fps 4" "$hf_video_ids" "$two_by_fps"
    err=$("$plm" generate $video_args "$video_prompt" --fps 10 2>&1 >/dev/null)
    check_equal "--fps 10: exit status" 1 $?
    case $err in
      *"$video: cannot sample 10 frames from a video of 4 frames"*) pass "--fps 10: message" ;;
      *) fail "--fps 10: message '$err'" ;;
    esac
    ;;
  system)
    # HF's ids came with PLM's default system message: giving it explicitly changes nothing, another one
    # changes the reply.
    default_system="You are a helpful language and vision assistant. You are able to understand the visual content that the user provides, and assist the user with a variety of tasks using natural language."
    generate $image_args "$image_prompt" --system "$default_system"
    check_equal "--system with PLM's default" "$hf_image_ids" "$ids"
    generate $image_args "$image_prompt" --system "You are a terse assistant."
    check_differ "--system with another message" "$hf_image_ids" "$ids"
    ;;
  images)
    # Two --image flags make the conversation that a messages file with the two images in that order makes.
    second=$(dirname "$models")/preprocessing/inputs/palette_200x150.png
    [ -f "$second" ] || { fail "no $second"; exit 1; }
    for order in "$image $second" "$second $image"; do
      set -- $order
      printf '[{"role":"user","content":[{"type":"image","url":"%s"},{"type":"image","url":"%s"},{"type":"text","text":"%s"}]}]' \
        "$1" "$2" "$image_prompt" > "$tmp/$(basename "$1")_first.json"
    done
    generate --model "$models/cls_tied" --image "$image" --image "$second" --prompt "$image_prompt"; flags=$ids
    generate --model "$models/cls_tied" --messages "$tmp/$(basename "$image")_first.json"
    check_equal "--image A --image B = messages [A, B]" "$ids" "$flags"
    generate --model "$models/cls_tied" --messages "$tmp/$(basename "$second")_first.json"
    check_differ "--image A --image B != messages [B, A]" "$ids" "$flags"
    check_differ "two images != one image" "$hf_image_ids" "$flags"
    ;;
  tile_mismatch)
    # A processor whose tile size is not the vision tower's image size: exit status 1 naming both numbers.
    mkdir "$tmp/model"
    for f in "$models"/cls_tied/*; do ln -s "$(readlink -f "$f")" "$tmp/model/$(basename "$f")"; done
    rm "$tmp/model/processor_config.json"
    sed 's/"tile_size": 56/"tile_size": 28/' "$models/cls_tied/processor_config.json" > "$tmp/model/processor_config.json"
    grep -q '"tile_size": 28' "$tmp/model/processor_config.json" || { fail "no tile_size 56 to change"; exit 1; }
    err=$("$plm" generate --model "$tmp/model" --image "$image" --prompt hi 2>&1 >/dev/null)
    check_equal "exit status" 1 $?
    case $err in
      *"$tmp/model: the processor's tile_size (28) differs from the vision tower's img_size (56)"*) pass "message" ;;
      *) fail "message '$err'" ;;
    esac
    ;;
  *)
    echo "unknown case $case_name"
    exit 2
    ;;
esac
[ $failures -eq 0 ]
