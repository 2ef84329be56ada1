// Start-up agreement checks: every rank must run with the same configuration (model config, parallel
// layout, flags). A rank launched with a different one would otherwise hang or silently diverge.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "distributed/communicator.h"

namespace plm::distributed {

// Collective. Returns OK when every rank passed the same `value`; otherwise, on every rank, an error
// naming `what` and the ranks that disagree with rank 0.
absl::Status check_same_on_all_ranks(Communicator& comm, const std::string& what, const std::string& value);

}  // namespace plm::distributed
