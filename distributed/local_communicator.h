// LocalCommunicator: the ranks of a group are threads of one process sharing host memory. It is the
// in-process fake that multi-rank tests run on (next to real mpirun runs) and needs no MPI.
// CPU tensors only. Every collective is two barrier phases: post inputs, compute own result, release.
// A blocking operation that outlasts $PLM_COMM_TIMEOUT_S (default 300 s) aborts the process with the
// operation, group and rank named (distributed/watchdog.h), as a stalled MPI or NCCL operation ends the job:
// a rank that returns early (a failed ASSERT) fails the test instead of leaving the others blocked.
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
