// The Perception Encoder vision tower (timm Eva as PLM configures it, spec/plm_spec.md §2.2-2.3):
// patch conv (im2col + GEMM, no bias) -> [CLS] -> + abs pos-emb -> norm_pre -> blocks -> [post norm].
// A block: x += gamma_1 * proj(attn(rope2d(qkv(LN1(x))))); x += gamma_2 * fc2(gelu(fc1(LN2(x)))).
// Under tensor parallelism the heads and the MLP hidden dim are split (q/k/v and fc1 column-parallel,
// proj and fc2 row-parallel with one all-reduce each), or the tower is replicated (model/parallel.h).
// Forward-only. Thread-safety: const after load; one forward per stream at a time.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "distributed/communicator.h"
#include "model/config.h"
#include "model/layers/linear.h"
#include "model/layers/norms.h"
#include "model/trace.h"
#include "model/weights/weight_loader.h"

namespace plm::model {

// Shapes per TP rank (t = the tower's TP degree, 1 when replicated): h = heads / t, m = M / t.
struct VisionBlock {
  LayerNorm norm1, norm2;      // (D), replicated
  Linear q, k, v;              // (h * head_dim, D) + bias: blocks of the fused qkv, column-parallel
  Linear proj;                 // (D, h * head_dim), row-parallel; bias on TP rank 0 only
  OwnedTensor gamma1, gamma2;  // (D) LayerScale, empty when the config has none
  Linear fc1;                  // (m, D) + bias, column-parallel
  Linear fc2;                  // (D, m), row-parallel; bias on TP rank 0 only
};

class VisionTower {
 public:
  // tp: the tower's tensor-parallel group, or null to hold every head (replicated).
  static absl::StatusOr<VisionTower> load(const VisionConfig& config, const WeightLoader& loader,
                                          distributed::Communicator* tp);

  const VisionConfig& config() const { return config_; }
  // pixels (N, 3, img, img) in the working dtype -> out (N, seq_len, D): the last block's output.
  void forward(Tensor out, Tensor pixels, Tracer* tracer, Stream s = {}) const;

 private:
  void block_forward(const VisionBlock& block, Tensor x, int64_t num_tiles, Stream s) const;

  VisionConfig config_;
  distributed::Communicator* tp_ = nullptr;
  int local_heads_ = 0;
  Linear patch_embed_;      // (D, 3 p p), no bias
  OwnedTensor cls_token_;   // (D), empty without CLS
  OwnedTensor pos_embed_;   // (seq_len, D)
  LayerNorm norm_pre_, norm_post_;  // norm_post_ only when config.post_norm
  std::vector<VisionBlock> blocks_;
  OwnedTensor rope_cos_, rope_sin_;  // (num_patches, head_dim / 2) f32
};

}  // namespace plm::model
