#!/usr/bin/env python3
"""Times HF's PerceptionLM processors on the inputs of the C++ PreprocessBenchTest (tests/data/
preprocess_bench_test.cc), best of a few runs, on this machine's CPU threads: thumb+tile of an image file
(decode included, as a path goes through HF) and decode + preprocessing of 32 video frames.
    .venv-ref/bin/python tools/reference/bench_preprocessing.py [image] [video]
"""

import sys
import time
from pathlib import Path

import torch
from transformers import PerceptionLMImageProcessor, PerceptionLMVideoProcessor

INPUTS = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "preprocessing" / "inputs"
NUM_RUNS = 3


def best_seconds(fn) -> float:
    fn()  # warm-up: imports, first-call caches
    best = float("inf")
    for _ in range(NUM_RUNS):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    image = sys.argv[1] if len(sys.argv) > 1 else str(INPUTS / "large_1800x1200.jpg")
    video = sys.argv[2] if len(sys.argv) > 2 else str(INPUTS / "h264_160x96.mkv")
    print(f"torch threads: {torch.get_num_threads()}")

    ip = PerceptionLMImageProcessor()
    from transformers.image_utils import load_image_as_tensor
    decode = best_seconds(lambda: load_image_as_tensor(image))
    total = best_seconds(lambda: ip(images=image, return_tensors="pt"))
    num_tiles = ip(images=image, return_tensors="pt")["pixel_values"].shape[1]
    print(f"image {Path(image).name}: {num_tiles} tiles, decode {decode * 1e3:.1f} ms, "
          f"decode + thumb+tile {total * 1e3:.1f} ms/image")

    vp = PerceptionLMVideoProcessor()
    run = lambda: vp(videos=video, do_sample_frames=True, num_frames=32, return_tensors="pt")
    seconds = best_seconds(run)
    print(f"video {Path(video).name}: 32 frames in {seconds * 1e3:.1f} ms = {32 / seconds:.1f} frames/s "
          f"(decode + 448x448 preprocessing)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
