#include "serve/http/openai_protocol.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "core/json_depth.h"
#include "data/chat_messages_json.h"

namespace plm::serve::http {

namespace {

using nlohmann::json;


absl::Status invalid(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

// The field, or null when absent or JSON null.
const json* field(const json& doc, const char* name) {
  const auto it = doc.find(name);
  return it == doc.end() || it->is_null() ? nullptr : &*it;
}

absl::StatusOr<std::optional<int64_t>> integer(const json& doc, const char* name, int64_t min) {
  const json* v = field(doc, name);
  if (v == nullptr) return std::optional<int64_t>();
  if (!v->is_number_integer() || (v->is_number_unsigned() && v->get<uint64_t>() > INT64_MAX)) {
    return invalid(name, "must be an integer");
  }
  const int64_t value = v->get<int64_t>();
  if (value < min) return invalid(name, absl::StrCat("must be at least ", min, ", not ", value));
  return std::optional<int64_t>(value);
}

absl::StatusOr<std::optional<double>> number(const json& doc, const char* name, double lo, double hi, bool lo_open) {
  const json* v = field(doc, name);
  if (v == nullptr) return std::optional<double>();
  const double value = v->is_number() ? v->get<double>() : lo - 1;
  if (!v->is_number() || value > hi || value < lo || (lo_open && value == lo)) {
    return invalid(name, absl::StrCat("must be a number in ", lo_open ? "(" : "[", lo, ", ", hi, "]"));
  }
  return std::optional<double>(value);
}

absl::StatusOr<bool> boolean(const json& doc, const char* name) {
  const json* v = field(doc, name);
  if (v == nullptr) return false;
  if (!v->is_boolean()) return invalid(name, "must be true or false");
  return v->get<bool>();
}

// Parameters plm does not implement are refused rather than ignored, so a client never gets silently other
// behaviour than it asked for.
absl::Status refuse_unsupported(const json& doc) {
  for (const char* name : {"logprobs", "echo"}) {
    if (const json* v = field(doc, name); v != nullptr && !(v->is_boolean() && !v->get<bool>())) {
      return invalid(name, "is not supported");
    }
  }
  for (const char* name : {"presence_penalty", "frequency_penalty"}) {
    if (const json* v = field(doc, name); v != nullptr && !(v->is_number() && v->get<double>() == 0.0)) {
      return invalid(name, "is not supported (only 0)");
    }
  }
  for (const char* name : {"tools", "functions", "logit_bias", "top_logprobs", "suffix"}) {
    if (const json* v = field(doc, name); v != nullptr && !v->empty()) return invalid(name, "is not supported");
  }
  if (const json* v = field(doc, "best_of"); v != nullptr && !(v->is_number_integer() && v->get<int64_t>() == 1)) {
    return invalid("best_of", "is not supported (only 1)");
  }
  if (const json* v = field(doc, "response_format"); v != nullptr) {
    const json* type = v->is_object() ? field(*v, "type") : nullptr;
    if (type == nullptr || *type != "text") return invalid("response_format", "only {\"type\": \"text\"} is supported");
  }
  return absl::OkStatus();
}

absl::Status parse_messages(const json& doc, const ApiLimits& limits, ApiRequest& r) {
  const json* messages = field(doc, "messages");
  if (messages == nullptr || !messages->is_array() || messages->empty()) {
    return invalid("messages", "a non-empty array of messages is required");
  }
  if (static_cast<int>(messages->size()) > limits.max_messages) {
    return absl::ResourceExhaustedError(
        absl::StrCat("messages: ", messages->size(), " messages; this server takes at most ", limits.max_messages));
  }
  absl::StatusOr<std::vector<data::ChatMessage>> parsed = data::parse_chat_messages_json(*messages);
  if (!parsed.ok()) return invalid("messages", parsed.status().message());
  for (size_t i = 0; i < parsed->size(); ++i) {
    std::string& role = (*parsed)[i].role;
    if (role == "developer") role = "system";  // OpenAI's newer name for the system turn
    if (role != "system" && role != "user" && role != "assistant") {
      return invalid(absl::StrCat("messages[", i, "].role"), absl::StrCat("\"", role, "\" (expected system, user or assistant)"));
    }
  }
  r.messages = std::move(*parsed);
  return absl::OkStatus();
}

absl::Status parse_prompt(const json& doc, ApiRequest& r) {
  const json* prompt = field(doc, "prompt");
  if (prompt != nullptr && prompt->is_array() && prompt->size() == 1) prompt = &(*prompt)[0];
  if (prompt == nullptr || !prompt->is_string()) return invalid("prompt", "a string (or a list of one string) is required");
  r.prompt = prompt->get<std::string>();
  if (r.prompt.empty()) return invalid("prompt", "is empty");
  return absl::OkStatus();
}

absl::Status parse_stop(const json& doc, const ApiLimits& limits, ApiRequest& r) {
  const json* stop = field(doc, "stop");
  if (stop == nullptr) return absl::OkStatus();
  if (stop->is_string()) {
    r.params.stop = {stop->get<std::string>()};
  } else if (stop->is_array()) {
    for (const json& s : *stop) {
      if (!s.is_string()) return invalid("stop", "must be a string or a list of strings");
      r.params.stop.push_back(s.get<std::string>());
    }
  } else {
    return invalid("stop", "must be a string or a list of strings");
  }
  if (static_cast<int>(r.params.stop.size()) > limits.max_stop_strings) {
    return invalid("stop", absl::StrCat("at most ", limits.max_stop_strings, " stop strings"));
  }
  return absl::OkStatus();
}

json usage_json(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_prompt_tokens}}},
          {"media_items", {{"cached", u.cached_media_items}, {"encoded", u.encoded_media_items}}}};
}

json head(ApiKind kind, const ResponseHeader& h, bool chunk) {
  const char* object = kind == ApiKind::kChat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion";
  return {{"id", h.id}, {"object", object}, {"created", h.created}, {"model", h.model}};
}

// Invalid UTF-8 (a model may emit it) becomes U+FFFD instead of an exception.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string event(const json& j) { return absl::StrCat("data: ", dump(j), "\n\n"); }

}  // namespace

absl::StatusOr<ApiRequest> parse_api_request(ApiKind kind, std::string_view body, const ApiLimits& limits) {
  if (const std::string problem = json_depth_problem(body); !problem.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("the request body is ", problem));
  }
  const json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return absl::InvalidArgumentError("the request body is not valid JSON");
  if (!doc.is_object()) return absl::InvalidArgumentError("the request body must be a JSON object");
  ApiRequest r;
  r.kind = kind;
  if (const json* model = field(doc, "model"); model != nullptr) {
    if (!model->is_string()) return invalid("model", "must be a string");
    r.model = model->get<std::string>();
  }
  if (absl::Status s = kind == ApiKind::kChat ? parse_messages(doc, limits, r) : parse_prompt(doc, r); !s.ok()) return s;
  if (absl::Status s = refuse_unsupported(doc); !s.ok()) return s;
  const char* max_name = kind == ApiKind::kChat && field(doc, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  absl::StatusOr<std::optional<int64_t>> max_tokens = integer(doc, max_name, 1);
  if (!max_tokens.ok()) return max_tokens.status();
  r.max_tokens = *max_tokens;
  absl::StatusOr<std::optional<double>> temperature = number(doc, "temperature", 0, 2, false);
  if (!temperature.ok()) return temperature.status();
  absl::StatusOr<std::optional<double>> top_p = number(doc, "top_p", 0, 1, true);
  if (!top_p.ok()) return top_p.status();
  absl::StatusOr<std::optional<int64_t>> top_k = integer(doc, "top_k", -1);  // vLLM's extension; -1 or 0: off
  if (!top_k.ok()) return top_k.status();
  r.params.sampling.temperature = static_cast<float>(temperature->value_or(1.0));
  r.params.sampling.top_p = static_cast<float>(top_p->value_or(1.0));
  r.params.sampling.top_k = static_cast<int>(std::max<int64_t>(0, top_k->value_or(0)));
  if (const json* seed = field(doc, "seed"); seed != nullptr) {
    if (!seed->is_number_integer()) return invalid("seed", "must be an integer");
    r.params.sampling.seed = seed->is_number_unsigned() ? seed->get<uint64_t>() : static_cast<uint64_t>(seed->get<int64_t>());
    r.seeded = true;
  }
  if (absl::Status s = parse_stop(doc, limits, r); !s.ok()) return s;
  absl::StatusOr<std::optional<int64_t>> n = integer(doc, "n", 1);
  if (!n.ok()) return n.status();
  if (n->value_or(1) != 1) return invalid("n", "only n = 1 is supported");
  absl::StatusOr<bool> stream = boolean(doc, "stream");
  if (!stream.ok()) return stream.status();
  r.stream = *stream;
  if (const json* options = field(doc, "stream_options"); options != nullptr) {
    if (!options->is_object()) return invalid("stream_options", "must be an object");
    absl::StatusOr<bool> include_usage = boolean(*options, "include_usage");
    if (!include_usage.ok()) return invalid("stream_options", include_usage.status().message());
    r.include_usage = *include_usage;
  }
  return r;
}

int http_status_of(const absl::Status& status) {
  // absl::StatusCode asks for a default (it reserves values for future codes).
  switch (status.code()) {
    case absl::StatusCode::kOk: return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:  // a media file: the route exists
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kUnimplemented:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
      return 400;
    case absl::StatusCode::kUnauthenticated: return 401;
    case absl::StatusCode::kPermissionDenied: return 403;
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kDeadlineExceeded:
      return 422;
    case absl::StatusCode::kUnavailable: return 503;
    default: return 500;
  }
}

const char* error_type_of(int http_status) {
  switch (http_status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 429: return "rate_limit_error";
    case 503: return "service_unavailable_error";
  }
  return http_status >= 500 ? "server_error" : "invalid_request_error";
}

std::string error_body(int http_status, std::string_view message, std::string_view code) {
  json error = {{"message", std::string(message)}, {"type", error_type_of(http_status)}, {"param", nullptr},
                {"code", code.empty() ? json(nullptr) : json(std::string(code))}};
  return dump({{"error", std::move(error)}});
}

std::string completion_body(ApiKind kind, const ResponseHeader& h, const std::string& text, FinishReason finish,
                            const Usage& usage) {
  json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish_reason_name(finish)}};
  if (kind == ApiKind::kChat) {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  } else {
    choice["text"] = text;
  }
  json body = head(kind, h, false);
  body["choices"] = json::array({std::move(choice)});
  body["usage"] = usage_json(usage);
  return dump(body);
}

std::string delta_event(ApiKind kind, const ResponseHeader& h, const std::string& text, bool first, bool include_usage) {
  json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
  if (kind == ApiKind::kChat) {
    choice["delta"] = first ? json{{"role", "assistant"}, {"content", text}} : json{{"content", text}};
  } else {
    choice["text"] = text;
  }
  json chunk = head(kind, h, true);
  chunk["choices"] = json::array({std::move(choice)});
  if (include_usage) chunk["usage"] = nullptr;
  return event(chunk);
}

std::string finish_event(ApiKind kind, const ResponseHeader& h, FinishReason finish, bool include_usage) {
  json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish_reason_name(finish)}};
  if (kind == ApiKind::kChat) {
    choice["delta"] = json::object();
  } else {
    choice["text"] = "";
  }
  json chunk = head(kind, h, true);
  chunk["choices"] = json::array({std::move(choice)});
  if (include_usage) chunk["usage"] = nullptr;
  return event(chunk);
}

std::string usage_event(ApiKind kind, const ResponseHeader& h, const Usage& usage) {
  json chunk = head(kind, h, true);
  chunk["choices"] = json::array();
  chunk["usage"] = usage_json(usage);
  return event(chunk);
}

std::string error_event(int http_status, std::string_view message) {
  return absl::StrCat("data: ", error_body(http_status, message), "\n\n");
}

std::string models_body(const std::string& model, int64_t created, int64_t max_model_len) {
  json entry = {{"id", model}, {"object", "model"}, {"created", created}, {"owned_by", "plm"}, {"max_model_len", max_model_len}};
  return dump({{"object", "list"}, {"data", json::array({std::move(entry)})}});
}

}  // namespace plm::serve::http
