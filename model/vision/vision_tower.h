// The Perception Encoder vision tower (timm Eva as PLM configures it, spec/plm_spec.md §2.2-2.3):
// patch conv (im2col + GEMM, no bias) -> [CLS] -> + abs pos-emb -> norm_pre -> blocks -> [post norm].
// Blocks are in vision_block.h. Under tensor parallelism the heads and the MLP hidden dim are split (qkv and
// fc1 column-parallel, proj and fc2 row-parallel with one all-reduce each), or the tower is replicated
// (model/parallel.h). Training saves every block's activations and runs the backward down to the patch
// embedding (pixels get no gradient). Thread-safety: const after load; one forward per stream at a time.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "core/arena.h"
#include "core/tensor.h"
#include "distributed/communicator.h"
#include "model/config.h"
#include "model/layers/linear.h"
#include "model/layers/norms.h"
#include "model/trace.h"
#include "model/vision/vision_block.h"
#include "model/weights/hf_names.h"
#include "model/weights/weight_loader.h"

namespace plm::model {

// The tower's parameters on this rank, as views (the weights or, rebound, their gradients).
struct VisionWeights {
  Linear patch_embed;              // (D, 3 p p), no bias (a bias when the tower has no norm_pre)
  Tensor cls_token;                // (1, D), undefined without CLS
  Tensor pos_embed;                // (seq_len, D)
  LayerNorm norm_pre, norm_post;   // (D), each only when configured
  std::vector<VisionBlock> blocks;

  // f(hf_name, tensor&) for every parameter tensor.
  template <typename F>
  void for_each_parameter(F&& f) {
    f(vision_name("patch_embed.proj.weight"), patch_embed.weight);
    if (patch_embed.bias.defined()) f(vision_name("patch_embed.proj.bias"), patch_embed.bias);
    if (cls_token.defined()) f(vision_name("cls_token"), cls_token);
    f(vision_name("pos_embed"), pos_embed);
    if (norm_pre.weight.defined()) {
      f(vision_name("norm_pre.weight"), norm_pre.weight);
      f(vision_name("norm_pre.bias"), norm_pre.bias);
    }
    for (size_t i = 0; i < blocks.size(); ++i) {
      blocks[i].for_each_parameter(
          [&](const std::string& suffix, Tensor& t) { f(vision_block_name(static_cast<int>(i), suffix), t); });
    }
    if (norm_post.weight.defined()) {
      f(vision_name("norm.weight"), norm_post.weight);
      f(vision_name("norm.bias"), norm_post.bias);
    }
  }
};

// The tower's saved activations for n tiles; the blocks' under a recomputation policy (model/recompute.h).
struct VisionActivations {
  Recompute recompute = Recompute::kNone;
  Tensor patches;                 // (n P, 3 p p) im2col of the pixels
  Tensor embedded;                // (n P, D) scratch: the patch embedding
  Tensor stream;                  // (n, S, D) scratch: the residual stream through the blocks
  Tensor x_pre;                   // (n, S, D) tokens + pos-emb, the input of norm_pre
  Tensor mean_pre, rstd_pre;      // (n S) f32
  std::vector<VisionBlockActivations> blocks;  // each block's saved tensors over one shared workspace
  Tensor x_post;                  // (n, S, D) the last block's output, the input of the post norm
  Tensor mean_post, rstd_post;    // (n S) f32
};

class VisionTower {
 public:
  // tp: the tower's tensor-parallel group, or null to hold every head (replicated).
  static absl::StatusOr<VisionTower> load(const VisionConfig& config, const WeightLoader& loader,
                                          distributed::Communicator* tp);

  const VisionConfig& config() const { return config_; }
  VisionWeights& weights() { return weights_; }
  const VisionWeights& weights() const { return weights_; }

  // Inference. pixels (N, 3, img, img) in the working dtype -> out (N, seq_len, D): the last hidden state.
  void forward(Tensor out, Tensor pixels, Tracer* tracer, Stream s = {}) const;

  // Training: the same forward, saving activations (from `arena`) for backward as `recompute` says.
  VisionActivations forward_train(Arena& arena, Tensor out, Tensor pixels, Recompute recompute, Stream s = {}) const;
  size_t activation_bytes(int64_t tiles, DType dtype, Recompute recompute) const;
  // dout (N, seq_len, D) -> parameter gradients (+=). dout is used as scratch. Rebuilds each block's dropped
  // activations right before its backward.
  void backward(const VisionWeights& grad, const VisionActivations& a, Tensor dout, Arena& scratch,
                Stream s = {}) const;

 private:
  static constexpr int64_t kCpuTilesPerPass = 4;  // forward's group on CPU
  VisionBlockDims block_dims(int64_t tiles) const;
  template <typename Alloc>
  VisionActivations allocate(Alloc& alloc, int64_t tiles, DType dtype, bool for_backward, Recompute recompute) const;
  void run(Tensor out, Tensor pixels, VisionActivations& a, Tracer* tracer, Stream s) const;

  VisionConfig config_;
  distributed::Communicator* tp_ = nullptr;  // a size-1 group when the tower is replicated
  int local_heads_ = 0;
  VisionWeights weights_;
  OwnedTensor rope_cos_, rope_sin_;  // (num_patches, head_dim / 2) f32
};

}  // namespace plm::model
