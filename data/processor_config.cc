#include "data/processor_config.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace plm::data {

namespace {

using nlohmann::json;

absl::StatusOr<json> read_json(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path.string(), ": cannot open"));
  std::stringstream text;
  text << in.rdbuf();
  json doc = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": not a JSON object"));
  }
  return doc;
}

// Reads an optional number into *out; an error names the file and key when it has the wrong type.
template <typename T>
absl::Status read_number(const json& obj, const char* key, const std::string& where, T* out) {
  if (!obj.contains(key) || obj[key].is_null()) return absl::OkStatus();
  if (!obj[key].is_number()) return absl::InvalidArgumentError(absl::StrCat(where, ": \"", key, "\" must be a number"));
  *out = obj[key].get<T>();
  return absl::OkStatus();
}

absl::Status read_mean_std(const json& obj, const std::string& where, std::array<float, 3>* mean,
                           std::array<float, 3>* std) {
  for (auto [key, out] : {std::pair{"image_mean", mean}, std::pair{"image_std", std}}) {
    if (!obj.contains(key)) continue;
    const json& v = obj[key];
    if (v.is_number()) {
      out->fill(v.get<float>());
    } else if (v.is_array() && v.size() == 3 && v[0].is_number() && v[1].is_number() && v[2].is_number()) {
      for (int c = 0; c < 3; ++c) (*out)[c] = v[c].get<float>();
    } else {
      return absl::InvalidArgumentError(absl::StrCat(where, ": \"", key, "\" must be a number or 3 numbers"));
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
  if (auto s = read_number(obj, "tile_size", where, &c->tile_size); !s.ok()) return s;
  if (auto s = read_number(obj, "max_num_tiles", where, &c->max_num_tiles); !s.ok()) return s;
  if (auto s = read_number(obj, "rescale_factor", where, &c->rescale_factor); !s.ok()) return s;
  if (c->tile_size <= 0) return absl::InvalidArgumentError(absl::StrCat(where, ": tile_size must be positive"));
  return read_mean_std(obj, where, &c->image_mean, &c->image_std);
}

absl::Status read_video(const json& obj, const std::string& where, VideoProcessorConfig* c) {
  if (obj.contains("size") && obj["size"].is_object()) {
    if (auto s = read_number(obj["size"], "height", where + " size", &c->height); !s.ok()) return s;
    if (auto s = read_number(obj["size"], "width", where + " size", &c->width); !s.ok()) return s;
  }
  if (auto s = read_number(obj, "rescale_factor", where, &c->rescale_factor); !s.ok()) return s;
  if (c->height <= 0 || c->width <= 0) return absl::InvalidArgumentError(absl::StrCat(where, ": size must be positive"));
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
    if (auto s = read_number(*doc, "patch_size", where, &config.patch_size); !s.ok()) return s;
    if (auto s = read_number(*doc, "pooling_ratio", where, &config.pooling_ratio); !s.ok()) return s;
    if (config.patch_size <= 0 || config.pooling_ratio <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": patch_size and pooling_ratio must be positive"));
    }
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
