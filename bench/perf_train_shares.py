#!/usr/bin/env python3
"""Shares of a `plm bench train` step by kind of work, from a perf profile with DWARF call graphs.

    OMP_NUM_THREADS=1 perf record --call-graph dwarf,32768 -F 37 -o train.perf \
        build/apps/plm bench train --model DIR ... --steps 1
    perf script -i train.perf | bench/perf_train_shares.py

Each sample goes to the first category whose pattern occurs anywhere in its call chain; model loading, the
optimizer's set-up and the teardown are left out, so the shares are of the warm-up and timed steps. DWARF
unwinding is needed: neither plm (-O3) nor OpenBLAS keeps frame pointers, so a plain `perf record -g` loses the
caller of every GEMM.
"""
import collections
import re
import sys

SETUP = re.compile(r"DataParallelStep::DataParallelStep|ShardedAdamW::ShardedAdamW|PlmModel::load|WeightLoader|"
                   r"FlatParameters::FlatParameters|~PlmModel|~DataParallelStep|~ShardedAdamW|~FlatParameters|"
                   r"_dl_|exit_mmap|__run_exit_handlers")
GEMM = re.compile(r"sgemm|cblas_|gemm_bf16")
CATEGORIES = [
    ("attention backward", re.compile(r"cpu::attention_backward")),
    ("attention forward", re.compile(r"cpu::attention_forward|cpu::\(anonymous namespace\)::attend")),
    ("optimizer (AdamW, grad norm)", re.compile(r"adamw|ShardedAdamW::step|sum_squares")),
    ("LM head GEMMs", None),  # a GEMM under linear_cross_entropy
    ("other GEMMs (linear layers)", GEMM),
    ("cross-entropy element-wise", re.compile(r"cross_entropy")),
    ("norms", re.compile(r"layernorm|rmsnorm")),
    ("activations", re.compile(r"gelu|swiglu")),
    ("rope", re.compile(r"rope")),
    ("embedding, copies, fills", re.compile(r"embedding|copy_tensor|cpu::fill|cpu::cast|cpu::add|mem(cpy|move|set)")),
    # Kernel stacks whose user caller the unwinder lost: mostly freeing the model's buffers at exit.
    ("page faults and munmap (kernel)", re.compile(r"clear_page|unmap_page_range|free_pages|folios_put")),
]


def classify(chain):
    if SETUP.search(chain):
        return None
    for name, pattern in CATEGORIES:
        if pattern is None:
            if GEMM.search(chain) and "linear_cross_entropy" in chain:
                return name
        elif pattern.search(chain):
            return name
    return "other"


def main():
    counts = collections.Counter()
    skipped = 0
    frames = []
    for line in list(sys.stdin) + [""]:
        if line.strip():
            if line[0] in " \t":
                frames.append(line.strip())
            continue
        if frames:
            category = classify("\n".join(frames))
            if category is None:
                skipped += 1
            else:
                counts[category] += 1
        frames = []
    total = sum(counts.values())
    if total == 0:
        sys.exit("no step samples: was the profile recorded with --call-graph dwarf?")
    print(f"{total} step samples ({skipped} of set-up and teardown left out)")
    for name, count in counts.most_common():
        print(f"{100.0 * count / total:6.1f}%  {name}")


if __name__ == "__main__":
    main()
