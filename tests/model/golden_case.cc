#include "tests/model/golden_case.h"

#include "core/status_macros.h"
#include "model/weights/weight_store.h"

namespace plm::model::testing {

namespace {

absl::StatusOr<OwnedTensor> load(const std::string& file, const std::string& name, std::optional<DType> dtype) {
  PLM_ASSIGN_OR_RETURN(const WeightStore store, WeightStore::open(file));
  if (!store.contains(name)) return OwnedTensor();
  return store.load(name, dtype);
}

}  // namespace

std::string fixtures_dir() { return std::string(PLM_SOURCE_DIR) + "/tests/fixtures/models/"; }

GenerationRequest GoldenCase::request() const {
  GenerationRequest r;
  r.prompt_ids = ids;
  r.image_pixels = images;
  r.video_pixels = videos;
  return r;
}

absl::StatusOr<GoldenCase> load_golden_case(const std::string& expected_dir, const std::string& input) {
  GoldenCase c;
  const std::string expected = fixtures_dir() + "expected/" + expected_dir + "/" + input + ".safetensors";
  const std::string inputs = fixtures_dir() + "inputs/" + input + ".safetensors";
  PLM_ASSIGN_OR_RETURN(const OwnedTensor ids, load(expected, "input_ids", std::nullopt));
  c.ids.assign(ids.data_as<int32_t>(), ids.data_as<int32_t>() + ids.numel());
  PLM_ASSIGN_OR_RETURN(const OwnedTensor tokens, load(expected, "generate.tokens", std::nullopt));
  c.expected_tokens.assign(tokens.data_as<int32_t>(), tokens.data_as<int32_t>() + tokens.numel());
  for (auto [name, out] : {std::pair{"pixel_values", &c.images}, std::pair{"pixel_values_videos", &c.videos}}) {
    PLM_ASSIGN_OR_RETURN(OwnedTensor pixels, load(inputs, name, DType::kF32));
    // The processor's (items, tiles or frames, 3, 56, 56): every item's tiles in order, as generate() takes them.
    if (pixels.view().defined()) {
      pixels.reshape({pixels.size(0) * pixels.size(1), pixels.size(2), pixels.size(3), pixels.size(4)});
    }
    *out = std::move(pixels);
  }
  return c;
}

}  // namespace plm::model::testing
