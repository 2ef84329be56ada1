// A small MPI program that misbehaves on purpose, for the failure tests (comm_fault_test.sh checks each
// rank's report): with mode "die" rank 1 is killed before a collective; with "hang" rank 1 never joins it,
// waiting instead for a message rank 0 never sends; with "mismatch" rank 1 has another config.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "distributed/consistency.h"
#include "distributed/mpi_communicator.h"

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  std::unique_ptr<plm::distributed::Communicator> world = plm::distributed::mpi_world();
  float x = 1.0f;
  plm::Tensor t(&x, {1}, plm::DType::kF32);
  if (mode == "die") {
    if (world->rank() == 1) std::raise(SIGKILL);  // a crash: no atexit handlers, no MPI_Finalize
    world->all_reduce(t, plm::distributed::ReduceOp::kSum);
  } else if (mode == "hang") {
    if (world->rank() == 1) world->recv(t, 0, /*tag=*/1);
    world->all_reduce(t, plm::distributed::ReduceOp::kSum);
  } else if (mode == "mismatch") {
    const absl::Status s = plm::distributed::check_same_on_all_ranks(
        *world, "model config", world->rank() == 1 ? "num_layers=3" : "num_layers=2");
    if (!s.ok()) {
      std::fprintf(stderr, "plm rank %d: %s\n", world->rank(), std::string(s.message()).c_str());
      return 1;
    }
  } else {
    std::fprintf(stderr, "usage: comm_fault_probe die|hang|mismatch\n");
    return 2;
  }
  std::printf("rank %d finished\n", world->rank());
  return 0;
}
