// Status agreement: ranks that can fail at different points (one pipeline stage rejects its input while
// the next waits for its activations) exchange their status before the next blocking transfer, so every
// rank returns the same error instead of one returning and the others waiting forever.
// Cost when every rank is OK: one all-reduce of one i32 (on CUDA, staged through `device` with one stream
// sync). Only a failure adds two broadcasts (code + length, then the message).
#pragma once

#include <string>

#include "absl/status/status.h"
#include "core/device.h"
#include "distributed/communicator.h"

namespace plm::distributed {

// Collective over `comm`. OK when every rank's `local` is OK; otherwise, on every rank, the error of the
// lowest failing rank: its code and its message after "<rank_noun> <rank> of <size>: ", e.g.
// "pipeline stage 0 of 2: the prompt has 4 image placeholder tokens but ...". `device` is where the
// communicator's tensors live (CPU for MPI and in-process groups, the GPU for NCCL); `s` orders the
// exchange after the work already enqueued on it.
absl::Status agree_on_status(Communicator& comm, const absl::Status& local, const std::string& rank_noun,
                             Device device, Stream s = {});

}  // namespace plm::distributed
