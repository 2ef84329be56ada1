// Communication volume per rank, per axis, keyed like distributed::CountingCommunicator: the payload bytes
// each operation hands to the communicator ("all_reduce" n bytes for an n-byte tensor, "all_gather" its input,
// "reduce_scatter" its input, "send"/"recv"/"broadcast" the tensor), and the bytes a ring moves per rank
// for them (spec/anchors_training.md §2.5-2.6: all-reduce 2 (p - 1) / p of its payload, reduce-scatter
// (p - 1) / p, all-gather (p - 1) x its input shard; point-to-point and broadcast their payload).
//   training, per optimizer step:
//     DP   the gradient sum: all-reduce of every gradient (ZeRO-0/1) or reduce-scatter (ZeRO-2); ZeRO-1/2
//          all-gather the updated parameters from each rank's shard (trainer/data_parallel_step.h)
//     TP   per micro-batch and decoder layer: 2 all-reduces of (T, H) forward (after o_proj and down_proj) and
//          2 backward (copy_to_tp), 2 more when full recomputation reruns the forward; the vocab-parallel
//          embedding's forward all-reduce (first stage); the LM head input's backward all-reduce and the
//          vocab-parallel loss's 3 f32 all-reduces of (T) (last stage); the vision tower's 2 per block, like
//          the decoder's, when it splits over TP
//     PP   per micro-batch, (T, H) activations to the next stage and their gradient back (1F1B)
//   one inference forward (what plm's TP/PP generate and serve run today; tests/plan/ counts it):
//     TP   2 all-reduces of (T, H) per layer + the embedding's, 2 per vision block when the tower splits;
//          the last stage all-gathers its vocabulary shard of the wanted rows' logits
//     PP   (T, H) to the next stage; the last stage broadcasts the rows' f32 logits; one i32 all-reduce
//          (the stages agree on the batch's status, distributed/status_agreement.h)
// Size-1 axes have no traffic. Not counted: the DP step's scalar reductions (token counts, loss, status), and under
// pp > 1 the exchange of a tied embedding's gradient between the first and the last stage.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "model/config.h"
#include "plan/memory_model.h"
#include "plan/stage_parameters.h"

namespace plm::plan {

// Payload bytes by operation name, as distributed::CountingCommunicator::bytes() reports them.
using Payload = std::map<std::string, int64_t>;

struct AxisTraffic {
  Payload payload = {};
  double wire_bytes = 0.0;  // what the ring moves out of this rank for those payloads
};

// Ring traffic per rank of `payload` in a group of `group_size`.
double wire_bytes(const Payload& payload, int group_size);

struct Traffic {
  AxisTraffic tp = {}, pp = {}, dp = {};
};

// One optimizer step of training on a rank of `stage` (TP rank 0).
Traffic training_traffic(const model::PlmConfig& config, const TrainingSetup& setup, int stage);

// One inference forward of `tokens` tokens, `rows` of them returning logits and `tiles` tiles through the
// tower, on a rank of `stage` under tp x pp (no DP traffic).
Traffic forward_traffic(const model::PlmConfig& config, int tp, int pp, int stage, int64_t tokens, int64_t rows,
                        int64_t tiles, DType dtype);

}  // namespace plm::plan
