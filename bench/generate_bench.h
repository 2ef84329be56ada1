// `plm bench generate`: end-to-end generation speed of a PLM checkpoint on synthetic prompts: load time,
// vision encode time per tile, prefill tokens/s (one forward over the packed prompts, media already
// encoded) and greedy decode tokens/s through model::generate's KV-cache loop. bench/hf_generate_bench.py
// measures HF transformers the same way on the same prompts; both print a table and one JSON line.
#pragma once

#include <cstdint>
#include <string>

namespace plm::bench {

struct GenerateBenchOptions {
  std::string model_dir;       // an HF model directory (bench make-random-model writes one)
  std::string device = "cpu";  // "cpu" or "cuda"
  std::string dtype;           // --dtype (runtime/compute_dtype.h): "" is the device's default
  int prompt_tokens = 128;     // text tokens per prompt
  int new_tokens = 32;         // greedy tokens per prompt, EOS ignored; >= 2 so that decode runs
  int batch = 1;               // prompts generated together
  int image_tiles = 0;         // per prompt: tiles x tokens_per_tile placeholders go ahead of the text
  uint64_t seed = 0;           // of the synthetic token ids and pixels
  int repeats = 1;             // runs of each stage; the fastest is reported (steadier ratios on a noisy host)
};

// Returns the process exit code; prints the table and the JSON line on stdout.
int run_generate_bench(const GenerateBenchOptions& options);

}  // namespace plm::bench
