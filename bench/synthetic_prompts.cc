#include "bench/synthetic_prompts.h"

#include <algorithm>

#include "bench/counter_random.h"

namespace plm::bench {

namespace {

// Llama 3's special tokens start at 128000 (BOS); synthetic text stays below them.
constexpr int32_t kFirstSpecialToken = 128000;
constexpr uint64_t kPixelStream = uint64_t{1} << 32;  // prompt b's text uses stream b, its tiles this + b

}  // namespace

SyntheticPrompts make_synthetic_prompts(const model::PlmConfig& config, const SyntheticPromptShape& shape) {
  SyntheticPrompts prompts;
  const int32_t text_vocab = std::min(config.text.vocab_size, kFirstSpecialToken);
  const int64_t placeholders = int64_t{shape.image_tiles} * config.tokens_per_tile();
  for (int b = 0; b < shape.batch; ++b) {
    const uint64_t key = stream_key(shape.seed, static_cast<uint64_t>(b));
    std::vector<int32_t> text(shape.text_tokens);
    for (int i = 0; i < shape.text_tokens; ++i) text[i] = static_cast<int32_t>(random_bits(key, i) % text_vocab);
    std::vector<int32_t> ids(placeholders, config.image_token_id);
    ids.insert(ids.end(), text.begin(), text.end());
    prompts.ids.push_back(std::move(ids));
    prompts.text_ids.push_back(std::move(text));
  }
  if (shape.image_tiles == 0) return prompts;
  const int64_t img = config.vision.img_size, per_prompt = int64_t{shape.image_tiles} * 3 * img * img;
  prompts.pixels = OwnedTensor({int64_t{shape.batch} * shape.image_tiles, 3, img, img}, DType::kF32);
  float* pixels = prompts.pixels.data_as<float>();
  for (int b = 0; b < shape.batch; ++b) {
    const uint64_t key = stream_key(shape.seed, kPixelStream + b);
    for (int64_t i = 0; i < per_prompt; ++i) {
      pixels[b * per_prompt + i] = 2.0f * uniform_from_bits(random_bits(key, i)) - 1.0f;
    }
  }
  return prompts;
}

}  // namespace plm::bench
