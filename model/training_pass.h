// One micro-batch of training on a rank that holds every stage (pp = 1; a pipeline schedule would call the same
// stage pieces): vision tower + projector for the media (skipped when the micro-batch has none), embedding + media
// scatter, decoder layers with saved activations, the vocab-chunked loss, and the backward into gradient views
// (+=). Frozen parts have undefined gradient tensors and get no backward; the backward stops as early as nothing
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

namespace plm::model {

inline constexpr int32_t kIgnoreTarget = -100;

struct TrainingBatch {
  std::vector<int32_t> ids;      // (T) the micro-batch's sequences, packed
  std::vector<int32_t> targets;  // (T) the next token where it is labelled, else kIgnoreTarget
  std::vector<int64_t> lengths;  // tokens per sequence, adding up to T; each starts at position 0
  Tensor image_pixels;           // (tiles of every image, 3, img, img) in placeholder order, or undefined
  Tensor video_pixels;           // (frames of every video, 3, img, img), or undefined
  // One key per sequence for the LoRA dropout masks (model/lora.h lora_dropout_key: seed, step and the
  // sample's index in the step); required when the model's adapters have dropout, ignored otherwise.
  std::vector<uint64_t> lora_dropout_keys;
};

struct MicroBatchLoss {
  double loss_sum = 0.0;        // sum of the per-token cross-entropies (f32 each, summed in double)
  int64_t labelled_tokens = 0;  // targets that are not kIgnoreTarget
  int64_t vision_tiles = 0;     // tiles + frames run through the tower (0: no ViT pass)
  size_t arena_bytes = 0;       // activation + scratch memory of this micro-batch (the arena's peak)
};

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
