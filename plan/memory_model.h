// Per-device memory of training and serving layouts, predicted from the config (no weights are read), as plm
// allocates it: training keeps the working weights and a full-size gradient accumulation buffer in the working
// dtype (trainer/data_parallel_step.h; ZeRO-2 reduce-scatters into it but does not shrink it), the f32 master
// weights and both AdamW moments of the rank's ZeRO shard (trainer/adamw_zero.h: all of them at ZeRO-0, a
// 1/dp contiguous range at ZeRO-1/2), activations for the micro-batches a pipeline stage holds in flight
// (1F1B: pp - stage of them, at most the step's micro-batches), the collectives' staging buffers and a runtime
// reserve. Serving keeps the weights, the KV cache for every sequence at full length and one step's working set.
#pragma once

#include <cstdint>

#include "model/config.h"
#include "model/recompute.h"
#include "plan/activation_memory.h"
#include "plan/layout.h"
#include "plan/stage_parameters.h"

namespace plm::plan {

struct TrainingSetup {
  Layout layout = {};
  int zero_stage = 0;                                 // 0, 1 or 2
  model::Recompute recompute = model::Recompute::kNone;
  MicroBatchShape micro_batch = {};                        // one micro-batch's tokens and tiles
  int64_t sequence_tokens = 0;                        // tokens per sequence (micro_batch.tokens / sequences)
  int num_micro_batches = 1;                          // per DP rank per optimizer step
  DType dtype = DType::kBF16;                         // working dtype (f32 on CPU)
  int64_t bucket_elements = int64_t{4} << 20;         // gradient reduction bucket (trainer::DataParallelConfig)
  int64_t runtime_bytes = 0;
};

struct TrainingMemory {
  StageParameters stage = {};        // what the rank holds
  int in_flight = 1;            // micro-batches whose activations it holds at once
  int64_t weights = 0;
  int64_t gradients = 0;
  int64_t optimizer = 0;        // f32 master + exp_avg + exp_avg_sq of the ZeRO shard
  int64_t optimizer_shard = 0;  // parameters in that shard
  ActivationMemory activation_parts = {};
  int64_t activations = 0;      // activation_parts.total(in_flight)
  int64_t buffers = 0;          // ZeRO staging: the all-gather's shard copy, the reduce-scatter's bucket part
  int64_t runtime = 0;
  int64_t total() const { return weights + gradients + optimizer + activations + buffers + runtime; }
};

// A rank of `stage`, and the rank of the stage that needs the most.
TrainingMemory training_memory(const model::PlmConfig& config, const TrainingSetup& setup, int stage);
TrainingMemory peak_training_memory(const model::PlmConfig& config, const TrainingSetup& setup);

struct ServingSetup {
  Layout layout = {};                    // dp: independent replicas
  int64_t max_num_seqs = 1;         // sequences decoding together
  int64_t max_len = 0;              // prompt + reply tokens of each
  int64_t step_tokens = 2048;       // an engine step's token budget (prefill chunk + decodes)
  int64_t tiles = 0;                // tiles + frames through the tower in one step
  DType dtype = DType::kBF16;
  int64_t runtime_bytes = 0;
};

struct ServingMemory {
  StageParameters stage = {};
  int64_t weights = 0;
  int64_t kv_bytes_per_token = 0;  // K and V of one token over this stage's layers and KV heads
  int64_t kv_cache = 0;            // max_num_seqs x max_len tokens
  int64_t activations = 0;         // one step's working set
  int64_t runtime = 0;
  int64_t total() const { return weights + kv_cache + activations + runtime; }
};

ServingMemory serving_memory(const model::PlmConfig& config, const ServingSetup& setup, int stage);
ServingMemory peak_serving_memory(const model::PlmConfig& config, const ServingSetup& setup);

}  // namespace plm::plan
