// Encoding throughput on one thread. The text is $PLM_TOKENIZER_BENCH_FILE, or the committed test inputs
// concatenated, repeated to $PLM_TOKENIZER_BENCH_MB megabytes (default 2).
#include "data/tokenizer_bench.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "tests/data/tokenizer_test_util.h"

namespace plm::data {
namespace {

using ::plm::testing::read_test_file;
using ::plm::testing::tokenizer_data_dir;

TEST(TokenizerBenchTest, EncodeThroughput) {
  std::string unit;
  if (const char* file = std::getenv("PLM_TOKENIZER_BENCH_FILE"); file != nullptr && *file != '\0') {
    unit = read_test_file(file);
  } else {
    for (const char* name : {"ggml-vocab-llama-bpe.gguf.inp", "llama3_edge_cases.inp", "plm_chat_prompts.inp"}) {
      unit += read_test_file(tokenizer_data_dir() / name);
    }
  }
  const char* megabytes = std::getenv("PLM_TOKENIZER_BENCH_MB");
  const size_t target_bytes = static_cast<size_t>((megabytes ? std::atof(megabytes) : 2.0) * 1e6);
  std::string text;
  while (text.size() < target_bytes) text += unit;

  const EncodeThroughput result = measure_encode_throughput(::plm::testing::llama3_tokenizer(), text, 3);
  std::printf("tokenizer encode: %.1f MB, %lld tokens, best of 3: %.3f s wall, %.3f s CPU; %.2f MB/s wall, %.2f MB/s CPU "
              "(one thread)\n", result.num_bytes / 1e6, static_cast<long long>(result.num_tokens), result.best_seconds,
              result.best_cpu_seconds, result.megabytes_per_second(), result.megabytes_per_cpu_second());
  EXPECT_GT(result.num_tokens, 0);
  EXPECT_GT(result.megabytes_per_cpu_second(), 1.0);  // a floor that only a quadratic blow-up would break
}

}  // namespace
}  // namespace plm::data
