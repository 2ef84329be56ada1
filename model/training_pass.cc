#include "model/training_pass.h"

#include <memory>

#include "core/status_macros.h"
#include "model/stage_pass.h"

namespace plm::model {

absl::StatusOr<MicroBatchLoss> train_forward_backward(const PlmModel& model, const PlmWeights& grad,
                                                      const TrainingBatch& batch, float loss_scale,
                                                      const TrainPassOptions& options, Stream s) {
  if (model.parallel().pp_size() != 1) {
    return absl::UnimplementedError("the training pass runs on a rank holding every stage (pp = 1)");
  }
  PLM_ASSIGN_OR_RETURN(const std::unique_ptr<StagePass> pass, StagePass::create(model, batch, options.recompute));
  PLM_RETURN_IF_ERROR(pass->forward(s));
  PlmWeights any_grad = grad;
  bool trains_anything = false;
  any_grad.for_each_parameter([&](const std::string&, Tensor& t) { trains_anything |= t.defined(); });
  if (trains_anything) pass->backward(grad, loss_scale, options.gradients_final, s);  // else: a loss evaluation
  return pass->result();
}

}  // namespace plm::model
