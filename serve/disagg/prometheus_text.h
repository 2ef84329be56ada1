// Prometheus text exposition for the pools' /metrics (PoolMonitor, PoolControl): a metric's HELP / TYPE header and
// its samples, appended to `out`.
#pragma once

#include <string>

#include "absl/strings/str_cat.h"

namespace plm::serve::disagg {

inline void metric(std::string& out, const char* name, const char* type, const char* help) {
  absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

template <typename T>
void sample(std::string& out, const char* name, T value, const std::string& labels = "") {
  absl::StrAppend(&out, name, labels.empty() ? "" : "{", labels, labels.empty() ? "" : "}", " ", value, "\n");
}

}  // namespace plm::serve::disagg
