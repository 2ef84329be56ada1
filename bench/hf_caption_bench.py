#!/usr/bin/env python3
"""HF transformers counterpart of `plm caption` for bench/compare_caption.sh: the same videos, the same prompt and
chat template (one user turn: the video, then the text), the same frame sampling (num_frames uniformly, HF's
default_sample_indices_fn), greedy decoding with max_new_tokens, in batches of --batch conversations through
processor.apply_chat_template (torchcodec decode + PerceptionLMVideoProcessor) and model.generate (left padding).
Prints the time split (processor vs generate), videos/s and frames/s, one JSON line, and with --plm-output how
many captions equal plm's.

  /work/venv-ref/bin/python bench/hf_caption_bench.py --model DIR --inputs LIST [--num-frames 8]
      [--max-new-tokens 32] [--batch 8] [--prompt TEXT] [--dtype float32] [--threads N] [--plm-output OUT.jsonl]
"""

import argparse
import json
import os
import time

import torch
import transformers
from transformers import AutoProcessor, PerceptionLMForConditionalGeneration

DEFAULT_PROMPT = "Describe this video in detail."  # caption/caption_job.h kDefaultVideoPrompt


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--inputs", required=True, help="text file of video paths")
    p.add_argument("--num-frames", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--prompt", default=DEFAULT_PROMPT)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--plm-output", help="plm caption's output JSONL: count equal captions")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    paths = [line.strip() for line in open(a.inputs) if line.strip()]

    start = time.perf_counter()
    processor = AutoProcessor.from_pretrained(a.model)
    processor.tokenizer.padding_side = "left"
    model = PerceptionLMForConditionalGeneration.from_pretrained(a.model, dtype=getattr(torch, a.dtype)).eval()
    load_s = time.perf_counter() - start

    captions, process_s, generate_s, frames = [], 0.0, 0.0, 0
    run_start = time.perf_counter()
    for b in range(0, len(paths), a.batch):
        batch = paths[b:b + a.batch]
        conversations = [[{"role": "user", "content": [{"type": "video", "url": path},
                                                       {"type": "text", "text": a.prompt}]}] for path in batch]
        t0 = time.perf_counter()
        inputs = processor.apply_chat_template(conversations, add_generation_prompt=True, tokenize=True,
                                               return_dict=True, return_tensors="pt", padding=True,
                                               processor_kwargs={"num_frames": a.num_frames, "do_sample_frames": True})
        t1 = time.perf_counter()
        frames += int(inputs["pixel_values_videos"].shape[0] * inputs["pixel_values_videos"].shape[1])
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=a.max_new_tokens, do_sample=False)
        generate_s += time.perf_counter() - t1
        process_s += t1 - t0
        new = out[:, inputs["input_ids"].shape[1]:]
        captions += processor.batch_decode(new, skip_special_tokens=True)
    wall_s = time.perf_counter() - run_start

    result = {"bench": "hf_caption", "transformers": transformers.__version__, "dtype": a.dtype, "threads": a.threads,
              "videos": len(paths), "frames": frames, "batch": a.batch, "max_new_tokens": a.max_new_tokens,
              "load_s": round(load_s, 3), "wall_s": round(wall_s, 3), "processor_s": round(process_s, 3),
              "generate_s": round(generate_s, 3), "videos_per_s": round(len(paths) / wall_s, 4),
              "frames_per_s": round(frames / wall_s, 3)}
    if a.plm_output:
        plm = {}
        for line in open(a.plm_output):
            r = json.loads(line)
            plm[r["path"]] = r.get("caption")
        result["equal_to_plm"] = sum(plm.get(path) == c for path, c in zip(paths, captions))
    print(f"HF {a.dtype}: {len(paths)} videos ({frames} frames) in {wall_s:.2f} s = {result['videos_per_s']:.3f} "
          f"videos/s, {result['frames_per_s']:.2f} frames/s (processor {process_s:.2f} s, generate {generate_s:.2f} s)"
          + (f"; {result['equal_to_plm']}/{len(paths)} captions equal plm's" if a.plm_output else ""))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
