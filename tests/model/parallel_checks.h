// TP x PP checks of the PLM model written against the Communicator interface, so the same bodies run on
// in-process ranks (LocalCommunicator threads) and under mpirun: every layout must give the single-rank
// logits (within 1e-5 relative) and the same greedy tokens as HF's fixtures.
#pragma once

#include <string>
#include <vector>

#include "distributed/communicator.h"

namespace plm::model::testing {

// Loads tests/fixtures/models/<model_dir> as a tp x pp layout over `world` and runs the <input> case
// (image | video | text), with the decoder layers split as stage_layer_counts says (empty: the even split).
// Returns "" on success, else what differed (on this rank). `max_relative_diff` receives the measured
// relative logit difference.
std::string check_parallel_model(distributed::Communicator& world, const std::string& model_dir,
                                 const std::string& input, int tp, int pp, double* max_relative_diff,
                                 const std::vector<int>& stage_layer_counts = {});

}  // namespace plm::model::testing
