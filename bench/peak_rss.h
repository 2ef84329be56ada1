// The process's resident set size for the benchmarks' memory lines: its peak so far, and its current size
// (e.g. before a model loads, so that a peak can be split into the process's baseline and what a run added).
#pragma once

#include <sys/resource.h>

#include <fstream>
#include <string>

namespace plm::bench {

inline double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;  // Linux reports KiB
}

// VmRSS from /proc/self/status; 0 where there is none.
inline double current_rss_mib() {
  std::ifstream status("/proc/self/status");
  std::string key;
  double kib = 0.0;
  while (status >> key) {
    if (key == "VmRSS:") {
      status >> kib;
      break;
    }
  }
  return kib / 1024.0;
}

}  // namespace plm::bench
