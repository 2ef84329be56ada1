// StepLoader: this rank's micro-batches of an optimizer step. The step's G samples come from the sample order
// (data/sample_order.h: needs nothing but the step number, so resuming at step k loads exactly what the
// uninterrupted run loaded), are split over the DP ranks and their micro-batches by cost (data/step_split.h:
// tokens + vision tiles × tile_cost, computed identically on every rank), and only this rank's samples are
// built (tokenized, media decoded and preprocessed). While the caller trains on step k, step k + 1 is built on
// a background thread. Sample extents are cached, so a JSONL dataset pays for them once per sample, not per
// epoch. Not thread-safe: one caller.
#pragma once

#include <cstdint>
#include <future>
#include <memory>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "data/sample_order.h"
#include "data/sft_dataset.h"
#include "trainer/micro_batch.h"

namespace plm::trainer {

struct StepData {
  int64_t step = 0;
  std::vector<MicroBatch> micro_batches;  // this rank's, in order; empty ones are left out
  std::vector<int64_t> sequence_lengths;  // tokens of each of the step's G samples (all ranks)
  int64_t vision_tiles = 0;               // image tiles + video frames of the step's G samples (all ranks)
};

struct StepLoaderConfig {
  int dp_rank = 0;
  int dp_size = 1;
  int micro_batches_per_rank = 1;  // the accumulation count
  double tile_cost = 0.0;          // one tile's cost in language-model tokens (trainer/model_flops.h)
  uint64_t seed = 0;               // the run's seed: LoRA dropout keys (model/lora.h lora_dropout_key)
  Device device = Device::cpu();
};

class StepLoader {
 public:
  // dataset must outlive the loader.
  StepLoader(const data::SftDataset& dataset, data::SampleOrder order, const StepLoaderConfig& config);
  ~StepLoader();
  StepLoader(const StepLoader&) = delete;
  StepLoader& operator=(const StepLoader&) = delete;

  // Step `step` (>= 1), then starts building step + 1 when `prefetch_next`.
  absl::StatusOr<StepData> load(int64_t step, bool prefetch_next);

 private:
  absl::StatusOr<StepData> build(int64_t step);
  absl::StatusOr<data::SampleExtent> extent(int64_t index);

  const data::SftDataset& dataset_;
  data::SampleOrder order_;
  StepLoaderConfig config_;
  std::unordered_map<int64_t, data::SampleExtent> extents_;
  int64_t prefetched_step_ = 0;
  std::future<absl::StatusOr<StepData>> prefetched_;
};

}  // namespace plm::trainer
