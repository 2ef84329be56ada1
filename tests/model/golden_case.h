// One case of the golden model fixtures (tests/fixtures/models, tools/reference/make_model_fixtures.py):
// the prompt ids, the processor's pixels and HF's greedy tokens, as generate() takes them. No gtest here:
// the mpirun checks use it too.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "model/generator.h"

namespace plm::model::testing {

std::string fixtures_dir();  // tests/fixtures/models/ (with the slash)

struct GoldenCase {
  std::vector<int32_t> ids;             // the prompt, placeholders expanded
  OwnedTensor images, videos;           // (tiles or frames, 3, 56, 56) f32, or undefined
  std::vector<int32_t> expected_tokens;  // HF's greedy tokens (stopping disabled)

  GenerationRequest request() const;  // greedy; views of this case's pixels
};

// expected/<expected_dir>/<input>.safetensors with inputs/<input>.safetensors.
absl::StatusOr<GoldenCase> load_golden_case(const std::string& expected_dir, const std::string& input);

}  // namespace plm::model::testing
