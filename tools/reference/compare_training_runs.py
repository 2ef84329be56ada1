#!/usr/bin/env python3
"""Distance between two sets of training runs written by make_training_fixtures.py (e.g. a float64 or
reordered-summation variant written with --out versus the fp32 fixtures, or a trainer's output converted to the same
files). For every run both folders hold, prints the largest relative difference over the steps of the loss and of
grad_norm, and for every safetensors file both runs hold (final weights, step gradients, adapters, merged targets) the
largest and worst tensors by max |a - b| / max |b| (a 128256-row table's `.values` and `.row_norms` count as tensors of
their own; its `.rows` must be equal). B is the reference. Run from the repository root:
    .venv-ref/bin/python tools/reference/compare_training_runs.py /tmp/runs_f64 tests/fixtures/training/runs
"""

import argparse
import json
import math
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file


def relative(a: float, b: float) -> float:
    """|a - b| / |b|; 0 when both are 0 (e.g. grad_norm of a step where nothing trainable is used)."""
    if a == b:
        return 0.0
    return abs(a - b) / abs(b) if b != 0 else math.inf


def step_differences(a: Path, b: Path) -> dict[str, tuple[float, int]]:
    """Per metric: the largest relative difference over the steps and the (1-based) step where it occurs."""
    steps_a = json.loads((a / "metrics.json").read_text())["steps"]
    steps_b = json.loads((b / "metrics.json").read_text())["steps"]
    if len(steps_a) != len(steps_b):
        raise SystemExit(f"{a.name}: {len(steps_a)} steps vs {len(steps_b)}")
    out = {}
    for key in ("loss", "grad_norm"):
        diffs = [relative(x[key], y[key]) for x, y in zip(steps_a, steps_b)]
        worst = int(np.argmax(diffs))
        out[key] = (diffs[worst], steps_b[worst]["step"])
    return out


def tensor_differences(a: Path, b: Path) -> list[tuple[float, str]]:
    """(max |a - b| / max |b|, name) of every tensor of two safetensors files, worst first."""
    ta, tb = load_file(str(a)), load_file(str(b))
    if ta.keys() != tb.keys():
        raise SystemExit(f"{a} and {b} hold different tensors: {sorted(ta.keys() ^ tb.keys())}")
    out = []
    for name, ref in tb.items():
        if ta[name].shape != ref.shape:
            raise SystemExit(f"{a}: {name} has shape {ta[name].shape}, {b} {ref.shape}")
        if name.endswith(".rows"):
            if not np.array_equal(ta[name], ref):
                raise SystemExit(f"{a}: {name} lists other rows than {b}")
            continue
        x, y = ta[name].astype(np.float64), ref.astype(np.float64)
        scale = np.abs(y).max()
        diff = np.abs(x - y).max()
        out.append((0.0 if diff == 0 else diff / scale if scale > 0 else math.inf, name))
    return sorted(out, reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path, help="folder of runs (one subfolder with metrics.json per run)")
    parser.add_argument("b", type=Path, help="the reference folder of runs")
    parser.add_argument("--worst", type=int, default=3, help="tensors listed per file")
    args = parser.parse_args()

    runs = sorted(d.name for d in args.b.iterdir() if (d / "metrics.json").is_file() and
                  (args.a / d.name / "metrics.json").is_file())
    if not runs:
        raise SystemExit(f"no run is in both {args.a} and {args.b}")
    summary = []
    for run in runs:
        a, b = args.a / run, args.b / run
        steps = step_differences(a, b)
        print(f"== {run}: loss {steps['loss'][0]:.2e} (step {steps['loss'][1]}), "
              f"grad_norm {steps['grad_norm'][0]:.2e} (step {steps['grad_norm'][1]})")
        final = None
        for file in sorted(p.relative_to(b) for p in b.rglob("*.safetensors")):
            if not (a / file).is_file():
                continue
            diffs = tensor_differences(a / file, b / file)
            listed = ", ".join(f"{d:.2e} {name}" for d, name in diffs[:args.worst])
            print(f"   {file}: {listed}")
            is_final = file.name == "final.safetensors" or file.parent.name == "final_adapter"
            if is_final:
                final = diffs[0] if final is None else max(final, diffs[0])
        summary.append((run, steps, final))

    print("\n| run | loss | grad_norm | final weights (worst tensor) |\n|---|---|---|---|")
    for run, steps, final in summary:
        weights = "-" if final is None else "identical" if final[0] == 0 else f"{final[0]:.1e} (`{final[1]}`)"
        print(f"| `{run}` | {steps['loss'][0]:.1e} | {steps['grad_norm'][0]:.1e} | {weights} |")


if __name__ == "__main__":
    main()
