// The TP x PP model checks under mpirun (ctest runs it with -n 2 and -n 4): the layout comes from the
// command line, e.g. `parallel_model_mpi_test cls_tied image 2 2`. Every rank prints its result; any
// failing rank exits non-zero.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "distributed/mpi_communicator.h"
#include "tests/model/parallel_checks.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s MODEL_DIR INPUT TP PP\n", argv[0]);
    return 2;
  }
  std::unique_ptr<plm::distributed::Communicator> world = plm::distributed::mpi_world();
  double diff = 0.0;
  const std::string error = plm::model::testing::check_parallel_model(*world, argv[1], argv[2], std::atoi(argv[3]),
                                                                      std::atoi(argv[4]), &diff);
  if (!error.empty()) {
    std::fprintf(stderr, "rank %d: FAILED: %s\n", world->rank(), error.c_str());
    return 1;
  }
  std::printf("rank %d: OK (max relative logit diff %.3g)\n", world->rank(), diff);
  world->barrier();
  return 0;
}
