// Fuzzes image decoding and preprocessing as a request's or dataset's image bytes: decode_image (JPEG, PNG, EXIF
// orientation, the pixel limit checked before allocation) with its default limits, then thumb+tile with the tiny
// test model's processor (56-pixel tiles, at most 4). The processor's arithmetic is the same for PLM's 448-pixel
// tiles, which cost ~10 s an input under ASan at -O1 and would leave the fuzzer next to no executions.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/check.h"
#include "data/image_decode.h"
#include "data/image_processor.h"
#include "data/processor_config.h"
#include "fuzz/fuzz_scratch.h"

namespace {

const plm::data::ImageProcessorConfig& tiny_config() {
  static const plm::data::ImageProcessorConfig config = [] {
    auto processor = plm::data::load_processor_config(plm::fuzz::source_path("tests/fixtures/models/cls_tied"));
    PLM_CHECK(processor.ok()) << processor.status();
    return processor->image;
  }();
  return config;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const auto image = plm::data::decode_image(bytes, "fuzz input");
  if (!image.ok()) return 0;
  PLM_CHECK(image->width > 0 && image->height > 0 &&
            image->pixels.size() == static_cast<size_t>(image->width) * image->height * plm::data::kRgbChannels)
      << image->width << "x" << image->height << " with " << image->pixels.size() << " bytes";
  (void)plm::data::process_image(*image, tiny_config());
  return 0;
}
