// Fixture loading for the preprocessing tests: safetensors is an 8-byte header length, a JSON header, and
// the raw bytes it points into; only U8 tensors are written by the fixture script.
#include "tests/data/preprocessing_fixtures.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>

#include "tests/data/tokenizer_test_util.h"

namespace plm::testing {

std::map<std::string, U8Array> load_u8_safetensors(const std::filesystem::path& path) {
  const std::string bytes = read_test_file(path);
  uint64_t header_size = 0;
  std::memcpy(&header_size, bytes.data(), sizeof(header_size));  // little-endian on our targets
  const nlohmann::json header = nlohmann::json::parse(bytes.substr(8, header_size));
  const size_t data_start = 8 + header_size;
  std::map<std::string, U8Array> arrays;
  for (const auto& [key, info] : header.items()) {
    if (key == "__metadata__") continue;
    EXPECT_EQ(info["dtype"], "U8") << key;
    U8Array array;
    for (int64_t d : info["shape"]) array.shape.push_back(d);
    const size_t begin = info["data_offsets"][0], end = info["data_offsets"][1];
    array.data.assign(bytes.begin() + data_start + begin, bytes.begin() + data_start + end);
    arrays.emplace(key, std::move(array));
  }
  return arrays;
}

std::filesystem::path preprocessing_dir() {
  const char* dir = std::getenv("PLM_TEST_DATA_DIR");
  const std::filesystem::path fixtures =
      dir ? std::filesystem::path(dir) : std::filesystem::path(__FILE__).parent_path().parent_path() / "fixtures";
  return fixtures / "preprocessing";
}

const nlohmann::json& preprocessing_manifest() {
  static const nlohmann::json manifest =
      nlohmann::json::parse(read_test_file(preprocessing_dir() / "manifest.json"));
  return manifest;
}

const U8Array* expected_u8(const std::string& key) {
  static const std::map<std::string, U8Array> arrays =
      load_u8_safetensors(preprocessing_dir() / "expected_u8.safetensors");
  auto it = arrays.find(key);
  return it == arrays.end() ? nullptr : &it->second;
}

uint32_t crc32_of(const uint8_t* data, size_t size) {
  return static_cast<uint32_t>(crc32(crc32(0L, Z_NULL, 0), data, static_cast<uInt>(size)));
}

TileCheck check_tile(const float* values, size_t n, const uint8_t* expected_levels) {
  TileCheck check;
  std::vector<uint8_t> levels(n);
  for (size_t i = 0; i < n; ++i) {
    const double level = std::round(static_cast<double>(values[i]) * 127.5 + 127.5);
    const bool in_range = level >= 0 && level <= 255;
    levels[i] = in_range ? static_cast<uint8_t>(level) : 0;
    if (!in_range || (static_cast<float>(levels[i]) - 127.5f) / 127.5f != values[i]) check.all_levels = false;
    if (expected_levels) {
      const float expected = (static_cast<float>(expected_levels[i]) - 127.5f) / 127.5f;
      check.max_abs_diff = std::max(check.max_abs_diff, std::abs(static_cast<double>(values[i]) - expected));
    }
  }
  check.crc32 = crc32_of(levels.data(), levels.size());
  return check;
}

std::vector<uint32_t> crc_list(const nlohmann::json& list) {
  std::vector<uint32_t> crcs;
  for (const auto& v : list) crcs.push_back(v.get<uint32_t>());
  return crcs;
}

data::RgbImage rgb_from_array(const U8Array& array, int64_t index) {
  const bool batched = index >= 0;
  EXPECT_EQ(array.shape.size(), batched ? 4u : 3u);
  const int height = static_cast<int>(array.shape[batched ? 1 : 0]);
  const int width = static_cast<int>(array.shape[batched ? 2 : 1]);
  data::RgbImage image(width, height);
  const size_t frame_bytes = image.pixels.size();
  std::memcpy(image.pixels.data(), array.data.data() + (batched ? index * frame_bytes : 0), frame_bytes);
  return image;
}

}  // namespace plm::testing
