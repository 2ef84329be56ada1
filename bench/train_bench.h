// `plm bench train`: speed and memory of a full training step (trainer/data_parallel_step.h on one rank:
// forward + backward of one packed micro-batch, grad norm + clipping, AdamW) on synthetic sequences: step time,
// tokens/s, peak RSS and arena peak against the analytic estimate (weights + grads + f32 master + 2 moments +
// activations). bench/torch_train_bench.py runs the same step in PyTorch eager on the same directory and data;
// both print a table and one JSON line. With --tp N under `mpirun -n N` each rank trains its tensor-parallel shard
// (model/parallel.h); rank 0 reports its step times and the largest peak RSS of the ranks. With --pp P (mpirun -n
// TP * P) each stage runs the 1F1B schedule over --micro micro-batches (trainer/pipeline_schedule.h), and every
// stage's bubble — its share of the schedule spent in transfers, waiting for a neighbour — is printed against the
// equal-stage value (P - 1) / (M + P - 1), with stage 0's compute per micro-batch with and without media (mix them
// with --media-micro) and every rank's peak RSS.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace plm::bench {

struct TrainBenchOptions {
  std::string model_dir;         // an HF model directory (bench make-random-model writes one)
  int batch = 1;                 // sequences per step, packed into one micro-batch
  int seq_len = 512;             // tokens per sequence, image placeholders included
  int image_tiles = 0;           // per sequence: tiles x tokens_per_tile placeholders open it
  int steps = 3;                 // timed steps, after one warm-up step
  std::string recompute = "none";  // none | selective | full
  std::string dtype = "f32";     // f32 | bf16: the CPU compute dtype (the training config's `dtype`)
  uint64_t seed = 0;             // of the synthetic token ids and pixels
  int tp = 1;                    // tensor-parallel ranks (launch tp * pp under mpirun)
  int pp = 1;                    // pipeline stages
  int micro = 1;                 // micro-batches per step, each of `batch` sequences
  int media_micro = -1;          // the first micro-batches carry the image tiles, the others are text only; -1: all
  std::vector<int> pp_layers;    // decoder layers per stage; empty: the cost-aware split
};

// Returns the process exit code; prints the table and the JSON line on stdout.
int run_train_bench(const TrainBenchOptions& options);

}  // namespace plm::bench
