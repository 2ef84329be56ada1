#include "data/synthetic_dataset.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <optional>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/check.h"
#include "core/kernels/counter_random.h"
#include "core/status_macros.h"
#include "data/image_encode.h"
#include "data/sft_jsonl.h"
#include "data/video_encode.h"

namespace plm::data {
namespace {

namespace fs = std::filesystem;

constexpr int kMinSize = 16;
constexpr int kColourJitter = 20;        // per channel, either way
constexpr int kBackgroundLevelMin = 20;  // dark grey backgrounds, so every colour stands out
constexpr int kBackgroundLevelMax = 40;
constexpr int kBackgroundTint = 4;

// Draw t of an item's stream: a pure function of (seed, kind, index, t).
class Draws {
 public:
  Draws(uint64_t seed, MediaKind kind, int64_t index)
      : key_(mix64(mix64(seed, kind == MediaKind::kImage ? 1 : 2), static_cast<uint64_t>(index))) {}
  double uniform() { return uniform01(mix64(key_, next_++)); }  // [0, 1)
  double between(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  int below(int n) { return std::min(n - 1, static_cast<int>(uniform() * n)); }  // [0, n)
  template <typename T, size_t N>
  T pick(const std::array<T, N>& values) {
    return values[below(static_cast<int>(N))];
  }

 private:
  uint64_t key_;
  uint64_t next_ = 0;
};

uint8_t clamp_level(int level) { return static_cast<uint8_t>(std::clamp(level, 0, 255)); }

Rgb8 jittered(Rgb8 rgb, Draws& draws) {
  const auto jitter = [&draws](uint8_t level) {
    return clamp_level(level + draws.below(2 * kColourJitter + 1) - kColourJitter);
  };
  return {jitter(rgb.r), jitter(rgb.g), jitter(rgb.b)};
}

Rgb8 background(Draws& draws) {
  const int level = kBackgroundLevelMin + draws.below(kBackgroundLevelMax - kBackgroundLevelMin + 1);
  const auto tint = [&] { return clamp_level(level + draws.below(2 * kBackgroundTint + 1) - kBackgroundTint); };
  const uint8_t r = tint(), g = tint(), b = tint();
  return {r, g, b};
}

// Images: the shape's centre lies in its quadrant, far enough from the midlines that it stays there.
SynthItem plan_image(const SynthConfig& config, int64_t index) {
  Draws draws(config.seed, MediaKind::kImage, index);
  SynthItem item;
  item.kind = MediaKind::kImage;
  item.index = index;
  item.attributes.shape = draws.pick(kShapeKinds);
  item.attributes.colour = draws.pick(kShapeColours);
  item.attributes.position = draws.pick(kImagePositions);
  item.background = background(draws);
  const double size = config.size;
  const bool left =
      *item.attributes.position == ImagePosition::kTopLeft || *item.attributes.position == ImagePosition::kBottomLeft;
  const bool top =
      *item.attributes.position == ImagePosition::kTopLeft || *item.attributes.position == ImagePosition::kTopRight;
  item.first = {.shape = item.attributes.shape,
                .rgb = jittered(base_rgb(item.attributes.colour), draws),
                .center_x = size * ((left ? 0.25 : 0.75) + draws.between(-0.04, 0.04)),
                .center_y = size * ((top ? 0.25 : 0.75) + draws.between(-0.04, 0.04)),
                .radius = size * draws.between(0.15, 0.21)};
  item.last = item.first;
  item.media = absl::StrFormat("images/%05d.png", index);
  return item;
}

// Videos: the shape crosses from about a fifth of the frame to four fifths along its motion's axis.
SynthItem plan_video(const SynthConfig& config, int64_t index) {
  Draws draws(config.seed, MediaKind::kVideo, index);
  SynthItem item;
  item.kind = MediaKind::kVideo;
  item.index = index;
  item.attributes.shape = draws.pick(kShapeKinds);
  item.attributes.colour = draws.pick(kShapeColours);
  const Motion motion = draws.pick(kMotions);
  item.attributes.motion = motion;
  item.background = background(draws);
  const double size = config.size;
  const double from = size * draws.between(0.15, 0.25), to = size * draws.between(0.75, 0.85);
  const double across = size * draws.between(0.25, 0.75);
  item.first = {.shape = item.attributes.shape,
                .rgb = jittered(base_rgb(item.attributes.colour), draws),
                .radius = size * draws.between(0.12, 0.17)};
  item.last = item.first;
  const bool horizontal = motion == Motion::kRight || motion == Motion::kLeft;
  const bool forwards = motion == Motion::kRight || motion == Motion::kDown;  // towards larger x or y
  double& first_along = horizontal ? item.first.center_x : item.first.center_y;
  double& last_along = horizontal ? item.last.center_x : item.last.center_y;
  first_along = forwards ? from : to;
  last_along = forwards ? to : from;
  (horizontal ? item.first.center_y : item.first.center_x) = across;
  (horizontal ? item.last.center_y : item.last.center_x) = across;
  item.media = absl::StrFormat("videos/%05d.mp4", index);
  return item;
}

// Items [0, count) of a kind, with their splits: train, then validation, then test.
void plan_kind(const SynthConfig& config, MediaKind kind, int64_t count, std::vector<SynthItem>& items) {
  const auto num_test = static_cast<int64_t>(std::llround(count * config.test_fraction));
  const auto num_validation = static_cast<int64_t>(std::llround(count * config.validation_fraction));
  const int64_t num_train = std::max<int64_t>(0, count - num_test - num_validation);
  for (int64_t k = 0; k < count; ++k) {
    SynthItem item = kind == MediaKind::kImage ? plan_image(config, k) : plan_video(config, k);
    item.split = k < num_train                    ? SynthSplit::kTrain
                 : k < num_train + num_validation ? SynthSplit::kValidation
                                                  : SynthSplit::kTest;
    items.push_back(std::move(item));
  }
}

const char* name(MediaKind kind) { return kind == MediaKind::kImage ? "image" : "video"; }

nlohmann::json attributes_json(const SynthItem& item) {
  nlohmann::json a = {
      {"kind", name(item.kind)}, {"shape", name(item.attributes.shape)}, {"colour", name(item.attributes.colour)}};
  if (item.attributes.position) a["position"] = name(*item.attributes.position);
  if (item.attributes.motion) a["motion"] = name(*item.attributes.motion);
  return a;
}

nlohmann::json conversation_json(const SynthItem& item) {
  const nlohmann::json system = {{"role", "system"}, {"content", kSyntheticSystemPrompt}};
  const nlohmann::json user = {{"role", "user"},
                               {"content",
                                {{{"type", name(item.kind)}, {"path", item.media}},
                                 {{"type", "text"}, {"text", synthetic_question(item.kind)}}}}};
  const nlohmann::json assistant = {{"role", "assistant"},
                                    {"content", {{{"type", "text"}, {"text", describe(item.attributes)}}}}};
  return {{"messages", {system, user, assistant}}, {"attributes", attributes_json(item)}};
}

absl::Status write_text_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat(path.string(), ": write failed: ", std::strerror(errno)));
  return absl::OkStatus();
}

absl::Status write_media(const SynthItem& item, const SynthConfig& config, const fs::path& out_dir) {
  const std::vector<RgbImage> pictures = render_synthetic_item(item, config);
  if (item.kind == MediaKind::kImage) return write_png_file(out_dir / item.media, pictures[0]);
  return write_mp4_file(out_dir / item.media, pictures, {.fps = config.fps});
}

// The vocabulary value whose name is `text` exactly.
template <typename Enum, size_t N>
std::optional<Enum> named(std::string_view text, const std::array<Enum, N>& values) {
  for (const Enum value : values) {
    if (std::string_view(name(value)) == text) return value;
  }
  return std::nullopt;
}

// The ground truth of one split line; errors name the field.
absl::StatusOr<SynthExample> example_from_json(const nlohmann::json& line, const fs::path& base_dir) {
  const auto field = [](const nlohmann::json& object, const char* key) -> absl::StatusOr<std::string> {
    const auto it = object.find(key);
    if (it == object.end() || !it->is_string())
      return absl::InvalidArgumentError(absl::StrCat("no string \"", key, "\""));
    return it->get<std::string>();
  };
  if (!line.contains("attributes") || !line["attributes"].is_object()) {
    return absl::InvalidArgumentError("no \"attributes\" object (not a plm data synth file)");
  }
  const nlohmann::json& a = line["attributes"];
  SynthExample example;
  PLM_ASSIGN_OR_RETURN(const std::string kind, field(a, "kind"));
  PLM_ASSIGN_OR_RETURN(const std::string shape, field(a, "shape"));
  PLM_ASSIGN_OR_RETURN(const std::string colour, field(a, "colour"));
  if (kind != "image" && kind != "video")
    return absl::InvalidArgumentError(absl::StrCat("unknown kind \"", kind, "\""));
  example.kind = kind == "image" ? MediaKind::kImage : MediaKind::kVideo;
  const std::optional<ShapeKind> shape_kind = named(shape, kShapeKinds);
  const std::optional<ShapeColour> shape_colour = named(colour, kShapeColours);
  if (!shape_kind) return absl::InvalidArgumentError(absl::StrCat("unknown shape \"", shape, "\""));
  if (!shape_colour) return absl::InvalidArgumentError(absl::StrCat("unknown colour \"", colour, "\""));
  example.attributes.shape = *shape_kind;
  example.attributes.colour = *shape_colour;
  if (example.kind == MediaKind::kImage) {
    PLM_ASSIGN_OR_RETURN(const std::string position, field(a, "position"));
    example.attributes.position = named(position, kImagePositions);
    if (!example.attributes.position)
      return absl::InvalidArgumentError(absl::StrCat("unknown position \"", position, "\""));
  } else {
    PLM_ASSIGN_OR_RETURN(const std::string motion, field(a, "motion"));
    example.attributes.motion = named(motion, kMotions);
    if (!example.attributes.motion) return absl::InvalidArgumentError(absl::StrCat("unknown motion \"", motion, "\""));
  }
  PLM_ASSIGN_OR_RETURN(const std::vector<ChatMessage> messages, parse_sft_line(line.dump(), base_dir));
  for (const ChatMessage& message : messages) {
    for (const ContentPart& part : message.parts) {
      if (part.type != ContentPart::Type::kText) {
        example.media = part.url;
      } else if (message.role == "system") {
        example.system += part.text;
      } else if (message.role == "user") {
        example.question += part.text;
      } else if (message.role == "assistant") {
        example.answer += part.text;
      }
    }
  }
  if (example.media.empty()) return absl::InvalidArgumentError("no image or video in the conversation");
  return example;
}

}  // namespace

const char* name(SynthSplit split) {
  switch (split) {
    case SynthSplit::kTrain: return "train";
    case SynthSplit::kValidation: return "validation";
    case SynthSplit::kTest: return "test";
  }
  PLM_CHECK(false) << "unhandled SynthSplit " << static_cast<int>(split);
  return "";
}

const char* synthetic_question(MediaKind kind) {
  return kind == MediaKind::kImage ? "Describe the shape and where it is." : "Describe the shape and how it moves.";
}

absl::Status validate_synth_config(const SynthConfig& c) {
  if (c.num_images < 0 || c.num_videos < 0 || c.num_images + c.num_videos == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("images (", c.num_images, ") and videos (", c.num_videos, ") must be >= 0 and not both 0"));
  }
  if (c.size < kMinSize || c.size % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("size ", c.size, " must be even and at least ", kMinSize));
  }
  if (c.num_frames < 2) return absl::InvalidArgumentError(absl::StrCat("frames ", c.num_frames, " must be at least 2"));
  if (c.fps < 1) return absl::InvalidArgumentError(absl::StrCat("fps ", c.fps, " must be at least 1"));
  if (c.validation_fraction < 0 || c.test_fraction < 0 || c.validation_fraction + c.test_fraction > 1) {
    return absl::InvalidArgumentError(absl::StrCat("validation (", c.validation_fraction, ") and test (",
                                                   c.test_fraction, ") fractions must be >= 0 with a sum <= 1"));
  }
  return absl::OkStatus();
}

std::vector<SynthItem> plan_synthetic_items(const SynthConfig& config) {
  std::vector<SynthItem> items;
  items.reserve(static_cast<size_t>(config.num_images + config.num_videos));
  plan_kind(config, MediaKind::kImage, config.num_images, items);
  plan_kind(config, MediaKind::kVideo, config.num_videos, items);
  return items;
}

std::vector<RgbImage> render_synthetic_item(const SynthItem& item, const SynthConfig& config) {
  const int num_pictures = item.kind == MediaKind::kImage ? 1 : config.num_frames;
  std::vector<RgbImage> pictures;
  pictures.reserve(static_cast<size_t>(num_pictures));
  for (int f = 0; f < num_pictures; ++f) {
    const double t = num_pictures == 1 ? 0.0 : static_cast<double>(f) / (num_pictures - 1);
    ShapeSprite sprite = item.first;
    sprite.center_x += t * (item.last.center_x - item.first.center_x);
    sprite.center_y += t * (item.last.center_y - item.first.center_y);
    RgbImage picture = solid_image(config.size, config.size, item.background);
    draw_shape(picture, sprite);
    pictures.push_back(std::move(picture));
  }
  return pictures;
}

absl::StatusOr<SynthSummary> write_synthetic_dataset(const SynthConfig& config, const fs::path& out_dir,
                                                     const std::function<void(int64_t, int64_t)>& progress) {
  PLM_RETURN_IF_ERROR(validate_synth_config(config));
  for (const char* sub : {"images", "videos"}) {
    std::error_code error;
    fs::create_directories(out_dir / sub, error);
    if (error) return absl::InternalError(absl::StrCat((out_dir / sub).string(), ": cannot create: ", error.message()));
  }
  SynthSummary summary;
  summary.items = plan_synthetic_items(config);
  const auto total = static_cast<int64_t>(summary.items.size());
  std::vector<absl::Status> statuses(summary.items.size());
  int64_t done = 0;
#pragma omp parallel for schedule(dynamic)
  for (int64_t i = 0; i < total; ++i) {
    statuses[i] = write_media(summary.items[i], config, out_dir);
#pragma omp critical(plm_synth_progress)
    {
      ++done;
      if (progress) progress(done, total);
    }
  }
  for (const absl::Status& status : statuses) PLM_RETURN_IF_ERROR(status);

  for (const SynthSplit split : kSynthSplits) {
    std::string text;
    for (const SynthItem& item : summary.items) {
      if (item.split == split) absl::StrAppend(&text, conversation_json(item).dump(), "\n");
    }
    const fs::path path = out_dir / absl::StrCat(name(split), ".jsonl");
    PLM_RETURN_IF_ERROR(write_text_file(path, text));
    summary.jsonl_files.push_back(path);
  }
  return summary;
}

absl::StatusOr<std::vector<SynthExample>> read_synthetic_split(const fs::path& jsonl) {
  std::ifstream in(jsonl, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(jsonl.string(), ": cannot open"));
  std::vector<SynthExample> examples;
  std::string text;
  for (int64_t number = 1; std::getline(in, text); ++number) {
    if (text.empty()) continue;
    const nlohmann::json line = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    absl::StatusOr<SynthExample> example = line.is_object() ? example_from_json(line, jsonl.parent_path())
                                                            : absl::InvalidArgumentError("not a JSON object");
    if (!example.ok()) {
      return absl::Status(example.status().code(),
                          absl::StrCat(jsonl.string(), ":", number, ": ", example.status().message()));
    }
    examples.push_back(*std::move(example));
  }
  return examples;
}

}  // namespace plm::data
