// A tied LM head under pipeline parallelism: the first stage holds embed_tokens, the last stage a copy of it as its
// head (model/text/llama_decoder.h lm_head_copies_embedding; both go by the embedding's name). As in Megatron's
// embedding group, the two copies' gradients are summed between the pair of ranks holding them (same TP and DP
// index) before the data-parallel reduction, so both take the same update and stay equal; the grad norm counts the
// first stage's copy only.
#pragma once

#include <memory>

#include "distributed/communicator.h"
#include "distributed/parallel_dims.h"

namespace plm::trainer {

// Collective over `world` when dims.pp > 1 and the head is tied: the pair of this rank's first- and last-stage
// ranks, or a group of this rank alone on the stages between. Null otherwise (nothing to sum).
std::unique_ptr<distributed::Communicator> tied_embedding_group(distributed::Communicator& world,
                                                                const distributed::ParallelDims& dims, bool tied);

}  // namespace plm::trainer
