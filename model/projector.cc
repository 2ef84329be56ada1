#include "model/projector.h"

#include "core/kernels/ops.h"
#include "core/status_macros.h"

namespace plm::model {

absl::StatusOr<Projector> Projector::load(const PlmConfig& config, const WeightLoader& loader) {
  Projector p;
  PLM_ASSIGN_OR_RETURN(p.weights_.linear_1, loader.linear(projector_name("linear_1."), true));
  PLM_ASSIGN_OR_RETURN(p.weights_.linear_2, loader.linear(projector_name("linear_2."), true));
  // spec §2.4: with vision_use_cls_token the tower's token 0 is dropped; a tower without CLS keeps all.
  p.num_prefix_tokens_ = config.vision_use_cls_token ? config.vision.num_prefix_tokens() : 0;
  p.grid_ = config.vision.grid_size();
  const int per_tile = config.tokens_per_tile();
  p.out_grid_ = config.projector_pooling_ratio > 1 ? config.vision.grid_size() / config.projector_pooling_ratio
                                                   : config.vision.grid_size();
  PLM_CHECK_EQ(p.out_grid_ * p.out_grid_, per_tile);
  return p;
}

template <typename Alloc>
ProjectorActivations Projector::allocate(Alloc& alloc, int64_t n, int64_t embed_dim, DType dtype) const {
  const int64_t patches = int64_t{grid_} * grid_, hidden = weights_.linear_2.out_features();
  ProjectorActivations a;
  a.features = alloc.alloc({n, patches, embed_dim}, dtype);
  a.pre_gelu = alloc.alloc({n, patches, hidden}, dtype);
  a.hidden = alloc.alloc({n, patches, hidden}, dtype);
  if (out_grid_ != grid_) a.y = alloc.alloc({n, patches, hidden}, dtype);
  return a;
}

void Projector::forward(Tensor out, Tensor vision, Tracer* tracer, Stream s) const {
  ArenaSizer sizer;
  allocate(sizer, vision.size(0), vision.size(2), vision.dtype());
  Arena arena(sizer.bytes(), vision.device());
  run(out, vision, allocate(arena, vision.size(0), vision.size(2), vision.dtype()), tracer, s);
}

ProjectorActivations Projector::forward_train(Arena& arena, Tensor out, Tensor vision, Stream s) const {
  ProjectorActivations a = allocate(arena, vision.size(0), vision.size(2), vision.dtype());
  run(out, vision, a, nullptr, s);
  return a;
}

size_t Projector::activation_bytes(int64_t tiles, int64_t embed_dim, DType dtype) const {
  ArenaSizer sizer;
  allocate(sizer, tiles, embed_dim, dtype);
  return sizer.bytes();
}

void Projector::run(Tensor out, Tensor vision, const ProjectorActivations& a, Tracer* tracer, Stream s) const {
  const int64_t n = vision.size(0), seq = vision.size(1);
  const int64_t patches = seq - num_prefix_tokens_, hidden = weights_.linear_2.out_features();
  PLM_CHECK_EQ(patches, int64_t{grid_} * grid_) << "projector input " << vision.describe();
  PLM_CHECK(out.shape() == Shape({n, int64_t{out_grid_} * out_grid_, hidden})) << "projector output " << out.describe();
  for (int64_t t = 0; t < n; ++t) {
    copy_tensor(a.features.select(0, t), vision.select(0, t).slice(0, num_prefix_tokens_, seq), s);
  }
  weights_.linear_1.forward(a.pre_gelu, a.features, s);
  gelu_forward(a.hidden, a.pre_gelu, s);
  if (out_grid_ == grid_) {
    weights_.linear_2.forward(out, a.hidden, s);
    trace(tracer, out, "projector.pre_pool");
  } else {
    weights_.linear_2.forward(a.y, a.hidden, s);
    trace(tracer, a.y, "projector.pre_pool");
    adaptive_avg_pool2d_forward(out, a.y, grid_, out_grid_, s);
  }
  trace(tracer, out, "projector.output");
}

void Projector::backward(const ProjectorWeights& g, const ProjectorActivations& a, Tensor dvision, Tensor dout,
                         Arena& scratch, Stream s) const {
  const size_t mark = scratch.mark();
  Tensor dy = dout;
  if (out_grid_ != grid_) {
    dy = scratch.alloc(a.pre_gelu.shape(), dout.dtype());
    adaptive_avg_pool2d_backward(dy, dout, grid_, out_grid_, s);
  }
  const Tensor dhidden = scratch.alloc(a.hidden.shape(), dout.dtype());
  weights_.linear_2.backward(dhidden, g.linear_2, dy, a.hidden, {}, s);
  gelu_backward(dhidden, dhidden, a.pre_gelu, s);
  const Tensor dfeatures = dvision.defined() ? scratch.alloc(a.features.shape(), dout.dtype()) : Tensor();
  weights_.linear_1.backward(dfeatures, g.linear_1, dhidden, a.features, {}, s);
  if (dvision.defined()) {
    const int64_t n = dvision.size(0), seq = dvision.size(1);
    for (int64_t t = 0; t < n; ++t) {
      if (num_prefix_tokens_ > 0) fill(dvision.select(0, t).slice(0, 0, num_prefix_tokens_), 0.0f, s);
      copy_tensor(dvision.select(0, t).slice(0, num_prefix_tokens_, seq), dfeatures.select(0, t), s);
    }
  }
  scratch.release_to(mark);
}

}  // namespace plm::model
