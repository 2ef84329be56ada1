#include "caption/caption_record.h"

#include <bit>
#include <cstring>

#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace plm::caption {

namespace {

static_assert(std::endian::native == std::endian::little, "embeddings are stored as little-endian f32");

std::string encode_floats(const std::vector<float>& values) {
  return absl::Base64Escape(
      absl::string_view(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
}

absl::StatusOr<std::vector<float>> decode_floats(const std::string& text) {
  std::string bytes;
  if (!absl::Base64Unescape(text, &bytes) || bytes.size() % sizeof(float) != 0) {
    return absl::InvalidArgumentError("\"embedding\" is not base64 of f32 values");
  }
  std::vector<float> values(bytes.size() / sizeof(float));
  std::memcpy(values.data(), bytes.data(), bytes.size());
  return values;
}

}  // namespace

std::string record_line(const CaptionRecord& r, LineFields fields) {
  nlohmann::ordered_json doc;
  doc["id"] = r.id;
  doc["path"] = r.path;
  if (r.error) {
    doc["error"] = *r.error;
  } else {
    doc["caption"] = r.caption;
    doc["frames"] = r.frames;
    doc["prompt_tokens"] = r.prompt_tokens;
    doc["completion_tokens"] = r.completion_tokens;
    doc["seconds"] = static_cast<double>(static_cast<int64_t>(r.seconds * 1000 + 0.5)) / 1000;  // ms precision
    if (fields == LineFields::kPart && !r.embedding.empty()) doc["embedding"] = encode_floats(r.embedding);
  }
  // Invalid UTF-8 (a caption cut inside a character by the token limit) is replaced, never an exception.
  return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

absl::StatusOr<CaptionRecord> parse_record_line(const std::string& line) {
  const nlohmann::json doc = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return absl::InvalidArgumentError("not a JSON object");
  const auto text = [&](const char* key) -> const std::string* {
    const auto it = doc.find(key);
    return it != doc.end() && it->is_string() ? it->get_ptr<const std::string*>() : nullptr;
  };
  const auto count = [&](const char* key) -> std::optional<int64_t> {
    const auto it = doc.find(key);
    if (it == doc.end() || !it->is_number_integer()) return std::nullopt;
    return it->get<int64_t>();
  };
  CaptionRecord r;
  const std::string* id = text("id");
  const std::string* path = text("path");
  if (id == nullptr || path == nullptr) return absl::InvalidArgumentError("needs string \"id\" and \"path\"");
  r.id = *id;
  r.path = *path;
  if (const std::string* error = text("error")) {
    r.error = *error;
    return r;
  }
  const std::string* caption = text("caption");
  const std::optional<int64_t> frames = count("frames"), prompt = count("prompt_tokens"),
                               completion = count("completion_tokens");
  const auto seconds = doc.find("seconds");
  if (caption == nullptr || !frames || !prompt || !completion || seconds == doc.end() || !seconds->is_number()) {
    return absl::InvalidArgumentError(absl::StrCat("record ", r.id, ": needs \"caption\", \"frames\", "
                                                   "\"prompt_tokens\", \"completion_tokens\" and \"seconds\""));
  }
  r.caption = *caption;
  r.frames = *frames;
  r.prompt_tokens = *prompt;
  r.completion_tokens = *completion;
  r.seconds = seconds->get<double>();
  if (const std::string* embedding = text("embedding")) {
    absl::StatusOr<std::vector<float>> values = decode_floats(*embedding);
    if (!values.ok()) return absl::InvalidArgumentError(absl::StrCat("record ", r.id, ": ", values.status().message()));
    r.embedding = *std::move(values);
  }
  return r;
}

}  // namespace plm::caption
