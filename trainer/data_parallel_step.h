// One optimizer step of data-parallel training with ZeRO: every rank runs its micro-batches (forward +
// backward, model/training_pass.h) into one flat gradient buffer, the gradients are summed over the DP
// group (all-reduce for ZeRO-0/1, reduce-scatter for ZeRO-2), the global grad norm is computed once, the
// clip coefficient min(1, clip / (norm + 1e-6)) scales them, and AdamW updates this rank's shard of the
// fp32 master weights, after which the working parameters are all-gathered (ZeRO-1/2). The reduction runs in
// buckets while the last micro-batch's backward is still producing earlier gradients (CPU; trainer/gradient_reducer.h).
// The loss is normalised by the labelled tokens of the whole step on all ranks, so any DP / micro-batch
// split gives the same update. The model's trainable parameters are moved into one flat buffer (their
// views rebound), which the all-gather fills directly. Collective over the DP group; not thread-safe.
// Under tensor parallelism (the model's TP group, model/parallel.h) each TP rank runs this step on its shard with
// the DP group of its TP index (ranks holding the same shard): the flat buffer, the ZeRO shards and the reductions
// are per TP rank. The grad norm counts each element of the whole model once: a TP-split tensor on every rank, a
// tensor several TP ranks hold alike (norms, biases, a replicated tower or KV head) on the first of them only
// (Megatron's param_is_not_tensor_parallel_duplicate), the squares summed over DP (ZeRO-2) and over TP.
// Under pipeline parallelism (the model's PP group) each stage runs the step's micro-batches through the 1F1B
// schedule (trainer/pipeline_schedule.h) into its own flat buffer and shards; a tied head's two copies have their
// gradients summed first (trainer/tied_embedding.h); the squares of the grad norm are summed over the stages too,
// and the loss comes from the last stage. The DP group is then the ranks of the same TP index and stage.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "distributed/communicator.h"
#include "model/flat_parameters.h"
#include "model/plm_model.h"
#include "model/training_pass.h"
#include "trainer/adamw_zero.h"
#include "trainer/pipeline_schedule.h"

namespace plm::trainer {

struct StepStats {
  double loss = 0.0;            // sum of token losses / labelled tokens, over the whole step
  double grad_norm = 0.0;       // before clipping
  double clip_coef = 1.0;
  int64_t tokens = 0;           // tokens of the step on all ranks
  int64_t labelled_tokens = 0;  // on all ranks
  int64_t vision_tiles = 0;     // tiles + frames through the ViT on this rank
  int vision_passes = 0;        // micro-batches that ran the ViT on this rank (none without media)
  size_t peak_arena_bytes = 0;  // this rank's largest micro-batch activation memory
  PipelineStats pipeline;       // this rank's stage: compute per modality, transfer time, micro-batches in flight
};

struct DataParallelConfig {
  int zero_stage = 0;  // 0, 1 or 2
  AdamWConfig adamw;
  float grad_clip = 1.0f;  // <= 0: no clipping
  model::Recompute recompute = model::Recompute::kNone;  // activation recomputation per block
  // Gradient reduction buckets (trainer/gradient_reducer.h): reduced while the step's last backward runs.
  int64_t bucket_elements = int64_t{4} << 20;
};

class DataParallelStep {
 public:
  // trainable(hf_name): whether a parameter trains (frozen ones get no gradient, state or decay). tied_embedding:
  // trainer/tied_embedding.h's group (pp > 1 with a tied head), else null.
  DataParallelStep(model::PlmModel& model, distributed::Communicator& dp, const DataParallelConfig& config,
                   const std::function<bool(const std::string&)>& trainable,
                   distributed::Communicator* tied_embedding = nullptr);
  DataParallelStep(const DataParallelStep&) = delete;
  DataParallelStep& operator=(const DataParallelStep&) = delete;

  // micro_batches: this rank's share of the step. lr: this step's learning rate.
  absl::StatusOr<StepStats> step(const std::vector<model::TrainingBatch>& micro_batches, float lr, Stream s = {});

  const model::FlatParameters& params() const { return *params_; }
  const model::FlatParameters& grads() const { return *grads_; }
  ShardedAdamW& optimizer() { return *optimizer_; }
  const ShardedAdamW& optimizer() const { return *optimizer_; }
  int zero_stage() const { return config_.zero_stage; }
  const model::PlmModel& model() const { return model_; }
  distributed::Communicator& dp() const { return dp_; }
  int64_t num_trainable() const { return params_->numel(); }

 private:
  // The lowest flat offset of the trainable parameters whose names start with `prefix`, or none.
  std::optional<int64_t> first_offset(const std::string& prefix) const;
  // The squared L2 norm of the step's gradient over the whole model (each element once).
  double squared_grad_norm(const Range& shard, Stream s) const;

  model::PlmModel& model_;
  distributed::Communicator& dp_;
  distributed::Communicator* tied_embedding_;  // null, or the pair of ranks holding the tied embedding's copies
  DataParallelConfig config_;
  std::unique_ptr<model::FlatParameters> params_;  // working parameters (the model's views point here)
  std::unique_ptr<model::FlatParameters> grads_;
  std::unique_ptr<ShardedAdamW> optimizer_;
  std::vector<Range> norm_ranges_;  // the flat ranges this TP rank counts in the grad norm, in order
};

}  // namespace plm::trainer
