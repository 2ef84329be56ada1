#include "trainer/step_loader.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "data/step_split.h"
#include "model/lora.h"

namespace plm::trainer {

StepLoader::StepLoader(const data::SftDataset& dataset, data::SampleOrder order, const StepLoaderConfig& config)
    : dataset_(dataset), order_(std::move(order)), config_(config) {}

StepLoader::~StepLoader() {
  if (prefetched_.valid()) prefetched_.wait();
}

namespace {

// `status` (which names the sample's file position) with the step in front.
absl::Status at_step(int64_t step, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat("step ", step, ": ", status.message()));
}

}  // namespace

absl::StatusOr<data::SampleExtent> StepLoader::extent(int64_t index) {
  const auto it = extents_.find(index);
  if (it != extents_.end()) return it->second;
  PLM_ASSIGN_OR_RETURN(const data::SampleExtent e, dataset_.extent(index));
  extents_.emplace(index, e);
  return e;
}

absl::StatusOr<StepData> StepLoader::build(int64_t step) {
  StepData data;
  data.step = step;
  const std::vector<int64_t> indices = order_.step_samples(step);
  std::vector<double> costs;
  for (const int64_t index : indices) {
    const absl::StatusOr<data::SampleExtent> e_or = extent(index);
    if (!e_or.ok()) return at_step(step, e_or.status());
    const data::SampleExtent& e = *e_or;
    costs.push_back(data::sample_cost(e, config_.tile_cost));
    data.sequence_lengths.push_back(e.num_tokens);
    data.vision_tiles += e.num_vision_tiles;
  }
  const data::StepSplit split = data::split_step(costs, config_.dp_size, config_.micro_batches_per_rank);
  for (const std::vector<int>& positions : split.micro_batches[static_cast<size_t>(config_.dp_rank)]) {
    if (positions.empty()) continue;
    std::vector<data::SftSample> samples;
    samples.reserve(positions.size());
    for (const int p : positions) {
      const int64_t index = indices[static_cast<size_t>(p)];
      absl::StatusOr<data::SftSample> s = dataset_.sample(index);
      if (!s.ok()) return at_step(step, s.status());
      samples.push_back(std::move(*s));
    }
    std::vector<const data::SftSample*> pointers;
    for (const data::SftSample& s : samples) pointers.push_back(&s);
    MicroBatch mb = pack_micro_batch(pointers, config_.device);
    // Keyed by the sample's position in the step, so every DP / micro-batch split draws the same masks.
    for (const int p : positions) mb.batch.lora_dropout_keys.push_back(model::lora_dropout_key(config_.seed, step, p));
    data.micro_batches.push_back(std::move(mb));
  }
  return data;
}

absl::StatusOr<StepData> StepLoader::load(int64_t step, bool prefetch_next) {
  absl::StatusOr<StepData> data;
  if (prefetched_.valid()) {
    const int64_t prefetched_step = prefetched_step_;
    data = prefetched_.get();
    if (prefetched_step != step) data = build(step);  // the caller skipped ahead (not the training loop's case)
  } else {
    data = build(step);
  }
  if (data.ok() && prefetch_next) {
    prefetched_step_ = step + 1;
    prefetched_ = std::async(std::launch::async, [this, next = step + 1] { return build(next); });
  }
  return data;
}

}  // namespace plm::trainer
