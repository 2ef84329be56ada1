// ModelRunner: runs one StepPlan on the model. It resolves every media item the plan's chunks touch to its
// embedding (the sequence's pinned item, the encoder cache, or the vision tower, which encodes all missing
// tiles / frames of the step in one batch per kind and stores them in the cache), hands each chunk its tokens
// and the rows of its placeholders (views of the cached rows, no copy) in one PlmModel::step over the KV cache,
// and returns the logits of the chunks that sample, in a buffer reused from step to step.
// Engine thread only: it drives the model, whose calls are not thread-safe.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "model/plm_model.h"
#include "model/text/kv_cache.h"
#include "serve/encoder_cache.h"
#include "serve/scheduler.h"
#include "serve/step_mirror.h"

namespace plm::serve {

struct StepResult {
  // f32 (sampling chunks, V) on the host: row k is the k-th chunk of the plan that samples. Valid until the
  // next run().
  Tensor logits;
  int num_media_encoded = 0;    // tiles / frames the vision tower ran on
  double vision_s = 0;          // vision tower + projector
  double forward_s = 0;         // decoder forward (embedding, layers, head)
};

class ModelRunner {
 public:
  // publisher (optional): the tensor-parallel leader's end of the step mirror (step_mirror.h); the runner
  // publishes the cache now and each encode and step before running it.
  ModelRunner(const model::PlmModel& model, model::KvCache& cache, EncoderCache& encoder_cache,
              StepPublisher* publisher = nullptr);
  ModelRunner(const ModelRunner&) = delete;
  ModelRunner& operator=(const ModelRunner&) = delete;

  // Also advances each chunk's sequence's media pins and usage counts. An error (the forward refused the
  // batch) leaves the cache contents of the plan's slots undefined: the caller fails those sequences.
  absl::StatusOr<StepResult> run(const StepPlan& plan);

 private:
  const model::PlmModel& model_;
  model::KvCache& cache_;
  EncoderCache& encoder_cache_;
  StepPublisher* publisher_;
  model::StepOutput output_;  // the forward's logits buffer, reused
  OwnedTensor host_logits_;   // (>= rows, V) f32: their host copy when the model is on a GPU, reused
};

}  // namespace plm::serve
