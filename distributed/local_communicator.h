// LocalCommunicator: the ranks of a group are threads of one process sharing host memory. It is the
// in-process fake that multi-rank tests run on (next to real mpirun runs) and needs no MPI.
// CPU tensors only. Every collective is two barrier phases: post inputs, compute own result, release.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "distributed/communicator.h"

namespace plm::distributed {

// n communicators forming one group ("world"); hand communicator r to the thread playing rank r.
std::vector<std::unique_ptr<Communicator>> make_local_communicators(int n);

// Runs fn(comm) on n threads, one per rank, and joins them.
void run_local_ranks(int n, const std::function<void(Communicator&)>& fn);

}  // namespace plm::distributed
