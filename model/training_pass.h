// One micro-batch of training on a rank that holds every stage (pp = 1; a pipeline schedule calls the same stage
// pieces, model/stage_pass.h, at different times): vision tower + projector for the media (skipped when the
// micro-batch has none), embedding + media scatter, decoder layers with saved activations, the vocab-chunked loss,
// and the backward into gradient views (+=). Frozen parts have undefined gradient tensors and get no backward; the backward stops as early as nothing
// upstream is trainable.
// Under tensor parallelism every rank of the TP group runs the same micro-batch on its shard (collective over the
// group): the split layers communicate through their TP regions, the loss is vocab-parallel, and the gradients of
// what every rank holds whole (norms, LayerScale, row-parallel biases, the projector, a replicated vision tower,
// the patch and position embeddings) come out the same on every rank, from the same all-reduced inputs and output
// gradients, so they need no reduction over TP. A KV head replicated over several ranks has its gradient summed
// over its replicas inside the layer's backward (model/text/decoder_layer.h).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "model/plm_model.h"
#include "model/recompute.h"
#include "model/training_batch.h"

namespace plm::model {

struct TrainPassOptions {
  // Activation recomputation of every decoder layer and vision block (model/recompute.h); the gradients are
  // the same bitwise whatever the policy, only the activation memory and the compute differ.
  Recompute recompute = Recompute::kNone;
  // When set, called as the backward finishes parameter gradients, with the HF-name prefix of what is final
  // (nothing under it is written again by this pass): the LM head and the final norm, each decoder layer from the
  // last, the embedding, the projector, the vision tower — the reverse of for_each_parameter's order. A data-
  // parallel step reduces finished gradients while the backward goes on (trainer/gradient_reducer.h).
  std::function<void(const std::string& prefix)> gradients_final = nullptr;
};

// loss_scale: d(step loss)/d(each token's loss), i.e. 1 / (labelled tokens of the whole optimizer step),
// so every split of the step into micro-batches and ranks gives the same gradients. With no defined gradient
// tensor at all it only evaluates the loss.
absl::StatusOr<MicroBatchLoss> train_forward_backward(const PlmModel& model, const PlmWeights& grad,
                                                      const TrainingBatch& batch, float loss_scale,
                                                      const TrainPassOptions& options = {}, Stream s = {});

}  // namespace plm::model
