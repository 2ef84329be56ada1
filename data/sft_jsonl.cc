#include "data/sft_jsonl.h"

#include <fstream>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "core/json_depth.h"
#include "core/status_macros.h"
#include "data/chat_messages_json.h"

namespace plm::data {
namespace {

absl::Status with_location(const absl::Status& status, const std::string& location) {
  return absl::Status(status.code(), absl::StrCat(location, ": ", status.message()));
}

// Every media file of `messages` (already resolved) must be a readable regular file.
absl::Status check_media_files(const std::vector<ChatMessage>& messages) {
  for (size_t i = 0; i < messages.size(); ++i) {
    for (size_t j = 0; j < messages[i].parts.size(); ++j) {
      const ContentPart& part = messages[i].parts[j];
      if (part.type == ContentPart::Type::kText) continue;
      std::error_code error;
      if (!std::filesystem::is_regular_file(part.url, error)) {
        return absl::NotFoundError(absl::StrCat("messages[", i, "].content[", j, "]: ",
                                                part.type == ContentPart::Type::kImage ? "image " : "video ", part.url,
                                                ": no such file"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<ChatMessage>> parse_sft_line(std::string_view line, const std::filesystem::path& base_dir) {
  if (const std::string problem = json_depth_problem(line); !problem.empty()) return absl::InvalidArgumentError(problem);
  const nlohmann::json doc = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return absl::InvalidArgumentError("not valid JSON");
  if (!doc.is_object() || !doc.contains("messages")) {
    return absl::InvalidArgumentError("expected an object with a \"messages\" list");
  }
  PLM_ASSIGN_OR_RETURN(std::vector<ChatMessage> messages, parse_chat_messages_json(doc["messages"]));
  for (size_t i = 0; i < messages.size(); ++i) {
    for (size_t j = 0; j < messages[i].parts.size(); ++j) {
      ContentPart& part = messages[i].parts[j];
      if (part.type == ContentPart::Type::kText) continue;
      absl::StatusOr<std::filesystem::path> path = media_file_path(part);
      if (!path.ok()) return with_location(path.status(), absl::StrCat("messages[", i, "].content[", j, "]"));
      part.url = (path->is_relative() ? base_dir / *path : *path).string();
    }
  }
  PLM_RETURN_IF_ERROR(validate_sft_conversation(messages));
  return messages;
}

SftJsonlDataset::SftJsonlDataset(std::filesystem::path path, const Tokenizer& tokenizer,
                                 const ProcessorConfig& processor, const SftDataConfig& config,
                                 std::vector<Line> lines)
    : path_(std::move(path)), tokenizer_(tokenizer), processor_(processor), config_(config), lines_(std::move(lines)) {}

absl::StatusOr<std::unique_ptr<SftJsonlDataset>> SftJsonlDataset::open(const std::filesystem::path& path,
                                                                       const Tokenizer& tokenizer,
                                                                       const ProcessorConfig& processor,
                                                                       const SftDataConfig& config) {
  PLM_RETURN_IF_ERROR(sft_tokens_per_tile(processor).status());
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path.string(), ": cannot open"));
  const std::filesystem::path base_dir = path.parent_path();
  std::vector<Line> lines;
  std::string text;
  int64_t offset = 0;
  for (int64_t number = 1; std::getline(in, text); ++number) {
    const Line line{offset, static_cast<int64_t>(text.size()), number};
    offset += line.length + 1;
    if (absl::StripAsciiWhitespace(text).empty()) continue;
    absl::StatusOr<std::vector<ChatMessage>> messages = parse_sft_line(text, base_dir);
    absl::Status status = messages.ok() ? check_media_files(*messages) : messages.status();
    if (!status.ok()) return with_location(status, absl::StrCat(path.string(), ":", number));
    lines.push_back(line);
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat(path.string(), ": read error"));
  if (lines.empty()) return absl::InvalidArgumentError(absl::StrCat(path.string(), ": no samples (every line is blank)"));
  return std::unique_ptr<SftJsonlDataset>(new SftJsonlDataset(path, tokenizer, processor, config, std::move(lines)));
}

std::string SftJsonlDataset::location(int64_t index) const {
  PLM_CHECK(index >= 0 && index < size()) << index << " of " << size();
  return absl::StrCat(path_.string(), ":", lines_[index].number);
}

absl::StatusOr<SftExample> SftJsonlDataset::example(int64_t index) const {
  PLM_CHECK(index >= 0 && index < size()) << index << " of " << size();
  const Line& line = lines_[index];
  std::ifstream in(path_, std::ios::binary);
  std::string text(static_cast<size_t>(line.length), '\0');
  if (!in.seekg(line.offset) || !in.read(text.data(), line.length)) {
    return absl::DataLossError(absl::StrCat(location(index), ": cannot read the line (was the file changed?)"));
  }
  absl::StatusOr<std::vector<ChatMessage>> messages = parse_sft_line(text, path_.parent_path());
  if (!messages.ok()) return with_location(messages.status(), location(index));
  absl::StatusOr<SftExample> example = build_sft_example(*messages, tokenizer_, processor_, config_);
  if (!example.ok()) return with_location(example.status(), location(index));
  return example;
}

absl::StatusOr<SftSample> SftJsonlDataset::sample(int64_t index) const {
  PLM_ASSIGN_OR_RETURN(SftExample example, this->example(index));
  return select_labels(std::move(example), config_.labels);
}

absl::StatusOr<SampleExtent> SftJsonlDataset::extent(int64_t index) const {
  PLM_ASSIGN_OR_RETURN(const SftSample sample, this->sample(index));
  return SampleExtent{static_cast<int64_t>(sample.ids.size()), sample.num_vision_tiles()};
}

}  // namespace plm::data
