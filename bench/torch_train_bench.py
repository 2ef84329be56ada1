#!/usr/bin/env python3
"""PyTorch eager counterpart of `plm bench train` (bench/train_bench.cc): loads the same model directory with
PerceptionLMForConditionalGeneration in f32, builds the same synthetic sequences bit for bit (bench/synthetic_prompts.cc
via hf_generate_bench.make_prompts), labels every next token but image placeholders, and times the same step:
zero_grad, forward with labels (mean cross-entropy over the labelled tokens), backward, clip_grad_norm_(1.0),
AdamW (lr 1e-5, betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on parameters with >= 2 dims). One warm-up step,
then --steps timed ones. Variants: float32, and bfloat16 autocast (f32 weights, grads and optimizer state; matmuls
in bf16). Prints a table and one JSON line per variant; --plm-result prints the plm / PyTorch ratios.

  /work/venv-ref/bin/python bench/torch_train_bench.py --model DIR [--dtype float32 bfloat16] [--batch 1]
      [--seq-len 512] [--image-tiles 0] [--steps 3] [--threads N] [--plm-result plm_output.txt]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from types import SimpleNamespace

import torch
import transformers
from transformers import PerceptionLMForConditionalGeneration

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_generate_bench import make_prompts, tokens_per_tile  # noqa: E402  (the shared synthetic prompts)

# bench/train_bench.cc's step settings, mirrored.
LR, BETAS, EPS, WEIGHT_DECAY, GRAD_CLIP = 1e-5, (0.9, 0.95), 1e-8, 0.1, 1.0
VARIANTS = {"float32": "f32", "bfloat16": "bf16-autocast"}
MIB = 1024 * 1024


def make_batch(model, args):
    """(input_ids (B, L), labels (B, L), pixel_values (B, tiles, 3, img, img) or None), as plm's make_batch()."""
    placeholders = args.image_tiles * tokens_per_tile(model)
    prompt_args = SimpleNamespace(batch=args.batch, prompt_tokens=args.seq_len - placeholders,
                                  image_tiles=args.image_tiles, seed=args.seed)
    input_ids, pixel_values = make_prompts(model, prompt_args)
    labels = input_ids.clone()
    labels[input_ids == model.config.image_token_id] = -100  # HF shifts: position j predicts labels[j + 1]
    return input_ids, labels, pixel_values


def make_optimizer(model):
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                              {"params": no_decay, "weight_decay": 0.0}], lr=LR, betas=BETAS, eps=EPS)


def train_step(model, optimizer, batch, autocast):
    input_ids, labels, pixel_values = batch
    media = {} if pixel_values is None else {"pixel_values": pixel_values}
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), labels=labels, **media).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
    optimizer.step()
    return loss.item()


def run_one(args, variant):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = PerceptionLMForConditionalGeneration.from_pretrained(args.model, dtype=torch.float32).train()
    optimizer = make_optimizer(model)
    batch = make_batch(model, args)
    autocast = variant == "bfloat16"
    first_loss = train_step(model, optimizer, batch, autocast)
    seconds, cpu_seconds = [], []
    for _ in range(args.steps):
        start, cpu_start = time.perf_counter(), time.process_time()
        train_step(model, optimizer, batch, autocast)
        cpu_seconds.append(time.process_time() - cpu_start)
        seconds.append(time.perf_counter() - start)

    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    text, vision = model.config.text_config, model.config.vision_config
    tokens = args.batch * args.seq_len
    mean_s, min_s, cpu_s = sum(seconds) / len(seconds), min(seconds), sum(cpu_seconds) / len(cpu_seconds)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    state_mib = 16 * params / MIB  # f32 weights, grads and AdamW's two moments (no separate master copy)
    print(f"torch_train_bench: {args.model} ({text.num_hidden_layers} text layers, "
          f"{vision.model_args['depth']} vision blocks)")
    print(f"transformers {transformers.__version__}, torch {torch.__version__} ({VARIANTS[variant]}, "
          f"{torch.get_num_threads()} threads), batch {args.batch} x {args.seq_len} tokens "
          f"({args.image_tiles * tokens_per_tile(model)} image placeholders each), {params} trainable parameters")
    print(f"{'loss (step 1)':<22} {first_loss:12.6f}")
    print(f"{'step':<22} {1e3 * mean_s:12.1f} ms (min {1e3 * min_s:.1f}, {len(seconds)} steps; CPU {1e3 * cpu_s:.1f} ms)")
    print(f"{'throughput':<22} {tokens / mean_s:12.1f} tok/s")
    print(f"{'peak RSS':<22} {rss_mib:12.1f} MiB (weights + grads + 2 moments: {state_mib:.1f} MiB)")
    line = {
        "bench": "train", "impl": "torch", "model": args.model, "dtype": VARIANTS[variant],
        "threads": torch.get_num_threads(), "text_layers": text.num_hidden_layers,
        "vision_blocks": vision.model_args["depth"], "batch": args.batch, "seq_len": args.seq_len,
        "image_tiles": args.image_tiles, "seed": args.seed, "parameters": params, "loss_step1": first_loss,
        "steps": len(seconds), "step_ms": 1e3 * mean_s, "step_ms_min": 1e3 * min_s,
        "step_cpu_ms": 1e3 * cpu_s, "tokens_per_s": tokens / mean_s,
        "peak_rss_mib": rss_mib, "state_mib": state_mib,
    }
    print(json.dumps(line), flush=True)
    return line


def result_lines(text):
    """The JSON lines of plm's or this script's output."""
    lines = (json.loads(l) for l in text.splitlines() if l.startswith("{"))
    return [l for l in lines if l.get("bench") == "train"]


def compare(plm, torch_lines):
    """plm / PyTorch: speed ratios by wall and by CPU time (above 1: plm is faster), memory ratio, step-1 loss."""
    print(f"\nplm ({plm['dtype']}, recompute {plm['recompute']}) against PyTorch eager, batch {plm['batch']} x "
          f"{plm['seq_len']} tokens, {plm['image_tiles']} tile(s) per sequence, {plm['threads']} thread(s)")
    print(f"{'PyTorch':<14} {'speed x':>8} {'plm ms':>10} {'torch ms':>10} {'CPU x':>7} {'plm CPU':>10} "
          f"{'torch CPU':>10} {'RSS x':>7} {'loss diff':>10}")
    for t in torch_lines:
        print(f"{t['dtype']:<14} {t['step_ms'] / plm['step_ms']:8.2f} {plm['step_ms']:10.1f} {t['step_ms']:10.1f} "
              f"{t['step_cpu_ms'] / plm['step_cpu_ms']:7.2f} {plm['step_cpu_ms']:10.1f} {t['step_cpu_ms']:10.1f} "
              f"{plm['peak_rss_mib'] / t['peak_rss_mib']:7.2f} {plm['loss_step1'] - t['loss_step1']:10.2e}")


def child_command(args, variant):
    return [sys.executable, os.path.abspath(__file__), "--model", args.model, "--dtype", variant,
            "--batch", str(args.batch), "--seq-len", str(args.seq_len), "--image-tiles", str(args.image_tiles),
            "--steps", str(args.steps), "--seed", str(args.seed), "--threads", str(args.threads)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--dtype", nargs="+", choices=sorted(VARIANTS), default=["float32", "bfloat16"])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--image-tiles", type=int, default=0)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    # plm uses OpenMP's default: one thread per core this process may run on.
    default_threads = int(os.environ.get("OMP_NUM_THREADS", len(os.sched_getaffinity(0))))
    parser.add_argument("--threads", type=int, default=default_threads)
    parser.add_argument("--plm-result", help="a file holding plm bench train's output, to print the ratios")
    args = parser.parse_args()
    transformers.utils.logging.disable_progress_bar()
    if args.steps < 1 or args.batch < 1:
        parser.error("--steps and --batch must be >= 1")

    if len(args.dtype) == 1:
        lines = [run_one(args, args.dtype[0])]
    else:  # one process per variant, so that each has its own memory peak and allocator state
        lines = []
        for variant in args.dtype:
            text = subprocess.run(child_command(args, variant), check=True, stdout=subprocess.PIPE, text=True).stdout
            print(text, end="", flush=True)
            lines += result_lines(text)
    if args.plm_result:
        with open(args.plm_result) as f:
            plm = result_lines(f.read())
        if not plm:
            sys.exit(f"{args.plm_result}: no plm bench train JSON line")
        compare(plm[0], lines)


if __name__ == "__main__":
    main()
