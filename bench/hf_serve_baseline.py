#!/usr/bin/env python3
"""HF transformers counterpart of `plm bench serve` (bench/serve_bench.cc) for bench/compare_serve.sh: the same
chat request (the user text, optionally with an image), answered R times by PerceptionLMForConditionalGeneration
`generate` in batches of C (the concurrency: HF's offline way to serve C clients at once), greedy, at most N new
tokens each, stopping at the model's EOS ids like the server. Prints requests/s and output tokens/s per dtype and
one JSON line each; --plm-result (the JSON line of `plm bench serve`) adds the plm / HF ratios.

  python bench/hf_serve_baseline.py --model DIR [--prompt TEXT] [--image F] [--concurrency C] [--requests R]
      [--max-tokens N] [--dtype float32 bfloat16] [--threads T] [--plm-result FILE]
"""

import argparse
import json
import math
import time

import torch
from PIL import Image
from transformers import AutoProcessor, PerceptionLMForConditionalGeneration

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def last_json_line(path):
    with open(path) as f:
        lines = [l for l in f.read().splitlines() if l.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--prompt", default="Describe what you see in detail.")  # plm bench serve's default
    p.add_argument("--image")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--requests", type=int, default=64)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--dtype", nargs="+", default=["float32", "bfloat16"], choices=list(DTYPES))
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    p.add_argument("--plm-result")
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)

    processor = AutoProcessor.from_pretrained(a.model)
    content = ([{"type": "image"}] if a.image else []) + [{"type": "text", "text": a.prompt}]
    text = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
    images = [Image.open(a.image).convert("RGB")] if a.image else None
    plm = last_json_line(a.plm_result) if a.plm_result else None
    for name in a.dtype:
        model = PerceptionLMForConditionalGeneration.from_pretrained(a.model, dtype=DTYPES[name]).eval()
        eos = model.generation_config.eos_token_id
        batches = [min(a.concurrency, a.requests - b * a.concurrency) for b in range(math.ceil(a.requests / a.concurrency))]
        with torch.inference_mode():  # warm-up (first-call allocations and kernel selection), not timed
            warm = processor(text=[text], images=images, return_tensors="pt")
            if "pixel_values" in warm:
                warm["pixel_values"] = warm["pixel_values"].to(DTYPES[name])
            model.generate(**warm, max_new_tokens=2, do_sample=False)
        tokens = 0
        start = time.perf_counter()
        with torch.inference_mode():
            for size in batches:
                inputs = processor(text=[text] * size, images=images * size if images else None, return_tensors="pt")
                if "pixel_values" in inputs:
                    inputs["pixel_values"] = inputs["pixel_values"].to(DTYPES[name])
                out = model.generate(**inputs, max_new_tokens=a.max_tokens, do_sample=False, eos_token_id=eos)
                new = out[:, inputs["input_ids"].shape[1]:]
                eos_ids = set(eos if isinstance(eos, list) else [eos])
                for row in new.tolist():
                    n = len(row)
                    for i, t in enumerate(row):
                        if t in eos_ids:
                            n = i  # the server does not count the EOS token either
                            break
                    tokens += n
        wall = time.perf_counter() - start
        line = {"impl": "hf", "dtype": name, "concurrency": a.concurrency, "requests": a.requests, "wall_s": wall,
                "requests_per_s": a.requests / wall, "output_tokens_per_s": tokens / wall, "output_tokens": tokens}
        if plm:
            line["plm_over_hf_output_tokens_per_s"] = plm["output_tokens_per_s"] / line["output_tokens_per_s"]
            line["plm_over_hf_requests_per_s"] = plm["requests_per_s"] / line["requests_per_s"]
        print(f"HF {name}: {a.requests} requests in batches of {a.concurrency}: {wall:.2f} s, "
              f"{line['requests_per_s']:.2f} requests/s, {line['output_tokens_per_s']:.1f} output tokens/s"
              + (f", plm / HF = {line['plm_over_hf_output_tokens_per_s']:.2f}x" if plm else ""))
        print(json.dumps(line), flush=True)
        del model


if __name__ == "__main__":
    main()
