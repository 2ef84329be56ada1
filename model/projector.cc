#include "model/projector.h"

#include "core/kernels/ops.h"
#include "core/status_macros.h"
#include "model/weights/hf_names.h"

namespace plm::model {

absl::StatusOr<Projector> Projector::load(const PlmConfig& config, const WeightLoader& loader) {
  Projector p;
  PLM_ASSIGN_OR_RETURN(p.linear_1_, loader.linear(projector_name("linear_1."), true));
  PLM_ASSIGN_OR_RETURN(p.linear_2_, loader.linear(projector_name("linear_2."), true));
  // spec §2.4: with vision_use_cls_token the tower's token 0 is dropped; a tower without CLS keeps all.
  p.num_prefix_tokens_ = config.vision_use_cls_token ? config.vision.num_prefix_tokens() : 0;
  p.grid_ = config.vision.grid_size();
  const int per_tile = config.tokens_per_tile();
  p.out_grid_ = config.projector_pooling_ratio > 1 ? config.vision.grid_size() / config.projector_pooling_ratio
                                                   : config.vision.grid_size();
  PLM_CHECK_EQ(p.out_grid_ * p.out_grid_, per_tile);
  return p;
}

void Projector::forward(Tensor out, Tensor vision, Tracer* tracer, Stream s) const {
  const int64_t n = vision.size(0), seq = vision.size(1), d = vision.size(2);
  const int64_t patches = seq - num_prefix_tokens_, hidden = linear_2_.out_features();
  PLM_CHECK_EQ(patches, int64_t{grid_} * grid_) << "projector input " << vision.describe();
  PLM_CHECK(out.shape() == Shape({n, int64_t{out_grid_} * out_grid_, hidden})) << "projector output " << out.describe();

  OwnedTensor features({n, patches, d}, vision.dtype(), vision.device());
  for (int64_t t = 0; t < n; ++t) {
    copy_tensor(features.view().select(0, t), vision.select(0, t).slice(0, num_prefix_tokens_, seq), s);
  }
  OwnedTensor h({n, patches, hidden}, vision.dtype(), vision.device());
  linear_1_.forward(h, features, s);
  gelu_forward(h, h, s);
  if (out_grid_ == grid_) {
    linear_2_.forward(out, h, s);
    trace(tracer, out, "projector.pre_pool");
  } else {
    OwnedTensor y({n, patches, hidden}, vision.dtype(), vision.device());
    linear_2_.forward(y, h, s);
    trace(tracer, y, "projector.pre_pool");
    adaptive_avg_pool2d_forward(out, y, grid_, out_grid_, s);
  }
  trace(tracer, out, "projector.output");
}

}  // namespace plm::model
