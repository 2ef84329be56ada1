#!/usr/bin/env python3
"""PyTorch counterpart of the CPU matmul lines of `plm bench kernels` (bench/kernel_bench.cc): times
torch.nn.functional.linear on the same PLM-1B shapes, x (M, 2048) . W (8192, 2048)^T, with f32 and with bf16
tensors (PyTorch's CPU bf16 linear also rounds the activations to bf16; plm keeps them f32 and only the weights
bf16). "cycled" calls rotate through enough weights that each reads DRAM, as a decode step does. Prints the
same columns (ms, GFLOP/s, GB/s).

  .venv-ref/bin/python bench/torch_linear_bench.py [--threads 2] [--quick]
"""

import argparse
import time

import torch
import torch.nn.functional as F

HIDDEN, MLP = 2048, 8192


def seconds_per_call(run, min_seconds):
    """One warm-up call, then repeated calls until min_seconds have passed (as kernel_bench.cc does)."""
    run()
    reps, start = 0, time.perf_counter()
    while True:
        run()
        reps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds or reps >= 10000:
            return elapsed / reps


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smaller prefill, fewer cycled weights")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tokens = 128 if args.quick else 512
    num_weights = 4 if args.quick else 24
    min_seconds = 0.02 if args.quick else 0.3

    mkldnn = torch.backends.mkldnn.is_available()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, mkldnn {mkldnn}")
    print(f"{'kernel':<22} {'shape':<48} {'time_ms':>10} {'GFLOP/s':>10} {'GB/s':>9}")
    for dtype in (torch.float32, torch.bfloat16):
        name = "f32" if dtype == torch.float32 else "bf16"
        size = torch.tensor([], dtype=dtype).element_size()
        weight = torch.full((MLP, HIDDEN), 0.01, dtype=dtype)
        weights = [torch.full((MLP, HIDDEN), 0.01, dtype=dtype) for _ in range(num_weights)]
        cases = []
        for rows in (tokens, 1, 8):
            x = torch.full((rows, HIDDEN), 0.01, dtype=dtype)
            label = "prefill" if rows == tokens else "decode"
            cases.append((f"{name} {label} {rows}x2048 . (8192x2048)^T", rows, lambda x=x: F.linear(x, weight)))
        x1 = torch.full((1, HIDDEN), 0.01, dtype=dtype)
        counter = iter(range(1 << 62))
        cases.append((f"{name} decode 1x2048 . (8192x2048)^T, {num_weights} cycled", 1,
                      lambda: F.linear(x1, weights[next(counter) % num_weights])))
        with torch.inference_mode():
            for shape, rows, run in cases:
                t = seconds_per_call(run, min_seconds)
                flops = 2.0 * rows * HIDDEN * MLP
                moved = size * (MLP * HIDDEN + rows * (HIDDEN + MLP))
                rates = f"{flops / t / 1e9:10.1f} {moved / t / 1e9:9.1f}"
                print(f"{'torch linear':<22} {shape:<48} {t * 1e3:10.3f} {rates}", flush=True)


if __name__ == "__main__":
    main()
