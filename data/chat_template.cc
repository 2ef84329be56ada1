#include "data/chat_template.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/json_depth.h"
#include "data/chat_messages_json.h"

namespace plm::data {

namespace {

constexpr const char* kDefaultSystemPrompt =
    "You are a helpful language and vision assistant. You are able to understand the visual content that the "
    "user provides, and assist the user with a variety of tasks using natural language.";

// Decodes the UTF-8 code point at text[pos] into *cp; returns its byte length (1 for invalid bytes).
size_t decode_utf8(const std::string& text, size_t pos, uint32_t* cp) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char b0 = byte(pos);
  size_t length = b0 < 0x80 ? 1 : (b0 >> 5) == 0x6 ? 2 : (b0 >> 4) == 0xe ? 3 : (b0 >> 3) == 0x1e ? 4 : 0;
  if (length == 0 || pos + length > text.size()) {
    *cp = 0xFFFD;
    return 1;
  }
  uint32_t value = length == 1 ? b0 : b0 & (0x7f >> length);
  for (size_t i = 1; i < length; ++i) {
    if ((byte(pos + i) & 0xc0) != 0x80) {
      *cp = 0xFFFD;
      return 1;
    }
    value = (value << 6) | (byte(pos + i) & 0x3f);
  }
  *cp = value;
  return length;
}

bool is_python_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f ||
         cp == 0x3000;
}

absl::StatusOr<ContentPart> parse_part(const nlohmann::json& part, size_t message_index, size_t part_index) {
  const std::string where = absl::StrCat("messages[", message_index, "].content[", part_index, "]");
  if (!part.is_object() || !part.contains("type") || !part["type"].is_string()) {
    return absl::InvalidArgumentError(where + ": a content part must be an object with a string \"type\"");
  }
  const std::string type = part["type"].get<std::string>();
  ContentPart out;
  if (type == "text") {
    if (!part.contains("text") || !part["text"].is_string()) {
      return absl::InvalidArgumentError(where + ": a text part needs a string \"text\"");
    }
    out.text = part["text"].get<std::string>();
    return out;
  }
  const bool image = type == "image" || type == "image_url";
  const bool video = type == "video" || type == "video_url";
  if (!image && !video) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": unknown content part type \"", type, "\" (expected text, image, image_url, video or video_url)"));
  }
  out.type = image ? ContentPart::Type::kImage : ContentPart::Type::kVideo;
  // OpenAI: {"type": "image_url", "image_url": {"url": ...}}; HF: {"type": "image", "url"|"path"|"image": ...}.
  for (const char* key : {"image_url", "video_url", "url", "path", "image", "video"}) {
    if (!part.contains(key)) continue;
    const nlohmann::json& value = part[key];
    if (value.is_string()) out.url = value.get<std::string>();
    if (value.is_object() && value.contains("url") && value["url"].is_string()) out.url = value["url"].get<std::string>();
    if (!out.url.empty()) break;
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<ChatMessage>> parse_chat_messages(const std::string& messages_json) {
  if (const std::string problem = json_depth_problem(messages_json); !problem.empty()) {
    return absl::InvalidArgumentError("messages: " + problem);
  }
  const nlohmann::json doc = nlohmann::json::parse(messages_json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return absl::InvalidArgumentError("messages: not valid JSON");
  return parse_chat_messages_json(doc);
}

absl::StatusOr<std::vector<ChatMessage>> parse_chat_messages_json(const nlohmann::json& doc) {
  if (!doc.is_array() || doc.empty()) return absl::InvalidArgumentError("messages: expected a non-empty JSON array");
  std::vector<ChatMessage> messages;
  for (size_t i = 0; i < doc.size(); ++i) {
    const nlohmann::json& m = doc[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat("messages[", i, "]: needs a string \"role\""));
    }
    ChatMessage message;
    message.role = m["role"].get<std::string>();
    static const nlohmann::json kNoContent;
    const nlohmann::json& content = m.contains("content") ? m["content"] : kNoContent;
    if (content.is_string()) {
      message.parts.push_back({ContentPart::Type::kText, content.get<std::string>(), ""});
    } else if (content.is_array()) {
      for (size_t j = 0; j < content.size(); ++j) {
        absl::StatusOr<ContentPart> part = parse_part(content[j], i, j);
        if (!part.ok()) return part.status();
        message.parts.push_back(*std::move(part));
      }
    } else if (!content.is_null()) {
      return absl::InvalidArgumentError(absl::StrCat("messages[", i, "].content: expected a string or a list of parts"));
    }
    messages.push_back(std::move(message));
  }
  return messages;
}

std::string python_strip(const std::string& text) {
  size_t begin = 0, end = text.size();
  while (begin < end) {
    uint32_t cp = 0;
    const size_t n = decode_utf8(text, begin, &cp);
    if (!is_python_space(cp)) break;
    begin += n;
  }
  // Scan backwards to the start of the last code point.
  while (end > begin) {
    size_t start = end - 1;
    while (start > begin && (static_cast<unsigned char>(text[start]) & 0xc0) == 0x80) --start;
    uint32_t cp = 0;
    if (decode_utf8(text, start, &cp) != end - start || !is_python_space(cp)) break;
    end = start;
  }
  return text.substr(begin, end - begin);
}

std::vector<ChatMessage> single_turn_conversation(const std::string& prompt, const std::vector<std::string>& images,
                                                  const std::vector<std::string>& videos, const std::string& system) {
  std::vector<ChatMessage> messages;
  if (!system.empty()) messages.push_back({.role = "system", .parts = {{ContentPart::Type::kText, system, ""}}});
  ChatMessage& user = messages.emplace_back(ChatMessage{.role = "user", .parts = {}});
  for (const std::string& url : images) user.parts.push_back({ContentPart::Type::kImage, "", url});
  for (const std::string& url : videos) user.parts.push_back({ContentPart::Type::kVideo, "", url});
  user.parts.push_back({ContentPart::Type::kText, prompt, ""});
  return messages;
}

std::vector<PromptSegment> render_chat_segments(const std::vector<ChatMessage>& messages,
                                                bool add_generation_prompt) {
  using Kind = PromptSegment::Kind;
  std::vector<PromptSegment> out;
  size_t first = 0;
  std::string system = kDefaultSystemPrompt;
  int system_message = -1;
  if (!messages.empty() && messages[0].role == "system") {
    std::string text;
    for (const ContentPart& p : messages[0].parts) {
      if (p.type == ContentPart::Type::kText) text += p.text;
    }
    system = python_strip(text);
    system_message = 0;
    first = 1;
  }
  out.push_back({"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n", system_message, Kind::kHeader});
  out.push_back({system, system_message, Kind::kText});
  out.push_back({"<|eot_id|>", system_message, Kind::kEnd});
  for (size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    const int index = static_cast<int>(i);
    out.push_back({"<|start_header_id|>" + m.role + "<|end_header_id|>\n\n", index, Kind::kHeader});
    std::string media, text;
    for (const ContentPart& p : m.parts) {
      if (p.type == ContentPart::Type::kImage) media += "<|image|>";
    }
    for (const ContentPart& p : m.parts) {
      if (p.type == ContentPart::Type::kVideo) media += "<|video|>";
    }
    for (const ContentPart& p : m.parts) {
      if (p.type == ContentPart::Type::kText) text += python_strip(p.text);
    }
    out.push_back({std::move(media), index, Kind::kMedia});
    out.push_back({std::move(text), index, Kind::kText});
    out.push_back({"<|eot_id|>", index, Kind::kEnd});
  }
  if (add_generation_prompt) out.push_back({"<|start_header_id|>assistant<|end_header_id|>\n\n", -1, Kind::kHeader});
  return out;
}

std::string render_chat_prompt(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  std::string out;
  for (const PromptSegment& segment : render_chat_segments(messages, add_generation_prompt)) out += segment.text;
  return out;
}

std::vector<const ContentPart*> media_parts(const std::vector<ChatMessage>& messages, ContentPart::Type type) {
  std::vector<const ContentPart*> out;
  // A leading system message renders as text only (render_chat_prompt), so its parts hold no media.
  const size_t first = !messages.empty() && messages[0].role == "system" ? 1 : 0;
  for (size_t i = first; i < messages.size(); ++i) {
    for (const ContentPart& p : messages[i].parts) {
      if (p.type == type) out.push_back(&p);
    }
  }
  return out;
}

absl::StatusOr<std::vector<int32_t>> expand_placeholders(const std::vector<int32_t>& ids, int32_t placeholder,
                                                         const std::vector<int64_t>& rows_per_item) {
  std::vector<int32_t> out;
  size_t item = 0;
  for (int32_t id : ids) {
    if (id != placeholder) {
      out.push_back(id);
      continue;
    }
    if (item >= rows_per_item.size()) break;
    out.insert(out.end(), rows_per_item[item], placeholder);
    ++item;
  }
  const size_t placeholders = static_cast<size_t>(std::count(ids.begin(), ids.end(), placeholder));
  if (placeholders != rows_per_item.size()) {
    return absl::InvalidArgumentError(absl::StrCat("the prompt has ", placeholders, " placeholders (id ", placeholder,
                                                   ") but ", rows_per_item.size(), " media items were given"));
  }
  return out;
}

}  // namespace plm::data
