// measure_encode_throughput: wall-clock timing of whole-text encodes.
#include "data/tokenizer_bench.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <limits>

#include "core/check.h"

namespace plm::data {
namespace {

double thread_cpu_seconds() {
  timespec now;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + 1e-9 * static_cast<double>(now.tv_nsec);
}

}  // namespace

EncodeThroughput measure_encode_throughput(const Tokenizer& tokenizer, std::string_view text, int num_runs) {
  PLM_CHECK_GE(num_runs, 1);
  EncodeThroughput result;
  result.num_bytes = static_cast<int64_t>(text.size());
  result.best_seconds = result.best_cpu_seconds = std::numeric_limits<double>::infinity();
  for (int run = 0; run < num_runs; ++run) {
    const auto start = std::chrono::steady_clock::now();
    const double cpu_start = thread_cpu_seconds();
    const std::vector<int32_t> ids = tokenizer.encode(text);
    const double cpu_seconds = thread_cpu_seconds() - cpu_start;
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    result.num_tokens = static_cast<int64_t>(ids.size());
    result.best_seconds = std::min(result.best_seconds, elapsed.count());
    result.best_cpu_seconds = std::min(result.best_cpu_seconds, cpu_seconds);
  }
  return result;
}

}  // namespace plm::data
