// The SFT fixture's lines (tests/fixtures/training/sft) as training micro-batches, from what HF's processor
// made of them (expected_samples.json: ids and label masks; expected_pixels.safetensors: u8 tiles / frames,
// pixel = (u8 - 127.5) / 127.5), so a trainer test needs no data pipeline. Also the fixture runs' folder.
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/training_pass.h"

namespace plm::trainer::testing {

std::string training_fixtures();  // tests/fixtures/training/

enum class FixtureLabels { kAssistant, kAllButMedia };

// One micro-batch per line in `lines` (each line alone, one sequence); the pixel tensors live in `storage`.
std::vector<model::TrainingBatch> sft_fixture_batches(const std::vector<int>& lines, FixtureLabels labels,
                                                      std::vector<OwnedTensor>& storage);

}  // namespace plm::trainer::testing
