// The OpenAI-compatible API's JSON: request bodies of /v1/chat/completions and /v1/completions parsed and
// validated into what the engine takes, and every response body (completions, SSE chunks, usage, models,
// errors). Errors are absl::Status values whose code decides the HTTP status (http_status_of): a malformed or
// unsupported request is InvalidArgument (400), a limit ResourceExhausted or OutOfRange (422).
// Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "data/chat_template.h"
#include "serve/request.h"

namespace plm::serve::http {

enum class ApiKind { kChat, kCompletion };

struct ApiLimits {
  int max_messages = 256;
  int max_stop_strings = 4;  // OpenAI's limit
};

struct ApiRequest {
  ApiKind kind = ApiKind::kChat;
  std::string model;                        // as sent ("" when absent)
  std::vector<data::ChatMessage> messages;  // kChat
  std::string prompt;                       // kCompletion
  std::optional<int64_t> max_tokens;        // max_completion_tokens, else max_tokens; absent: the API's default
  GenerationParams params;                  // sampling and stop strings (max_tokens set by the caller)
  bool seeded = false;                      // "seed" given (else the caller draws one)
  bool stream = false;
  bool include_usage = false;               // stream_options.include_usage
};

absl::StatusOr<ApiRequest> parse_api_request(ApiKind kind, std::string_view body, const ApiLimits& limits);

// The HTTP status for an error status, and OpenAI's error "type" for it.
int http_status_of(const absl::Status& status);
const char* error_type_of(int http_status);
// {"error": {"message", "type", "param": null, "code"}}.
std::string error_body(int http_status, std::string_view message, std::string_view code = {});

// Fields every response of one request shares.
struct ResponseHeader {
  std::string id;   // "chatcmpl-..." / "cmpl-..."
  int64_t created;  // Unix seconds
  std::string model;
};

std::string completion_body(ApiKind kind, const ResponseHeader& h, const std::string& text, FinishReason finish,
                            const Usage& usage);
// One SSE event ("data: {...}\n\n"): a delta (the first chat chunk carries the role), the final chunk with
// finish_reason, or the usage chunk (empty choices). include_usage adds "usage": null to the others.
std::string delta_event(ApiKind kind, const ResponseHeader& h, const std::string& text, bool first, bool include_usage);
std::string finish_event(ApiKind kind, const ResponseHeader& h, FinishReason finish, bool include_usage);
std::string usage_event(ApiKind kind, const ResponseHeader& h, const Usage& usage);
std::string error_event(int http_status, std::string_view message);
inline constexpr std::string_view kDoneEvent = "data: [DONE]\n\n";

std::string models_body(const std::string& model, int64_t created, int64_t max_model_len);

}  // namespace plm::serve::http
