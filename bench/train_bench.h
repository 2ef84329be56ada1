// `plm bench train`: speed and memory of a full training step (trainer/data_parallel_step.h on one rank:
// forward + backward of one packed micro-batch, grad norm + clipping, AdamW) on synthetic sequences: step time,
// tokens/s, peak RSS and arena peak against the analytic estimate (weights + grads + f32 master + 2 moments +
// activations). bench/torch_train_bench.py runs the same step in PyTorch eager on the same directory and data;
// both print a table and one JSON line. With --tp N under `mpirun -n N` each rank trains its tensor-parallel shard
// (model/parallel.h); rank 0 reports its step times and the largest peak RSS of the ranks.
#pragma once

#include <cstdint>
#include <string>

namespace plm::bench {

struct TrainBenchOptions {
  std::string model_dir;         // an HF model directory (bench make-random-model writes one)
  int batch = 1;                 // sequences per step, packed into one micro-batch
  int seq_len = 512;             // tokens per sequence, image placeholders included
  int image_tiles = 0;           // per sequence: tiles x tokens_per_tile placeholders open it
  int steps = 3;                 // timed steps, after one warm-up step
  std::string recompute = "none";  // none | selective | full
  uint64_t seed = 0;             // of the synthetic token ids and pixels
  int tp = 1;                    // tensor-parallel ranks (launch that many under mpirun)
};

// Returns the process exit code; prints the table and the JSON line on stdout.
int run_train_bench(const TrainBenchOptions& options);

}  // namespace plm::bench
