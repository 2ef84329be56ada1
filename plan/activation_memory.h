// Activation memory of one micro-batch on one rank, in closed form from the config, as model/training_pass.cc
// lays it out in its arena: the tiers of model/recompute.h per decoder layer and vision block (what a
// recomputation policy keeps per block and what goes to the one workspace all blocks share), the loss head's
// tensors, and the largest scratch of one backward phase (loss head, a decoder layer, the media); beside the
// arena, the loss's vocab chunk of logits (core/kernels/linear_cross_entropy.h). `saved` lives from a
// micro-batch's forward to its backward, so a pipeline stage holding k micro-batches in flight holds k of it;
// `transient` is needed once. The logits chunk is counted on top although it is freed before the layers'
// backward runs (an overestimate by at most the smaller of the two).
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "model/config.h"
#include "model/recompute.h"
#include "plan/stage_parameters.h"

namespace plm::plan {

// One micro-batch: its packed tokens (image placeholders included) and the tiles + frames through the tower.
struct MicroBatchShape {
  int64_t tokens = 0;
  int64_t tiles = 0;
};

struct ActivationMemory {
  int64_t decoder_saved = 0;   // this stage's layers: what the policy keeps per layer, plus the stack input
  int64_t media_saved = 0;     // vision tower + projector activations and the tower output (first stage)
  int64_t head_saved = 0;      // final norm input and output, loss statistics (last stage)
  int64_t workspace = 0;       // the layers' shared workspace (+ the vision blocks')
  int64_t backward_scratch = 0;  // dx and the largest backward phase's temporaries
  int64_t loss_logits = 0;     // (T, vocab chunk) outside the arena (last stage)
  int64_t saved() const { return decoder_saved + media_saved + head_saved; }
  int64_t transient() const { return workspace + backward_scratch + loss_logits; }
  int64_t arena(int in_flight) const { return total(in_flight) - loss_logits; }  // what training_pass's arena holds
  int64_t total(int in_flight) const { return in_flight * saved() + transient(); }
};

// Training (forward + backward) activations of `stage` under tp for one micro-batch.
ActivationMemory training_activations(const model::PlmConfig& config, const StageParameters& stage, int tp,
                                      const MicroBatchShape& batch, model::Recompute recompute, DType dtype);

// Inference working memory of one engine step of `tokens` tokens returning `rows` logits rows (a prefill chunk
// or a decode batch): one layer's intermediates (layers run one after the other), the hidden state, the rows'
// f32 logits, and the tower's activations for `tiles` tiles on the first stage.
int64_t inference_activation_bytes(const model::PlmConfig& config, const StageParameters& stage, int tp,
                                   int64_t tokens, int64_t rows, int64_t tiles, DType dtype);

}  // namespace plm::plan
