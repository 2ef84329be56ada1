#include "model/vision/vision_tower.h"

#include "core/kernels/ops.h"
#include "core/kernels/rope_tables.h"
#include "core/status_macros.h"
#include "distributed/tp_regions.h"
#include "model/weights/hf_names.h"

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
  tower.tp_ = tp != nullptr && tp->size() > 1 ? tp : nullptr;
  const int t = tower.tp_ ? tp->size() : 1, r = tower.tp_ ? tp->rank() : 0;
  tower.local_heads_ = config.num_heads / t;
  const int64_t d = config.embed_dim, p = config.patch_size;
  PLM_ASSIGN_OR_RETURN(tower.patch_embed_, loader.linear(vision_name("patch_embed.proj."), !config.pre_norm));
  tower.patch_embed_.weight.reshape({d, 3 * p * p});
  if (config.class_token) {
    PLM_ASSIGN_OR_RETURN(tower.cls_token_, loader.tensor(vision_name("cls_token")));
    tower.cls_token_.reshape({1, d});
  }
  PLM_ASSIGN_OR_RETURN(tower.pos_embed_, loader.tensor(vision_name("pos_embed")));
  tower.pos_embed_.reshape({config.seq_len(), d});
  if (config.pre_norm) {
    PLM_ASSIGN_OR_RETURN(tower.norm_pre_, load_layernorm(loader, vision_name("norm_pre."), config.norm_eps));
  }
  if (config.post_norm) {
    PLM_ASSIGN_OR_RETURN(tower.norm_post_, load_layernorm(loader, vision_name("norm."), config.norm_eps));
  }
  for (int i = 0; i < config.depth; ++i) {
    VisionBlock b;
    const auto name = [i](const std::string& suffix) { return vision_block_name(i, suffix); };
    PLM_ASSIGN_OR_RETURN(b.norm1, load_layernorm(loader, name("norm1."), config.norm_eps));
    PLM_ASSIGN_OR_RETURN(b.norm2, load_layernorm(loader, name("norm2."), config.norm_eps));
    // The fused qkv rows are [q | k | v]: this rank's heads are parts r, t + r and 2t + r of 3t.
    PLM_ASSIGN_OR_RETURN(b.q, loader.linear_part(name("attn.qkv."), 0, r, 3 * t, true));
    PLM_ASSIGN_OR_RETURN(b.k, loader.linear_part(name("attn.qkv."), 0, t + r, 3 * t, true));
    PLM_ASSIGN_OR_RETURN(b.v, loader.linear_part(name("attn.qkv."), 0, 2 * t + r, 3 * t, true));
    PLM_ASSIGN_OR_RETURN(b.proj, loader.linear_part(name("attn.proj."), 1, r, t, true, r == 0));
    PLM_ASSIGN_OR_RETURN(b.fc1, loader.linear_part(name("mlp.fc1."), 0, r, t, true));
    PLM_ASSIGN_OR_RETURN(b.fc2, loader.linear_part(name("mlp.fc2."), 1, r, t, true, r == 0));
    if (config.layer_scale()) {
      PLM_ASSIGN_OR_RETURN(b.gamma1, loader.tensor(name("gamma_1")));
      PLM_ASSIGN_OR_RETURN(b.gamma2, loader.tensor(name("gamma_2")));
    }
    tower.blocks_.push_back(std::move(b));
  }
  const VisionRopeTable rope =
      vision_rope_table(config.grid_size(), config.head_dim(), config.rope_theta,
                        static_cast<float>(config.rope_grid_offset), config.ref_feat_shape[0]);
  tower.rope_cos_ = table_tensor(rope.cos, rope.num_patches, rope.half_dim, loader.device());
  tower.rope_sin_ = table_tensor(rope.sin, rope.num_patches, rope.half_dim, loader.device());
  return tower;
}

void VisionTower::forward(Tensor out, Tensor pixels, Tracer* tracer, Stream s) const {
  const int64_t n = pixels.size(0), d = config_.embed_dim, p = config_.patch_size;
  const int64_t num_patches = config_.num_patches(), seq = config_.seq_len(), prefix = config_.num_prefix_tokens();
  PLM_CHECK(out.shape() == Shape({n, seq, d})) << "vision tower output " << out.describe() << " for " << n << " tiles";
  PLM_CHECK(pixels.size(2) == config_.img_size && pixels.size(3) == config_.img_size)
      << "vision tower takes " << config_.img_size << "x" << config_.img_size << " tiles, got " << pixels.describe();

  OwnedTensor patches({n * num_patches, 3 * p * p}, pixels.dtype(), pixels.device());
  im2col_patches(patches, pixels, static_cast<int>(p), s);
  OwnedTensor embedded({n * num_patches, d}, out.dtype(), out.device());
  patch_embed_.forward(embedded, patches, s);
  trace(tracer, embedded.view().reshape({n, num_patches, d}), "vision.patch_embed");

  OwnedTensor x({n, seq, d}, out.dtype(), out.device());
  for (int64_t t = 0; t < n; ++t) {
    const Tensor tile = x.view().select(0, t);  // (seq, d)
    if (prefix > 0) copy_tensor(tile.slice(0, 0, prefix), cls_token_, s);
    copy_tensor(tile.slice(0, prefix, seq), embedded.view().slice(0, t * num_patches, (t + 1) * num_patches), s);
    add(tile, tile, pos_embed_, s);
  }
  if (config_.pre_norm) {
    norm_pre_.forward(out, x, s);
    copy_tensor(x, out, s);
  }
  trace(tracer, x, "vision.norm_pre");
  for (size_t i = 0; i < blocks_.size(); ++i) {
    block_forward(blocks_[i], x, n, s);
    trace(tracer, x, "vision.blocks", static_cast<int>(i));
  }
  if (config_.post_norm) {
    norm_post_.forward(out, x, s);
  } else {
    copy_tensor(out, x, s);
  }
  trace(tracer, out, "vision.last_hidden_state");
}

// x: (n, seq, d), updated in place (the residual stream).
void VisionTower::block_forward(const VisionBlock& b, Tensor x, int64_t n, Stream s) const {
  const int64_t d = config_.embed_dim, seq = config_.seq_len(), heads = local_heads_;
  const int64_t head_dim = config_.head_dim(), m = b.fc1.out_features();
  const DType dtype = x.dtype();
  const Device device = x.device();
  const Shape head_shape{n, seq, heads, head_dim};

  OwnedTensor h({n, seq, d}, dtype, device);
  OwnedTensor q(head_shape, dtype, device), k(head_shape, dtype, device), v(head_shape, dtype, device);
  OwnedTensor q_rot(head_shape, dtype, device), k_rot(head_shape, dtype, device);
  OwnedTensor attn(head_shape, dtype, device), y({n, seq, d}, dtype, device);

  b.norm1.forward(h, x, s);
  b.q.forward(q, h, s);
  b.k.forward(k, h, s);
  b.v.forward(v, h, s);
  const int prefix = config_.num_prefix_tokens();
  vision_rope_forward(q_rot, q, rope_cos_, rope_sin_, prefix, s);
  vision_rope_forward(k_rot, k, rope_cos_, rope_sin_, prefix, s);
  attention_forward(attn, Tensor(), q_rot, k_rot, v, {.causal = false}, s);
  b.proj.forward(y, attn, s);
  if (tp_) distributed::reduce_from_tp_forward(y, *tp_, s);
  if (config_.layer_scale()) mul_rowwise(y.view().as_matrix(), y.view().as_matrix(), b.gamma1, s);
  add(x, x, y, s);

  OwnedTensor hidden({n, seq, m}, dtype, device);
  b.norm2.forward(h, x, s);
  b.fc1.forward(hidden, h, s);
  gelu_forward(hidden, hidden, s);
  b.fc2.forward(y, hidden, s);
  if (tp_) distributed::reduce_from_tp_forward(y, *tp_, s);
  if (config_.layer_scale()) mul_rowwise(y.view().as_matrix(), y.view().as_matrix(), b.gamma2, s);
  add(x, x, y, s);
}

}  // namespace plm::model
