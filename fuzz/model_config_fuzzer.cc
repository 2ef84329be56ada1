// Fuzzes a model directory's configuration files, both layouts: the first byte picks the file ('0' config.json,
// '1' generation_config.json, '2' the 4.5x preprocessor_config.json, '3' the 5.x processor_config.json with
// nested image/video processors). What parses is then used as the loaders use it: parameter counts and the
// tokens per tile from a model config; a processor config's tile grids, checked against the caps its reader
// promises, and a tiny image and video frame preprocessed with it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "core/check.h"
#include "data/image_processor.h"
#include "data/processor_config.h"
#include "data/rgb_image.h"
#include "data/video_processor.h"
#include "fuzz/fuzz_scratch.h"
#include "model/config.h"

namespace {

// The tile grids a few image shapes get, checked against the reader's caps; real preprocessing only for small
// tiles (PLM's 448-pixel tiles cost ~10 s an input under ASan, which would leave the fuzzer next to no executions).
void use_processor_config(const plm::data::ProcessorConfig& config) {
  (void)config.image_tokens_per_tile();
  (void)config.video_tokens_per_frame();
  const int tile = config.image.tile_size;
  for (const auto& [width, height] : {std::pair{5, 3}, std::pair{1, 4000}, std::pair{4000, 4000}}) {
    const plm::data::TileGrid grid = plm::data::choose_tile_grid(width, height, tile, config.image.max_num_tiles);
    PLM_CHECK(grid.num_cols > 0 && grid.num_rows > 0 && grid.num_tiles() <= std::max(1, config.image.max_num_tiles))
        << grid.num_cols << "x" << grid.num_rows << " tiles for max_num_tiles " << config.image.max_num_tiles;
    PLM_CHECK((int64_t{grid.num_tiles()} + 1) * tile * tile <= plm::data::kMaxImagePixels) << "tile " << tile;
  }
  const plm::data::RgbImage image(5, 3);
  if (tile <= 64) (void)plm::data::process_image(image, config.image);
  if (config.video.height <= 64 && config.video.width <= 64) (void)plm::data::process_video_frames({image}, config.video);
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
