// Access to tests/fixtures/preprocessing, written by tools/reference/make_preprocessing_fixtures.py: the
// manifest (HF's grids, frame indices, CRC-32 per tile/frame), the stored u8 arrays, and the comparison of
// our f32 pixel values with HF's. HF's pixel values are (u8 - 127.5) / 127.5 exactly, so the fixtures keep
// the u8 levels; a tile known only by its CRC is compared by turning our floats back into levels.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/rgb_image.h"

namespace plm::testing {

std::filesystem::path preprocessing_dir();
inline std::filesystem::path preprocessing_input(const std::string& name) {
  return preprocessing_dir() / "inputs" / name;
}

// manifest.json, parsed once.
const nlohmann::json& preprocessing_manifest();

struct U8Array {
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

// Every tensor of a safetensors file of U8 tensors, by name.
std::map<std::string, U8Array> load_u8_safetensors(const std::filesystem::path& path);

// A tensor of expected_u8.safetensors, or nullptr when the fixtures hold no such key.
const U8Array* expected_u8(const std::string& key);

uint32_t crc32_of(const uint8_t* data, size_t size);

// What one produced tile/frame (f32, n values) is compared with: HF's levels, or only their CRC-32.
struct TileCheck {
  double max_abs_diff = 0.0;  // against HF's values; only meaningful when levels were stored
  bool all_levels = true;     // every value is exactly (k - 127.5) / 127.5 for an integer k in [0, 255]
  uint32_t crc32 = 0;         // of those levels (when all_levels)
};
TileCheck check_tile(const float* values, size_t n, const uint8_t* expected_levels /* nullable */);

// The manifest's CRC list as numbers.
std::vector<uint32_t> crc_list(const nlohmann::json& list);

// An RgbImage from a stored (height, width, 3) array, or frame `index` of a (frames, height, width, 3) one.
data::RgbImage rgb_from_array(const U8Array& array, int64_t index = -1);

}  // namespace plm::testing
