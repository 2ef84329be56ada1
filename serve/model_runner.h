// ModelRunner: runs one StepPlan on the model. It resolves every media item the plan's chunks touch to its
// embedding (the sequence's pinned item, the encoder cache, or the vision tower, which encodes all missing
// tiles / frames of the step in one batch per kind and stores them in the cache), packs the chunks' tokens and
// media rows into one forward over the KV cache, and returns the logits of the chunks that sample.
// Engine thread only: it drives the model, whose calls are not thread-safe.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "model/plm_model.h"
#include "model/text/kv_cache.h"
#include "serve/encoder_cache.h"
#include "serve/scheduler.h"

namespace plm::serve {

struct StepOutput {
  OwnedTensor logits;           // f32 (plan.chunks.size(), V) on the host; rows of non-sampling chunks unset
  int num_media_encoded = 0;    // tiles / frames the vision tower ran on
  double vision_s = 0;          // vision tower + projector
  double forward_s = 0;         // decoder forward (embedding, layers, head)
};

class ModelRunner {
 public:
  ModelRunner(const model::PlmModel& model, model::KvCache& cache, EncoderCache& encoder_cache);
  ModelRunner(const ModelRunner&) = delete;
  ModelRunner& operator=(const ModelRunner&) = delete;

  // Also advances each chunk's sequence's media pins and usage counts. An error (the forward refused the
  // batch) leaves the cache contents of the plan's slots undefined: the caller fails those sequences.
  absl::StatusOr<StepOutput> run(const StepPlan& plan);

 private:
  const model::PlmModel& model_;
  model::KvCache& cache_;
  EncoderCache& encoder_cache_;
};

}  // namespace plm::serve
