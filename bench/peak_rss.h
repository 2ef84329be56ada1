// The process's peak resident set size so far, for the benchmarks' memory lines.
#pragma once

#include <sys/resource.h>

namespace plm::bench {

inline double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;  // Linux reports KiB
}

}  // namespace plm::bench
