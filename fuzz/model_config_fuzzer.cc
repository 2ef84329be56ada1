// Fuzzes a model directory's configuration files, both layouts: the first byte picks the file ('0' config.json,
// '1' generation_config.json, '2' the 4.5x preprocessor_config.json, '3' the 5.x processor_config.json with
// nested image/video processors). What parses is then used as the loaders use it: parameter counts and the
// tokens per tile from a model config; a processor config preprocesses a tiny image and a video frame, so a
// size no allocation should follow shows up as an out-of-memory report.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "data/image_processor.h"
#include "data/processor_config.h"
#include "data/rgb_image.h"
#include "data/video_processor.h"
#include "fuzz/fuzz_scratch.h"
#include "model/config.h"

namespace {

void use_processor_config(const plm::data::ProcessorConfig& config) {
  (void)config.image_tokens_per_tile();
  (void)config.video_tokens_per_frame();
  const plm::data::RgbImage image(5, 3);
  (void)plm::data::process_image(image, config.image);
  (void)plm::data::process_video_frames({image}, config.video);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: {
      const auto config = plm::model::parse_plm_config(text, "config.json");
      if (config.ok()) {
        (void)plm::model::count_parameters(*config);
        (void)config->tokens_per_tile();
      }
      return 0;
    }
    case 1:
      (void)plm::model::parse_generation_config(text, "generation_config.json");
      return 0;
    case 2:
    case 3: {
      // One directory per layout, so each holds only its own file.
      static const std::filesystem::path hub45_dir = plm::fuzz::scratch_dir("hub45");
      static const std::filesystem::path v5_dir = plm::fuzz::scratch_dir("v5");
      const bool hub45 = data[0] % 4 == 2;
      const std::filesystem::path& dir = hub45 ? hub45_dir : v5_dir;
      plm::fuzz::write_file(dir / (hub45 ? "preprocessor_config.json" : "processor_config.json"), text);
      const auto config = plm::data::load_processor_config(dir);
      if (config.ok()) use_processor_config(*config);
      return 0;
    }
  }
  return 0;
}
