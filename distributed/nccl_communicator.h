// NcclCommunicator: collectives on CUDA tensors with NCCL, one rank per GPU. Created collectively over a
// CPU bootstrap communicator (MPI) that carries the ncclUniqueId. Operations are asynchronous on the
// given stream. A watchdog thread polls ncclCommGetAsyncError and the completion of the last enqueued
// operation; an error or a stall past PLM_COMM_TIMEOUT_S aborts the NCCL communicator and the job with
// a message. Tags of send/recv are not carried by NCCL: messages between a pair arrive in issue order.
// isend / irecv run on one side stream of the communicator (so they keep their posting order), each after the
// work enqueued on the caller's stream, and their wait() orders the caller's stream after them by an event.
#pragma once

#include <memory>
#include <string>

#include "distributed/communicator.h"

namespace plm::distributed {

// Collective over `bootstrap`; this rank uses CUDA device `device`.
std::unique_ptr<Communicator> nccl_communicator(Communicator& bootstrap, int device, const std::string& name);

}  // namespace plm::distributed
