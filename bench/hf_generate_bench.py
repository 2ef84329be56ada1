#!/usr/bin/env python3
"""HF transformers counterpart of `plm bench generate` (bench/generate_bench.cc): loads the same model directory
with PerceptionLMForConditionalGeneration, builds the same synthetic prompts bit for bit (bench/counter_random.h),
and measures the same stages: vision encode per tile (get_image_features), prefill (one forward over the prompts,
image features given, logits of the last token only, as generate() asks), and greedy decode (generate with
min_new_tokens = max_new_tokens, timed from the first to the last new token by a stopping criterion, i.e.
new_tokens - 1 steps). Prints a table and one JSON line per dtype; --plm-result compares with plm's JSON line.

  .venv-ref/bin/python bench/hf_generate_bench.py --model DIR [--dtype float32 bfloat16] [--prompt-tokens 128]
      [--new-tokens 32] [--batch 1] [--image-tiles 0] [--threads N] [--plm-result plm_output.txt]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch
import transformers
from transformers import PerceptionLMForConditionalGeneration, StoppingCriteria, StoppingCriteriaList

# bench/synthetic_prompts.cc and bench/counter_random.h, mirrored.
FIRST_SPECIAL_TOKEN = 128000
PIXEL_STREAM = 1 << 32
WARMUP_TOKENS = 8
MASK64 = (1 << 64) - 1
DTYPES = {"float32": (torch.float32, "f32"), "bfloat16": (torch.bfloat16, "bf16")}


def mix64(x):
    """splitmix64's output function over np.uint64 arrays or Python ints (wrapping like C++)."""
    if isinstance(x, int):
        x = (x + 0x9E3779B97F4A7C15) & MASK64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
        return x ^ (x >> 31)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def random_bits(seed, stream, count):
    key = mix64(seed ^ mix64(stream))
    with np.errstate(over="ignore"):
        return mix64(np.uint64(key) + np.arange(count, dtype=np.uint64))


def tokens_per_tile(model):
    """spec §2.5: floor(g / k) per side of the g x g patch grid after pooling by k (g when k <= 1)."""
    grid = model.model.vision_tower.timm_model.patch_embed.grid_size[0]
    k = model.config.projector_pooling_ratio
    side = grid // k if k > 1 else grid
    return side * side


def make_prompts(model, args):
    """(input_ids (B, L), pixel_values (B, tiles, 3, img, img) or None), as plm's make_prompts()."""
    text_vocab = min(model.config.text_config.vocab_size, FIRST_SPECIAL_TOKEN)
    placeholders = args.image_tiles * tokens_per_tile(model)
    rows = []
    for b in range(args.batch):
        text = (random_bits(args.seed, b, args.prompt_tokens) % np.uint64(text_vocab)).astype(np.int64)
        rows.append(np.concatenate([np.full(placeholders, model.config.image_token_id, dtype=np.int64), text]))
    input_ids = torch.from_numpy(np.stack(rows))
    if args.image_tiles == 0:
        return input_ids, None
    img = model.model.vision_tower.timm_model.patch_embed.img_size[0]
    pixels = []
    for b in range(args.batch):
        bits = random_bits(args.seed, PIXEL_STREAM + b, args.image_tiles * 3 * img * img)
        uniform = (bits >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / 16777216.0)
        pixels.append((2.0 * uniform - 1.0).reshape(args.image_tiles, 3, img, img))
    return input_ids, torch.from_numpy(np.stack(pixels)).to(model.dtype)


class TokenClock(StoppingCriteria):
    """Called after every new token: the first call ends the prefill, the last one the decode."""

    def __init__(self):
        self.times, self.cpu_times = [], []

    def __call__(self, input_ids, scores, **kwargs):
        self.times.append(time.perf_counter())
        self.cpu_times.append(time.process_time())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool)


def greedy(model, input_ids, pixel_values, new_tokens, clock=None):
    media = {} if pixel_values is None else {"pixel_values": pixel_values}  # generate() rejects pixel_values=None
    return model.generate(
        input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **media,
        max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
        pad_token_id=model.config.text_config.eos_token_id[0],
        stopping_criteria=StoppingCriteriaList([clock] if clock else []))


def fastest(best, run):
    """The (wall, cpu) pair of the faster run."""
    return run if run[0] < best[0] else best


def run_one(args, dtype_name):
    torch_dtype, short = DTYPES[dtype_name]
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model = PerceptionLMForConditionalGeneration.from_pretrained(args.model, dtype=torch_dtype).eval()
    load_s = time.perf_counter() - start
    input_ids, pixel_values = make_prompts(model, args)
    length = input_ids.shape[1]
    with torch.inference_mode():
        text_start = length - args.prompt_tokens
        greedy(model, input_ids[:1, text_start:text_start + min(WARMUP_TOKENS, args.prompt_tokens)], None, 2)

        # Each stage runs args.repeats times and the fastest run counts, as plm bench generate --repeats does.
        vision_s, vision_cpu_s, mm = float("inf"), 0.0, None
        for _ in range(args.repeats if pixel_values is not None else 0):
            start, cpu_start = time.perf_counter(), time.process_time()
            mm = {"image": model.model.get_image_features(pixel_values=pixel_values, return_dict=True)}
            vision_s, vision_cpu_s = fastest((vision_s, vision_cpu_s), (time.perf_counter() - start,
                                                                          time.process_time() - cpu_start))
        if mm is None:
            vision_s = 0.0

        prefill_s, prefill_cpu_s = float("inf"), 0.0
        for _ in range(args.repeats):
            start, cpu_start = time.perf_counter(), time.process_time()
            model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), mm_encoder_outputs=mm,
                  use_cache=True, logits_to_keep=1)
            prefill_s, prefill_cpu_s = fastest((prefill_s, prefill_cpu_s), (time.perf_counter() - start,
                                                                              time.process_time() - cpu_start))

        first_token_s, first_token_cpu_s, decode_s, decode_cpu_s = float("inf"), 0.0, float("inf"), 0.0
        for _ in range(args.repeats):
            clock = TokenClock()
            start, cpu_start = time.perf_counter(), time.process_time()
            out = greedy(model, input_ids, pixel_values, args.new_tokens, clock)
            first_token_s, first_token_cpu_s = fastest((first_token_s, first_token_cpu_s),
                                                       (clock.times[0] - start, clock.cpu_times[0] - cpu_start))
            decode_s, decode_cpu_s = fastest((decode_s, decode_cpu_s), (clock.times[-1] - clock.times[0],
                                                                          clock.cpu_times[-1] - clock.cpu_times[0]))

    tiles = args.batch * args.image_tiles
    prefill_tokens, decode_tokens = args.batch * length, args.batch * (args.new_tokens - 1)
    print(f"hf_generate_bench: {args.model}")
    print(f"transformers {transformers.__version__}, torch {torch.__version__} ({short} weights, "
          f"{torch.get_num_threads()} threads), batch {args.batch}, prompt {args.prompt_tokens} text + "
          f"{length - args.prompt_tokens} image tokens, {args.new_tokens} new tokens (greedy)")
    print(f"{'stage':<12} {'work':<28} {'time_s':>10} {'cpu_s':>10} {'rate':>12}")
    print(f"{'load':<12} {str(model.num_parameters()) + ' parameters':<28} {load_s:10.3f}")
    if tiles:
        print(f"{'vision':<12} {str(tiles) + ' tiles':<28} {vision_s:10.3f} {vision_cpu_s:10.3f} "
              f"{1e3 * vision_s / tiles:9.1f} ms/tile")
    print(f"{'prefill':<12} {str(prefill_tokens) + ' tokens':<28} {prefill_s:10.3f} {prefill_cpu_s:10.3f} "
          f"{prefill_tokens / prefill_s:9.1f} tok/s")
    print(f"{'first token':<12} {'generate: media + prefill':<28} {first_token_s:10.3f} {first_token_cpu_s:10.3f}")
    print(f"{'decode':<12} {str(decode_tokens) + ' tokens':<28} {decode_s:10.3f} {decode_cpu_s:10.3f} "
          f"{decode_tokens / decode_s:9.2f} tok/s")
    line = {
        "bench": "generate", "impl": "hf", "model": args.model, "device": "cpu", "dtype": short,
        "threads": torch.get_num_threads(), "batch": args.batch, "prompt_tokens": args.prompt_tokens,
        "image_tiles": args.image_tiles, "prompt_length": length, "new_tokens": args.new_tokens, "seed": args.seed,
        "repeats": args.repeats,
        "load_s": load_s, "vision_ms_per_tile": 1e3 * vision_s / tiles if tiles else 0.0, "prefill_s": prefill_s,
        "prefill_tok_s": prefill_tokens / prefill_s, "first_token_s": first_token_s, "decode_s": decode_s,
        "decode_tok_s": decode_tokens / decode_s, "vision_cpu_s": vision_cpu_s, "prefill_cpu_s": prefill_cpu_s,
        "first_token_cpu_s": first_token_cpu_s, "decode_cpu_s": decode_cpu_s,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux reports KiB
        "tokens": out[0, length:].tolist(),
    }
    print(json.dumps(line), flush=True)
    return line


def result_lines(text):
    """The JSON lines of plm's or this script's output."""
    lines = (json.loads(l) for l in text.splitlines() if l.startswith("{"))
    return [l for l in lines if l.get("bench") == "generate"]


def compare(plm, hf_lines):
    """plm / HF ratios of the rates (above 1: plm is faster) and how many leading greedy tokens agree."""
    print(f"\nplm ({plm['dtype']}) against HF, batch {plm['batch']}, prompt {plm['prompt_length']}, "
          f"{plm['new_tokens']} new tokens")
    print(f"{'HF dtype':<9} {'prefill x':>10} {'decode x':>10} {'vision x':>10} {'1st tok x':>10} {'same tokens':>12}")
    for hf in hf_lines:
        vision = hf["vision_ms_per_tile"] / plm["vision_ms_per_tile"] if plm["vision_ms_per_tile"] else float("nan")
        same = next((i for i, (a, b) in enumerate(zip(plm["tokens"], hf["tokens"])) if a != b), len(plm["tokens"]))
        print(f"{hf['dtype']:<9} {plm['prefill_tok_s'] / hf['prefill_tok_s']:10.2f} "
              f"{plm['decode_tok_s'] / hf['decode_tok_s']:10.2f} {vision:10.2f} "
              f"{hf['first_token_s'] / plm['first_token_s']:10.2f} {same:>5}/{len(plm['tokens'])}")
        if "prefill_cpu_s" in plm and "prefill_cpu_s" in hf:  # HF / plm process CPU time per stage
            cpu = {k: hf[k] / plm[k] if plm[k] else float("nan")
                   for k in ("prefill_cpu_s", "decode_cpu_s", "vision_cpu_s", "first_token_cpu_s")}
            print(f"{'  by CPU':<9} {cpu['prefill_cpu_s']:10.2f} {cpu['decode_cpu_s']:10.2f} "
                  f"{cpu['vision_cpu_s']:10.2f}   first token {cpu['first_token_cpu_s']:.2f}")


def child_command(args, dtype):
    return [sys.executable, os.path.abspath(__file__), "--model", args.model, "--dtype", dtype,
            "--prompt-tokens", str(args.prompt_tokens), "--new-tokens", str(args.new_tokens),
            "--batch", str(args.batch), "--image-tiles", str(args.image_tiles), "--seed", str(args.seed),
            "--threads", str(args.threads), "--repeats", str(args.repeats)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--dtype", nargs="+", choices=sorted(DTYPES), default=["float32", "bfloat16"])
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--image-tiles", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each stage; the fastest is reported")
    # plm uses OpenMP's default: one thread per core this process may run on.
    default_threads = int(os.environ.get("OMP_NUM_THREADS", len(os.sched_getaffinity(0))))
    parser.add_argument("--threads", type=int, default=default_threads)
    parser.add_argument("--plm-result", help="a file holding plm bench generate's output, to print the ratios")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    transformers.utils.logging.disable_progress_bar()
    if args.new_tokens < 2:
        parser.error("--new-tokens must be >= 2")

    if len(args.dtype) == 1:
        lines = [run_one(args, args.dtype[0])]
    else:  # one process per dtype, so that each has its own memory peak and allocator state
        lines = []
        for dtype in args.dtype:
            text = subprocess.run(child_command(args, dtype), check=True, stdout=subprocess.PIPE, text=True).stdout
            print(text, end="", flush=True)
            lines += result_lines(text)
    if args.plm_result:
        with open(args.plm_result) as f:
            plm = result_lines(f.read())
        if not plm:
            sys.exit(f"{args.plm_result}: no plm bench generate JSON line")
        compare(plm[0], lines)


if __name__ == "__main__":
    main()
