// Collective checks written once against the Communicator interface with rank-dependent values, so the
// same bodies run on the in-process LocalCommunicator (threads) and under mpirun on MpiCommunicator.
// Each returns a description of the first mismatch, or "" when everything matched.
#pragma once

#include <string>

#include "distributed/communicator.h"

namespace plm::distributed::testing {

std::string check_all_reduce(Communicator& comm);      // sum / avg / max; f32, bf16, i32; odd lengths
std::string check_all_gather(Communicator& comm);      // equal and uneven counts (rank r gives r + 1)
std::string check_reduce_scatter(Communicator& comm);  // equal and uneven counts
std::string check_broadcast(Communicator& comm);       // from the last rank
std::string check_send_recv(Communicator& comm);       // a ring, two tags in flight
std::string check_isend_irecv(Communicator& comm);  // partners trade tensors by isend / irecv, posting order
std::string check_polled_transfers(Communicator& comm);  // isend / irecv polled by done() around a ring; one abandoned
std::string check_process_groups(Communicator& world, int tp, int pp);  // membership of tp/pp/dp groups
std::string check_status_agreement(Communicator& comm);  // none, the last, every odd rank fail; empty message

}  // namespace plm::distributed::testing
