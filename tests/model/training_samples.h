// Training samples for tests: the tiny golden inputs (tests/fixtures/models/inputs: an image prompt with
// 5 tiles, a 4-frame video prompt, a text prompt) packed into micro-batches, every token after the first
// that is not a media placeholder labelled.
#pragma once

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <memory>

#include "core/tensor.h"
#include "model/plm_model.h"
#include "model/training_pass.h"

namespace plm::model::testing {

std::string model_fixtures();  // tests/fixtures/models/

struct Sample {
  std::vector<int32_t> ids;
  OwnedTensor pixels;  // (N, 3, 56, 56) or empty
  bool video = false;
};

// input: "image", "video" or "text".
Sample load_sample(const std::string& input);

// Packs samples into one micro-batch; pixel tensors are kept alive in `storage`.
TrainingBatch pack(const std::vector<const Sample*>& samples, std::vector<OwnedTensor>& storage);

// The tiny cls_tied model loaded for training, with the image, video and text samples.
class TinyTrainingTest : public ::testing::Test {
 protected:
  void SetUp() override;

  std::unique_ptr<PlmModel> model_;
  Sample image_, video_, text_;
};

}  // namespace plm::model::testing
