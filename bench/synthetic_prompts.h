// Synthetic prompts shared by the generate and train benchmarks, identical in plm and the Python
// counterparts (bench/hf_generate_bench.py make_prompts mirrors this and bench/counter_random.h): per prompt
// b, tiles x tokens_per_tile <|image|> placeholders, then text ids below 128000 from stream b; the tiles of
// all prompts are one tensor (batch * tiles, 3, img, img), uniform in [-1, 1) as after normalisation, from
// stream 2^32 + b, prompt after prompt, so encoding it at once gives the rows in placeholder order.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"

namespace plm::bench {

struct SyntheticPromptShape {
  int batch = 1;          // prompts
  int text_tokens = 128;  // text ids per prompt, after the placeholders
  int image_tiles = 0;    // per prompt
  uint64_t seed = 0;
};

struct SyntheticPrompts {
  std::vector<std::vector<int32_t>> ids;       // per prompt, placeholders included
  std::vector<std::vector<int32_t>> text_ids;  // per prompt
  OwnedTensor pixels;                          // (batch * tiles, 3, img, img) f32, undefined without tiles
};

SyntheticPrompts make_synthetic_prompts(const model::PlmConfig& config, const SyntheticPromptShape& shape);

}  // namespace plm::bench
