#include "runtime/cpu_threads.h"

#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "distributed/launch_env.h"

namespace plm::runtime {

int threads_per_rank(int affinity_cpus, int online_cpus, int local_ranks) {
  if (affinity_cpus < online_cpus) return std::max(1, affinity_cpus);
  return std::max(1, online_cpus / std::max(1, local_ranks));
}

void set_cpu_threads_for_launch() {
  const distributed::LaunchEnv env = distributed::read_launch_env();
  if (std::getenv("OMP_NUM_THREADS") != nullptr || env.local_size <= 1) return;
  cpu_set_t mask;
  CPU_ZERO(&mask);
  const int online = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  const int affinity = sched_getaffinity(0, sizeof(mask), &mask) == 0 ? CPU_COUNT(&mask) : online;
  omp_set_num_threads(threads_per_rank(affinity, online, env.local_size));
}

}  // namespace plm::runtime
