// The multimodal projector (spec/plm_spec.md §2.4-2.5): drop the CLS token when configured, then
// linear_1 -> GELU (erf) -> linear_2, then adaptive average pooling of the g x g patch grid to
// floor(g / ratio) per side. Turns tower output into LLM embeddings, one row per placeholder token.
// Replicated under tensor parallelism. Gradient rule: parameter grads +=, activation grads =.
#pragma once

#include "absl/status/statusor.h"
#include "core/arena.h"
#include "core/tensor.h"
#include "model/config.h"
#include "model/layers/linear.h"
#include "model/trace.h"
#include "model/weights/hf_names.h"
#include "model/weights/weight_loader.h"

namespace plm::model {

struct ProjectorWeights {
  Linear linear_1;  // (H, D) + bias
  Linear linear_2;  // (H, H) + bias

  template <typename F>
  void for_each_parameter(F&& f) {
    f(projector_name("linear_1.weight"), linear_1.weight);
    f(projector_name("linear_1.bias"), linear_1.bias);
    f(projector_name("linear_2.weight"), linear_2.weight);
    f(projector_name("linear_2.bias"), linear_2.bias);
  }
};

struct ProjectorActivations {
  Tensor features;  // (n, P, D) tower output without the prefix tokens
  Tensor pre_gelu;  // (n, P, H)
  Tensor hidden;    // (n, P, H) after GELU
  Tensor y;         // (n, P, H) before pooling (scratch; unused without pooling)
};

class Projector {
 public:
  static absl::StatusOr<Projector> load(const PlmConfig& config, const WeightLoader& loader);

  ProjectorWeights& weights() { return weights_; }
  const ProjectorWeights& weights() const { return weights_; }

  // vision: (N, seq_len, D) tower output -> out: (N, tokens_per_tile, H).
  void forward(Tensor out, Tensor vision, Tracer* tracer, Stream s = {}) const;
  // The same, keeping the activations (from `arena`) for backward.
  ProjectorActivations forward_train(Arena& arena, Tensor out, Tensor vision, Stream s = {}) const;
  size_t activation_bytes(int64_t tiles, int64_t embed_dim, DType dtype) const;
  // dout (N, tokens_per_tile, H) -> dvision (N, seq_len, D) (=; may be undefined when the tower is frozen)
  // and parameter gradients (+=).
  void backward(const ProjectorWeights& grad, const ProjectorActivations& a, Tensor dvision, Tensor dout,
                Arena& scratch, Stream s = {}) const;

 private:
  template <typename Alloc>
  ProjectorActivations allocate(Alloc& alloc, int64_t tiles, int64_t embed_dim, DType dtype) const;
  void run(Tensor out, Tensor vision, const ProjectorActivations& a, Tracer* tracer, Stream s) const;

  ProjectorWeights weights_;
  int num_prefix_tokens_ = 0;  // tower tokens dropped before projecting (CLS)
  int grid_ = 0;               // patches per side
  int out_grid_ = 0;           // tokens per side after pooling (== grid_ without pooling)
};

}  // namespace plm::model
