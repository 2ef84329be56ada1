// Encoding throughput of a Tokenizer on one thread, for `plm bench` and the tokenizer tests.
#pragma once

#include <cstdint>
#include <string_view>

#include "data/tokenizer.h"

namespace plm::data {

struct EncodeThroughput {
  int64_t num_bytes = 0;        // per run
  int64_t num_tokens = 0;       // per run
  double best_seconds = 0;      // wall clock of the fastest run
  double best_cpu_seconds = 0;  // this thread's CPU time of its fastest run: steadier on a shared machine
  double megabytes_per_second() const { return num_bytes / best_seconds / 1e6; }
  double megabytes_per_cpu_second() const { return num_bytes / best_cpu_seconds / 1e6; }
};

// Encodes `text` (special tokens recognised) `num_runs` >= 1 times and keeps the fastest run.
EncodeThroughput measure_encode_throughput(const Tokenizer& tokenizer, std::string_view text, int num_runs);

}  // namespace plm::data
