#include "model/vision/vision_tower.h"

#include <algorithm>

#include "core/kernels/ops.h"
#include "core/kernels/rope_tables.h"
#include "core/status_macros.h"
#include "distributed/single_rank_communicator.h"

namespace plm::model {

namespace {

absl::StatusOr<LayerNorm> load_layernorm(const WeightLoader& loader, const std::string& prefix, double eps) {
  LayerNorm norm;
  PLM_ASSIGN_OR_RETURN(norm.weight, loader.tensor(prefix + "weight"));
  PLM_ASSIGN_OR_RETURN(norm.bias, loader.tensor(prefix + "bias"));
  norm.eps = static_cast<float>(eps);
  return norm;
}

// A host f32 table as a device tensor of shape (rows, cols).
OwnedTensor table_tensor(const std::vector<float>& values, int64_t rows, int64_t cols, Device device) {
  OwnedTensor host({rows, cols}, DType::kF32);
  std::copy(values.begin(), values.end(), host.data_as<float>());
  return to_device(host, device);
}

}  // namespace

absl::StatusOr<VisionTower> VisionTower::load(const VisionConfig& config, const WeightLoader& loader,
                                              distributed::Communicator* tp) {
  VisionTower tower;
  tower.config_ = config;
  const bool split = tp != nullptr && tp->size() > 1;
  tower.tp_ = split ? tp : &distributed::single_rank_group();
  const int t = tower.tp_->size(), r = tower.tp_->rank();
  tower.local_heads_ = config.num_heads / t;
  const int64_t d = config.embed_dim, p = config.patch_size;
  VisionWeights& w = tower.weights_;
  PLM_ASSIGN_OR_RETURN(w.patch_embed, loader.linear(vision_name("patch_embed.proj."), !config.pre_norm));
  w.patch_embed.weight = w.patch_embed.weight.reshape({d, 3 * p * p});
  if (config.class_token) {
    PLM_ASSIGN_OR_RETURN(w.cls_token, loader.tensor(vision_name("cls_token")));
    w.cls_token = w.cls_token.reshape({1, d});
  }
  PLM_ASSIGN_OR_RETURN(w.pos_embed, loader.tensor(vision_name("pos_embed")));
  w.pos_embed = w.pos_embed.reshape({config.seq_len(), d});
  if (config.pre_norm) {
    PLM_ASSIGN_OR_RETURN(w.norm_pre, load_layernorm(loader, vision_name("norm_pre."), config.norm_eps));
  }
  if (config.post_norm) {
    PLM_ASSIGN_OR_RETURN(w.norm_post, load_layernorm(loader, vision_name("norm."), config.norm_eps));
  }
  for (int i = 0; i < config.depth; ++i) {
    VisionBlock b;
    const auto name = [i](const std::string& suffix) { return vision_block_name(i, suffix); };
    PLM_ASSIGN_OR_RETURN(b.norm1, load_layernorm(loader, name("norm1."), config.norm_eps));
    PLM_ASSIGN_OR_RETURN(b.norm2, load_layernorm(loader, name("norm2."), config.norm_eps));
    // The fused qkv rows are [q | k | v]: this rank's heads are parts r, t + r and 2t + r of 3t.
    PLM_ASSIGN_OR_RETURN(b.qkv, loader.stacked_row_parts(name("attn.qkv."), {r, t + r, 2 * t + r}, 3 * t, true));
    PLM_ASSIGN_OR_RETURN(b.proj, loader.linear_part(name("attn.proj."), 1, r, t, true, r == 0));
    PLM_ASSIGN_OR_RETURN(b.fc1, loader.linear_part(name("mlp.fc1."), 0, r, t, true));
    PLM_ASSIGN_OR_RETURN(b.fc2, loader.linear_part(name("mlp.fc2."), 1, r, t, true, r == 0));
    if (config.layer_scale()) {
      PLM_ASSIGN_OR_RETURN(b.gamma1, loader.tensor(name("gamma_1")));
      PLM_ASSIGN_OR_RETURN(b.gamma2, loader.tensor(name("gamma_2")));
    }
    w.blocks.push_back(std::move(b));
  }
  const VisionRopeTable rope =
      vision_rope_table(config.grid_size(), config.head_dim(), config.rope_theta,
                        static_cast<float>(config.rope_grid_offset), config.ref_feat_shape[0]);
  tower.rope_cos_ = table_tensor(rope.cos, rope.num_patches, rope.half_dim, loader.device());
  tower.rope_sin_ = table_tensor(rope.sin, rope.num_patches, rope.half_dim, loader.device());
  return tower;
}

VisionBlockDims VisionTower::block_dims(int64_t tiles) const {
  return {.tiles = tiles, .seq = config_.seq_len(), .dim = config_.embed_dim, .heads = local_heads_,
          .head_dim = config_.head_dim(), .mlp = config_.mlp_hidden / tp_->size(),
          .num_prefix_tokens = config_.num_prefix_tokens()};
}

// Inference keeps one block's scratch for every block; training keeps every block's saved activations over
// one shared workspace.
template <typename Alloc>
VisionActivations VisionTower::allocate(Alloc& alloc, int64_t n, DType dtype, bool for_backward,
                                        Recompute recompute) const {
  const int64_t d = config_.embed_dim, p = config_.patch_size, seq = config_.seq_len();
  const int64_t patches = n * config_.num_patches();
  VisionActivations a;
  a.recompute = recompute;
  a.patches = alloc.alloc({patches, 3 * p * p}, dtype);
  a.embedded = alloc.alloc({patches, d}, dtype);
  a.stream = alloc.alloc({n, seq, d}, dtype);
  a.x_pre = alloc.alloc({n, seq, d}, dtype);
  if (for_backward) {
    if (config_.pre_norm) {
      a.mean_pre = alloc.alloc({n * seq}, DType::kF32);
      a.rstd_pre = alloc.alloc({n * seq}, DType::kF32);
    }
    if (config_.post_norm) {
      a.x_post = alloc.alloc({n, seq, d}, dtype);
      a.mean_post = alloc.alloc({n * seq}, DType::kF32);
      a.rstd_post = alloc.alloc({n * seq}, DType::kF32);
    }
  }
  const VisionBlockDims dims = block_dims(n);
  if (!for_backward) {
    a.blocks.push_back(VisionBlockActivations::allocate(alloc, dims, dtype, ActivationPart::inference()));
    return a;
  }
  const VisionBlockActivations workspace =
      VisionBlockActivations::allocate(alloc, dims, dtype, ActivationPart::workspace(recompute));
  for (size_t i = 0; i < weights_.blocks.size(); ++i) {
    a.blocks.push_back(
        VisionBlockActivations::allocate(alloc, dims, dtype, ActivationPart::saved(recompute), workspace));
  }
  return a;
}

// On CPU the tiles go through in groups of kCpuTilesPerPass: every tile computes alone (its rows' results do not
// depend on the group), and a group's activations stay a few hundred MiB, recycled from group to group, where a
// 37-tile image in one pass ran 35 % slower per tile (2.7 GiB of fresh activations). With a tracer attached, one
// pass: each traced name then holds every tile.
void VisionTower::forward(Tensor out, Tensor pixels, Tracer* tracer, Stream s) const {
  const int64_t n = pixels.size(0);
  const int64_t group = out.device().is_cpu() && tracer == nullptr ? kCpuTilesPerPass : std::max<int64_t>(n, 1);
  for (int64_t t0 = 0; t0 < n; t0 += group) {
    const int64_t tiles = std::min(group, n - t0);
    ArenaSizer sizer;
    allocate(sizer, tiles, out.dtype(), /*for_backward=*/false, Recompute::kNone);
    Arena arena(sizer.bytes(), out.device());
    VisionActivations a = allocate(arena, tiles, out.dtype(), /*for_backward=*/false, Recompute::kNone);
    run(out.slice(0, t0, t0 + tiles), pixels.slice(0, t0, t0 + tiles), a, tracer, s);
  }
}

VisionActivations VisionTower::forward_train(Arena& arena, Tensor out, Tensor pixels, Recompute recompute,
                                             Stream s) const {
  VisionActivations a = allocate(arena, pixels.size(0), out.dtype(), /*for_backward=*/true, recompute);
  run(out, pixels, a, nullptr, s);
  return a;
}

size_t VisionTower::activation_bytes(int64_t tiles, DType dtype, Recompute recompute) const {
  ArenaSizer sizer;
  allocate(sizer, tiles, dtype, /*for_backward=*/true, recompute);
  return sizer.bytes();
}

void VisionTower::run(Tensor out, Tensor pixels, VisionActivations& a, Tracer* tracer, Stream s) const {
  const int64_t n = pixels.size(0), d = config_.embed_dim, p = config_.patch_size;
  const int64_t num_patches = config_.num_patches(), seq = config_.seq_len(), prefix = config_.num_prefix_tokens();
  PLM_CHECK(out.shape() == Shape({n, seq, d})) << "vision tower output " << out.describe() << " for " << n << " tiles";
  PLM_CHECK(pixels.size(2) == config_.img_size && pixels.size(3) == config_.img_size)
      << "vision tower takes " << config_.img_size << "x" << config_.img_size << " tiles, got " << pixels.describe();
  const VisionWeights& w = weights_;

  im2col_patches(a.patches, pixels, static_cast<int>(p), s);
  w.patch_embed.forward(a.embedded, a.patches, s);
  trace(tracer, a.embedded.reshape({n, num_patches, d}), "vision.patch_embed");
  for (int64_t t = 0; t < n; ++t) {
    const Tensor tile = a.x_pre.select(0, t);  // (seq, d)
    if (prefix > 0) copy_tensor(tile.slice(0, 0, prefix), w.cls_token, s);
    copy_tensor(tile.slice(0, prefix, seq), a.embedded.slice(0, t * num_patches, (t + 1) * num_patches), s);
    add(tile, tile, w.pos_embed, s);
  }
  if (config_.pre_norm) {
    w.norm_pre.forward(a.stream, a.mean_pre, a.rstd_pre, a.x_pre, s);
  } else {
    copy_tensor(a.stream, a.x_pre, s);
  }
  trace(tracer, a.stream, "vision.norm_pre");
  const VisionBlockDims dims = block_dims(n);
  for (size_t i = 0; i < w.blocks.size(); ++i) {
    VisionBlockActivations& block_acts = a.blocks[a.blocks.size() == 1 ? 0 : i];
    vision_block_forward(w.blocks[i], block_acts, a.stream, rope_cos_, rope_sin_, dims, *tp_, s);
    trace(tracer, a.stream, "vision.blocks", static_cast<int>(i));
  }
  if (config_.post_norm) {
    if (a.x_post.defined()) copy_tensor(a.x_post, a.stream, s);
    w.norm_post.forward(out, a.mean_post, a.rstd_post, a.stream, s);
  } else {
    copy_tensor(out, a.stream, s);
  }
  trace(tracer, out, "vision.last_hidden_state");
}

void VisionTower::backward(const VisionWeights& g, const VisionActivations& a, Tensor dout, Arena& scratch,
                           Stream s) const {
  const size_t mark = scratch.mark();
  const int64_t n = dout.size(0), d = config_.embed_dim, seq = config_.seq_len();
  const int64_t num_patches = config_.num_patches(), prefix = config_.num_prefix_tokens();
  const VisionWeights& w = weights_;
  Tensor dstream = dout;
  if (config_.post_norm) {
    dstream = scratch.alloc(dout.shape(), dout.dtype());
    w.norm_post.backward(dstream, g.norm_post, dout, a.x_post, a.mean_post, a.rstd_post, s);
  }
  const VisionBlockDims dims = block_dims(n);
  for (size_t i = w.blocks.size(); i-- > 0;) {
    vision_block_recompute(w.blocks[i], a.blocks[i], a.recompute, rope_cos_, rope_sin_, dims, *tp_, scratch, s);
    vision_block_backward(w.blocks[i], g.blocks[i], a.blocks[i], dstream, rope_cos_, rope_sin_, dims, *tp_, scratch, s);
  }
  Tensor dx_pre = dstream;
  if (config_.pre_norm) {
    dx_pre = scratch.alloc(dout.shape(), dout.dtype());
    w.norm_pre.backward(dx_pre, g.norm_pre, dstream, a.x_pre, a.mean_pre, a.rstd_pre, s);
  }
  if (g.pos_embed.defined()) sum_rows(g.pos_embed.reshape({seq * d}), dx_pre.reshape({n, seq * d}), true, s);
  const Tensor dembedded = scratch.alloc({n * num_patches, d}, dout.dtype());
  for (int64_t t = 0; t < n; ++t) {
    const Tensor tile = dx_pre.select(0, t);
    if (prefix > 0 && g.cls_token.defined()) add(g.cls_token, g.cls_token, tile.slice(0, 0, prefix), s);
    copy_tensor(dembedded.slice(0, t * num_patches, (t + 1) * num_patches), tile.slice(0, prefix, seq), s);
  }
  w.patch_embed.backward(Tensor(), g.patch_embed, dembedded, a.patches, {}, s);
  scratch.release_to(mark);
}

}  // namespace plm::model
