// StagePass: one micro-batch of training on this rank's pipeline stage (model/parallel.h), split into a forward
// and a backward that a pipeline schedule calls at different times (trainer/pipeline_schedule.h). The pass owns
// the micro-batch's activations (one arena) from forward() until it is destroyed; the schedule owns the pass, the
// transfers between stages and the order. First stage: vision tower + projector for the media (none when the
// micro-batch has none), embedding + media scatter. Every stage: its decoder layers. Last stage: the vocab-chunked
// loss. A rank holding every stage (pp = 1) runs forward() then backward() (model/training_pass.h).
// Gradient rule: parameter gradients +=, activation gradients (=) in the pass's own buffers.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/arena.h"
#include "core/tensor.h"
#include "model/plm_model.h"
#include "model/recompute.h"
#include "model/text/llama_decoder.h"
#include "model/training_batch.h"

namespace plm::model {

class StagePass {
 public:
  // Whether this stage can run the micro-batch: ids, targets and lengths agree, on the first stage the media fill
  // their placeholders, LoRA dropout has a key per sequence. After it, forward() does not fail.
  static absl::Status check(const PlmModel& model, const TrainingBatch& batch);
  // check(), then sizes the arena for this stage's share of the micro-batch. Nothing runs yet.
  static absl::StatusOr<std::unique_ptr<StagePass>> create(const PlmModel& model, const TrainingBatch& batch,
                                                           Recompute recompute);
  StagePass(const StagePass&) = delete;
  StagePass& operator=(const StagePass&) = delete;

  // (T, H) the stage's input: a later stage receives the previous stage's output into it before forward().
  Tensor input() const { return x_; }
  // Runs the stage. After it, input() holds the stage's output (the layers run in place): what a stage that is not
  // the last sends on; the last stage has the micro-batch's loss in result().
  absl::Status forward(Stream s = {});
  // (T, H) d(loss)/d(output): a stage that is not the last receives it into this buffer before backward().
  Tensor output_grad() const { return dx_; }
  // loss_scale: d(step loss)/d(each token's loss) (last stage). Parameter gradients += into `grad`; after it
  // output_grad() holds d(loss)/d(input), what a stage that is not the first sends back. final(prefix): as
  // TrainPassOptions::gradients_final. With no defined gradient tensor in `grad`, nothing runs.
  void backward(const PlmWeights& grad, float loss_scale, const std::function<void(const std::string&)>& final,
                Stream s = {});

  const MicroBatchLoss& result() const { return result_; }

 private:
  // One kind of media (images or videos) through tower + projector, with what its backward needs.
  struct MediaPass {
    OwnedTensor input;  // (n, 3, img, img) in the model's dtype
    Tensor tower_out;   // (n, S, D)
    Tensor rows;        // (n, tokens_per_tile, H)
    VisionActivations vision;
    ProjectorActivations projector;
  };

  StagePass(const PlmModel& model, const TrainingBatch& batch, Recompute recompute, size_t arena_bytes);
  absl::Status forward_media(Stream s);
  static bool media_trainable(const PlmWeights& grad) {
    return grad.vision.pos_embed.defined() || grad.projector.linear_1.weight.defined();
  }
  // The media rows' gradient (=), taken from output_grad()'s placeholder rows, which are then zeroed.
  MediaEmbeddings media_grad(const PlmWeights& grad, Stream s);
  // Projector and tower backward from the media rows' gradient.
  void backward_media(const PlmWeights& grad, const MediaEmbeddings& dmedia, Stream s);

  const PlmModel& model_;
  const TrainingBatch& batch_;
  const Recompute recompute_;
  Arena arena_;
  MediaPass media_[2];     // images, videos (first stage)
  OwnedTensor ids_, positions_, row_keys_;  // (T) on the device; row_keys_ undefined without dropout
  OwnedTensor labelled_rows_, targets_;     // (N) the labelled rows and their next-token ids (last stage)
  PackedCausalAttention attention_;
  Tensor x_;               // (T, H) input, then output of the stage's layers
  Tensor dx_;              // (T, H) output gradient, then input gradient
  DecoderActivations acts_;
  HeadActivations head_;   // last stage
  MicroBatchLoss result_;
};

}  // namespace plm::model
