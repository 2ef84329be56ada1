// The tiny PLM (tests/fixtures/models/cls_tied) for the planner's validation tests, and synthetic training
// micro-batches of a given shape for it: `tiles` tiles of placeholders first, then text ids.
#pragma once

#include <memory>
#include <string>

#include "core/tensor.h"
#include "model/plm_model.h"
#include "model/training_pass.h"

namespace plm::plan::testing {

std::string tiny_model_dir();

// One packed micro-batch of `sequences` sequences of `tokens` tokens each, every next token labelled but the
// placeholders; `pixels` holds the (sequences * tiles, 3, img, img) tiles the batch points at.
model::TrainingBatch synthetic_batch(const model::PlmConfig& config, int sequences, int64_t tokens, int tiles,
                                     OwnedTensor& pixels);

}  // namespace plm::plan::testing
