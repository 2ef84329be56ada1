// The Perception Encoder vision tower (timm Eva as PLM configures it, spec/plm_spec.md §2.2-2.3):
// patch conv (im2col + GEMM, no bias) -> [CLS] -> + abs pos-emb -> norm_pre -> blocks -> [post norm].
// A block: x += gamma_1 * proj(attn(rope2d(qkv(LN1(x))))); x += gamma_2 * fc2(gelu(fc1(LN2(x)))).
// Forward-only. Thread-safety: const after load; one forward per stream at a time.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "model/config.h"
#include "model/layers/linear.h"
#include "model/layers/norms.h"
#include "model/trace.h"
#include "model/weights/weight_loader.h"

namespace plm::model {

struct VisionBlock {
  LayerNorm norm1, norm2;
  Linear qkv;         // (3D, D) + bias: rows [q | k | v], each head-major
  Linear proj;        // (D, D) + bias
  OwnedTensor gamma1, gamma2;  // (D) LayerScale, empty when the config has none
  Linear fc1, fc2;    // (M, D), (D, M), biases
};

class VisionTower {
 public:
  static absl::StatusOr<VisionTower> load(const VisionConfig& config, const WeightLoader& loader);

  const VisionConfig& config() const { return config_; }
  // pixels (N, 3, img, img) in the working dtype -> out (N, seq_len, D): the last block's output.
  void forward(Tensor out, Tensor pixels, Tracer* tracer, Stream s = {}) const;

 private:
  void block_forward(const VisionBlock& block, Tensor x, int64_t num_tiles, Stream s) const;

  VisionConfig config_;
  Linear patch_embed_;      // (D, 3 p p), no bias
  OwnedTensor cls_token_;   // (D), empty without CLS
  OwnedTensor pos_embed_;   // (seq_len, D)
  LayerNorm norm_pre_, norm_post_;  // norm_post_ only when config.post_norm
  std::vector<VisionBlock> blocks_;
  OwnedTensor rope_cos_, rope_sin_;  // (num_patches, head_dim / 2) f32
};

}  // namespace plm::model
