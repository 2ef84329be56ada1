// Labels are decided per template segment: each segment is tokenized on its own and the ids concatenated,
// which must equal the tokens of the whole rendered text (HF tokenizes that); every segment boundary sits
// at a special token or after a header's "\n\n" followed by trimmed text, so the regex never joins two.
#include "data/sft_sample.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace plm::data {
namespace {

// Ids of the template segments (unexpanded) and, per id, whether the assistant mode labels it.
struct SegmentTokens {
  std::vector<int32_t> ids;
  std::vector<uint8_t> assistant;
};

absl::StatusOr<SegmentTokens> tokenize_segments(const std::vector<ChatMessage>& messages, const Tokenizer& tokenizer) {
  const EncodeOptions options{.allow_special = true, .add_bos = false};  // the template writes its own BOS
  SegmentTokens out;
  std::string rendered;
  for (const PromptSegment& segment : render_chat_segments(messages, /*add_generation_prompt=*/false)) {
    const bool assistant_turn = segment.message_index >= 0 && messages[segment.message_index].role == "assistant";
    const bool labelled = assistant_turn && (segment.kind == PromptSegment::Kind::kText ||
                                             segment.kind == PromptSegment::Kind::kEnd);
    tokenizer.encode_append(segment.text, options, &out.ids);
    out.assistant.resize(out.ids.size(), labelled ? 1 : 0);
    rendered += segment.text;
  }
  if (tokenizer.encode(rendered, options) != out.ids) {
    return absl::InternalError("the conversation's tokens differ when its turns are tokenized separately");
  }
  return out;
}

// Placeholders are never labelled, so the expanded mask holds the unexpanded labels of the other tokens,
// in order, and 0 at every placeholder.
std::vector<uint8_t> expand_mask(const std::vector<int32_t>& ids, const std::vector<int32_t>& expanded,
                                 const std::vector<uint8_t>& mask, int32_t image_id, int32_t video_id) {
  const auto is_media = [&](int32_t id) { return id == image_id || id == video_id; };
  std::vector<uint8_t> out(expanded.size(), 0);
  size_t from = 0;
  for (size_t i = 0; i < expanded.size(); ++i) {
    if (is_media(expanded[i])) continue;
    while (is_media(ids[from])) ++from;
    out[i] = mask[from++];
  }
  return out;
}

}  // namespace

absl::StatusOr<LabelMode> parse_label_mode(std::string_view name) {
  if (name == "assistant") return LabelMode::kAssistant;
  if (name == "all_but_media") return LabelMode::kAllButMedia;
  return absl::InvalidArgumentError(absl::StrCat("unknown label mode \"", std::string(name), "\" (expected assistant or all_but_media)"));
}

const char* label_mode_name(LabelMode mode) {
  switch (mode) {
    case LabelMode::kAssistant: return "assistant";
    case LabelMode::kAllButMedia: return "all_but_media";
  }
  return "";
}

int64_t SftSample::num_labelled() const { return std::accumulate(label_mask.begin(), label_mask.end(), int64_t{0}); }

int64_t SftSample::num_vision_tiles() const {
  return std::accumulate(tiles_per_image.begin(), tiles_per_image.end(), int64_t{0}) +
         std::accumulate(frames_per_video.begin(), frames_per_video.end(), int64_t{0});
}

SftSample select_labels(SftExample example, LabelMode mode) {
  SftSample sample;
  static_cast<MediaInputs&>(sample) = std::move(static_cast<MediaInputs&>(example));
  sample.ids = std::move(example.ids);
  switch (mode) {
    case LabelMode::kAssistant: sample.label_mask = std::move(example.assistant_mask); break;
    case LabelMode::kAllButMedia: sample.label_mask = std::move(example.all_but_media_mask); break;
  }
  return sample;
}

absl::Status validate_sft_conversation(const std::vector<ChatMessage>& messages) {
  bool has_assistant = false;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role != "system" && m.role != "user" && m.role != "assistant") {
      return absl::InvalidArgumentError(
          absl::StrCat("messages[", i, "]: unknown role \"", m.role, "\" (expected system, user or assistant)"));
    }
    has_assistant |= m.role == "assistant";
    const bool has_media = std::any_of(m.parts.begin(), m.parts.end(),
                                       [](const ContentPart& p) { return p.type != ContentPart::Type::kText; });
    if (i == 0 && m.role == "system" && has_media) {
      return absl::InvalidArgumentError(
          "messages[0]: a leading system turn renders as text only; its image/video parts would be dropped");
    }
  }
  if (!has_assistant) return absl::InvalidArgumentError("no assistant turn: the conversation has nothing to train on");
  return absl::OkStatus();
}

absl::StatusOr<int> sft_tokens_per_tile(const ProcessorConfig& processor) {
  const int image = processor.image_tokens_per_tile(), video = processor.video_tokens_per_frame();
  if (image != video) {
    return absl::InvalidArgumentError(absl::StrCat(
        "an image tile gives ", image, " placeholder tokens (tile_size ", processor.image.tile_size,
        ") but a video frame gives ", video, " (size ", processor.video.height, "x", processor.video.width,
        "); one vision tower needs the same count"));
  }
  return image;
}

absl::StatusOr<SftExample> build_sft_example(const std::vector<ChatMessage>& messages, const Tokenizer& tokenizer,
                                             const ProcessorConfig& processor, const SftDataConfig& config) {
  PLM_RETURN_IF_ERROR(validate_sft_conversation(messages));
  PLM_ASSIGN_OR_RETURN(const int tokens_per_tile, sft_tokens_per_tile(processor));
  const std::optional<int32_t> image_id = tokenizer.special_token_id("<|image|>");
  const std::optional<int32_t> video_id = tokenizer.special_token_id("<|video|>");
  if (!image_id || !video_id) return absl::FailedPreconditionError("the tokenizer has no <|image|> / <|video|> token");

  SftExample example;
  PLM_ASSIGN_OR_RETURN(static_cast<MediaInputs&>(example), load_media(messages, processor, config.media));
  PLM_ASSIGN_OR_RETURN(const SegmentTokens tokens, tokenize_segments(messages, tokenizer));
  PLM_ASSIGN_OR_RETURN(example.ids, expand_media_placeholders(tokens.ids, tokenizer, example, tokens_per_tile));
  const int64_t length = static_cast<int64_t>(example.ids.size());
  if (config.max_tokens && length > *config.max_tokens) {
    return absl::InvalidArgumentError(absl::StrCat(length, " tokens (placeholders expanded) exceed max_tokens ",
                                                   *config.max_tokens));
  }
  example.assistant_mask = expand_mask(tokens.ids, example.ids, tokens.assistant, *image_id, *video_id);
  example.all_but_media_mask.assign(example.ids.size(), 1);
  for (size_t i = 0; i < example.ids.size(); ++i) {
    if (example.ids[i] == *image_id || example.ids[i] == *video_id) example.all_but_media_mask[i] = 0;
  }
  example.assistant_mask[0] = 0;  // nothing predicts the first token
  example.all_but_media_mask[0] = 0;
  return example;
}

}  // namespace plm::data
