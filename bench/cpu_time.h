// The process's CPU time for the benchmarks: on a shared machine it counts a run's work, not its waits for a core
// (exact with one thread; with more it includes OpenMP's spinning at barriers).
#pragma once

#include <ctime>

namespace plm::bench {

inline double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

}  // namespace plm::bench
