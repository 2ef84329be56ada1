// The PLM chat format (spec/tokenizer.md §1.4): OpenAI-style `messages` JSON -> the prompt text HF's
// template renders -> token ids with each media placeholder expanded to its embedding rows.
// The template always emits a system turn (a default sentence when none is given); inside a turn all
// images come first, then all videos, then the trimmed text parts joined with nothing in between. The
// rendered text starts with <|begin_of_text|>, so it is tokenized without adding another BOS.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/tokenizer.h"

namespace plm::data {

struct ContentPart {
  enum class Type { kText, kImage, kVideo };
  Type type = Type::kText;
  std::string text;  // kText
  std::string url;   // kImage / kVideo: a path, file:// URL or data: URL as given (may be empty)
};

struct ChatMessage {
  std::string role;
  std::vector<ContentPart> parts;  // user/assistant turns; a system turn's text is parts[0].text
};

// Parses `messages` (a JSON array). Content: a string (a single text part) or a list of parts of type
// "text", "image" / "image_url", "video" / "video_url". Errors name the message index and the problem
// (unknown part type, missing role, a non-string text, ...).
absl::StatusOr<std::vector<ChatMessage>> parse_chat_messages(const std::string& messages_json);

// The conversation `plm generate --image/--video --prompt [--system]` and `plm caption` ask: a system turn when
// `system` is not empty, then one user turn holding the images, the videos (paths as given) and the text.
std::vector<ChatMessage> single_turn_conversation(const std::string& prompt, const std::vector<std::string>& images,
                                                  const std::vector<std::string>& videos,
                                                  const std::string& system = {});

// One piece of the rendered prompt, in order: per turn a header ("<|start_header_id|>ROLE<|end_header_id|>\n\n",
// the first one led by <|begin_of_text|>), its media placeholders, its trimmed text and its <|eot_id|>.
// The training labels are decided per segment (data/sft_sample.h).
struct PromptSegment {
  enum class Kind { kHeader, kMedia, kText, kEnd };
  std::string text;
  int message_index;  // into `messages`; -1 for the default system turn and the generation prompt
  Kind kind;
};

std::vector<PromptSegment> render_chat_segments(const std::vector<ChatMessage>& messages, bool add_generation_prompt);

// The prompt text exactly as HF renders PLM's template: the segments concatenated. A system message's
// parts are joined text (HF would print a Python list repr for list-valued system content; plm takes the
// text instead).
std::string render_chat_prompt(const std::vector<ChatMessage>& messages, bool add_generation_prompt);

// Python str.strip(): Unicode White_Space plus U+001C..U+001F, on UTF-8 text.
std::string python_strip(const std::string& text);

// Media in prompt order of one kind.
std::vector<const ContentPart*> media_parts(const std::vector<ChatMessage>& messages, ContentPart::Type type);

// Replaces the i-th `placeholder` id by rows_per_item[i] copies of it (tiles or frames x tokens per
// tile). An error when the counts of placeholders and items differ.
absl::StatusOr<std::vector<int32_t>> expand_placeholders(const std::vector<int32_t>& ids, int32_t placeholder,
                                                         const std::vector<int64_t>& rows_per_item);

}  // namespace plm::data
