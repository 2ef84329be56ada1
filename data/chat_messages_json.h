// parse_chat_messages on an already parsed JSON value, for readers that hold a conversation inside a larger
// document (an SFT JSONL line). Internal to plm_data: nlohmann_json is a private dependency.
#pragma once

#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "data/chat_template.h"

namespace plm::data {

// `doc` is the `messages` array; errors as parse_chat_messages.
absl::StatusOr<std::vector<ChatMessage>> parse_chat_messages_json(const nlohmann::json& doc);

}  // namespace plm::data
