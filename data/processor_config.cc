#include "data/processor_config.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "core/json_depth.h"

namespace plm::data {

namespace {

using nlohmann::json;

absl::StatusOr<json> read_json(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path.string(), ": cannot open"));
  std::stringstream text;
  text << in.rdbuf();
  if (const std::string problem = json_depth_problem(text.str()); !problem.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": ", problem));
  }
  json doc = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": not a JSON object"));
  }
  return doc;
}

// Reads an optional integer in [min, max] into *out; an error names the file and key when it is not one.
absl::Status read_int(const json& obj, const char* key, const std::string& where, int min, int max, int* out) {
  if (!obj.contains(key) || obj[key].is_null()) return absl::OkStatus();
  const json& v = obj[key];
  // An integral float (448.0) is accepted, as Python's int() would; a fraction or a huge value is not.
  const double value = v.is_number() ? v.get<double>() : std::nan("");
  if (!(value >= min && value <= max) || value != std::floor(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": \"", key, "\" must be an integer in [", min, ", ", max, "], got ", v.dump()));
  }
  *out = static_cast<int>(value);
  return absl::OkStatus();
}

// Reads an optional finite positive number into *out.
absl::Status read_positive(const json& obj, const char* key, const std::string& where, double* out) {
  if (!obj.contains(key) || obj[key].is_null()) return absl::OkStatus();
  const json& v = obj[key];
  if (!v.is_number() || !(v.get<double>() > 0) || !std::isfinite(v.get<double>())) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": \"", key, "\" must be a positive number, got ", v.dump()));
  }
  *out = v.get<double>();
  return absl::OkStatus();
}

// image_mean / image_std: one number or three, finite as f32; a std of 0 would divide by zero.
absl::Status read_mean_std(const json& obj, const std::string& where, std::array<float, 3>* mean,
                           std::array<float, 3>* std) {
  for (auto [key, out] : {std::pair{"image_mean", mean}, std::pair{"image_std", std}}) {
    if (!obj.contains(key)) continue;
    const json& v = obj[key];
    const bool is_std = out == std;
    const auto usable = [&](const json& x) {
      if (!x.is_number()) return false;
      const double value = x.get<double>();
      return std::abs(value) <= std::numeric_limits<float>::max() && !(is_std && value == 0.0);
    };
    if (usable(v)) {
      out->fill(v.get<float>());
    } else if (v.is_array() && v.size() == 3 && usable(v[0]) && usable(v[1]) && usable(v[2])) {
      for (int c = 0; c < 3; ++c) (*out)[c] = v[c].get<float>();
    } else {
      return absl::InvalidArgumentError(absl::StrCat(where, ": \"", key, "\" must be a number or 3 numbers, finite",
                                                     is_std ? " and non-zero" : "", ", got ", v.dump()));
    }
  }
  return absl::OkStatus();
}

absl::Status read_image(const json& obj, const std::string& where, ImageProcessorConfig* c) {
  if (obj.contains("vision_input_type")) {
    const std::string type = obj["vision_input_type"].is_string() ? obj["vision_input_type"].get<std::string>() : "";
    if (type == "thumb+tile") {
      c->vision_input_type = VisionInputType::kThumbTile;
    } else if (type == "vanilla") {
      c->vision_input_type = VisionInputType::kVanilla;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": unknown vision_input_type \"", type, "\" (expected thumb+tile or vanilla)"));
    }
  }
  if (auto s = read_int(obj, "tile_size", where, 1, kMaxProcessorSide, &c->tile_size); !s.ok()) return s;
  if (auto s = read_int(obj, "max_num_tiles", where, 0, kMaxNumTiles, &c->max_num_tiles); !s.ok()) return s;
  if (auto s = read_positive(obj, "rescale_factor", where, &c->rescale_factor); !s.ok()) return s;
  // The thumbnail and every tile of one image, before anything is allocated for them.
  const int64_t pixels = (int64_t{c->max_num_tiles} + 1) * c->tile_size * c->tile_size;
  if (pixels > kMaxImagePixels) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": (max_num_tiles ", c->max_num_tiles, " + 1) x tile_size ",
                                                   c->tile_size, "^2 = ", pixels, " pixels per image exceeds the limit of ",
                                                   kMaxImagePixels));
  }
  return read_mean_std(obj, where, &c->image_mean, &c->image_std);
}

absl::Status read_video(const json& obj, const std::string& where, VideoProcessorConfig* c) {
  if (obj.contains("size") && obj["size"].is_object()) {
    for (auto [key, out] : {std::pair{"height", &c->height}, std::pair{"width", &c->width}}) {
      if (auto s = read_int(obj["size"], key, where + " size", 1, kMaxProcessorSide, out); !s.ok()) return s;
    }
  }
  if (auto s = read_positive(obj, "rescale_factor", where, &c->rescale_factor); !s.ok()) return s;
  return read_mean_std(obj, where, &c->image_mean, &c->image_std);
}

}  // namespace

int ProcessorConfig::image_tokens_per_tile() const {
  const int side = image.tile_size / patch_size / pooling_ratio;
  return side * side;
}

int ProcessorConfig::video_tokens_per_frame() const {
  return (video.height / patch_size / pooling_ratio) * (video.width / patch_size / pooling_ratio);
}

absl::StatusOr<ProcessorConfig> load_processor_config(const std::filesystem::path& model_dir) {
  ProcessorConfig config;
  const std::filesystem::path processor = model_dir / "processor_config.json";
  if (std::filesystem::exists(processor)) {
    absl::StatusOr<json> doc = read_json(processor);
    if (!doc.ok()) return doc.status();
    const std::string where = processor.string();
    if (auto s = read_int(*doc, "patch_size", where, 1, kMaxProcessorSide, &config.patch_size); !s.ok()) return s;
    if (auto s = read_int(*doc, "pooling_ratio", where, 1, kMaxProcessorSide, &config.pooling_ratio); !s.ok()) return s;
    if (doc->contains("image_processor") && (*doc)["image_processor"].is_object()) {  // 5.x layout
      if (auto s = read_image((*doc)["image_processor"], where + " image_processor", &config.image); !s.ok()) return s;
    }
    if (doc->contains("video_processor") && (*doc)["video_processor"].is_object()) {
      if (auto s = read_video((*doc)["video_processor"], where + " video_processor", &config.video); !s.ok()) return s;
    }
  }
  for (const char* name : {"preprocessor_config.json", "video_preprocessor_config.json"}) {  // 4.5x layout
    const std::filesystem::path path = model_dir / name;
    if (!std::filesystem::exists(path)) continue;
    absl::StatusOr<json> doc = read_json(path);
    if (!doc.ok()) return doc.status();
    const absl::Status s = std::string(name) == "preprocessor_config.json" ? read_image(*doc, path.string(), &config.image)
                                                                           : read_video(*doc, path.string(), &config.video);
    if (!s.ok()) return s;
  }
  return config;
}

}  // namespace plm::data
