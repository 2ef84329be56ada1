#include "tests/plan/plan_test_model.h"

#include <cstdint>
#include <vector>

namespace plm::plan::testing {

std::string tiny_model_dir() { return std::string(PLM_SOURCE_DIR) + "/tests/fixtures/models/cls_tied"; }

model::TrainingBatch synthetic_batch(const model::PlmConfig& config, int sequences, int64_t tokens, int tiles,
                                     OwnedTensor& pixels) {
  model::TrainingBatch batch;
  const int64_t placeholders = int64_t{tiles} * config.tokens_per_tile();
  for (int s = 0; s < sequences; ++s) {
    for (int64_t i = 0; i < tokens; ++i) {
      batch.ids.push_back(i < placeholders ? config.image_token_id : static_cast<int32_t>(1000 + (7 * i + s) % 5000));
    }
    for (int64_t i = 0; i < tokens; ++i) {
      const bool unlabelled = i + 1 == tokens || i + 1 < placeholders;
      batch.targets.push_back(unlabelled ? model::kIgnoreTarget : batch.ids[batch.ids.size() - tokens + i + 1]);
    }
    batch.lengths.push_back(tokens);
  }
  if (tiles > 0) {
    const int64_t img = config.vision.img_size;
    pixels = OwnedTensor({int64_t{sequences} * tiles, 3, img, img}, DType::kF32);
    float* p = pixels.data_as<float>();
    for (int64_t i = 0; i < pixels.view().numel(); ++i) p[i] = static_cast<float>((i * 37) % 200) / 100.0f - 1.0f;
    batch.image_pixels = pixels.view();
  }
  return batch;
}

}  // namespace plm::plan::testing
