// The multimodal projector (spec/plm_spec.md §2.4-2.5): drop the CLS token when configured, then
// linear_1 -> GELU (erf) -> linear_2, then adaptive average pooling of the g x g patch grid to
// floor(g / ratio) per side. Turns tower output into LLM embeddings, one row per placeholder token.
#pragma once

#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "model/config.h"
#include "model/layers/linear.h"
#include "model/trace.h"
#include "model/weights/weight_loader.h"

namespace plm::model {

class Projector {
 public:
  static absl::StatusOr<Projector> load(const PlmConfig& config, const WeightLoader& loader);

  // vision: (N, seq_len, D) tower output -> out: (N, tokens_per_tile, H).
  void forward(Tensor out, Tensor vision, Tracer* tracer, Stream s = {}) const;

 private:
  Linear linear_1_;  // (H, D) + bias
  Linear linear_2_;  // (H, H) + bias
  int num_prefix_tokens_ = 0;  // tower tokens dropped before projecting (CLS)
  int grid_ = 0;               // patches per side
  int out_grid_ = 0;           // tokens per side after pooling (== grid_ without pooling)
};

}  // namespace plm::model
