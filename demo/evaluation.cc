#include "demo/evaluation.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status_macros.h"
#include "serve/http/http_client.h"

namespace plm::demo {
namespace {

constexpr double kRequestTimeoutS = 300;

nlohmann::json request_json(const ServerEndpoint& server, const data::SynthExample& e) {
  const bool image = e.kind == data::MediaKind::kImage;
  const std::string url = e.media.lexically_relative(server.media_root).string();
  const char* part = image ? "image_url" : "video_url";
  nlohmann::json user_content = nlohmann::json::array();
  user_content.push_back({{"type", part}, {part, {{"url", url}}}});
  user_content.push_back({{"type", "text"}, {"text", e.question}});
  nlohmann::json messages = nlohmann::json::array();
  if (!e.system.empty()) messages.push_back({{"role", "system"}, {"content", e.system}});
  messages.push_back({{"role", "user"}, {"content", user_content}});
  return {{"model", server.model}, {"messages", messages}, {"max_tokens", kMaxAnswerTokens}, {"temperature", 0}};
}

absl::StatusOr<std::string> ask(serve::http::HttpClient& client, const ServerEndpoint& server,
                                const data::SynthExample& e) {
  const std::string where = e.media.string();
  PLM_ASSIGN_OR_RETURN(const serve::http::HttpResponse response,
                       client.request("POST", "/v1/chat/completions", request_json(server, e).dump(),
                                      {{"Content-Type", "application/json"}}));
  if (response.status != 200) {
    return absl::InternalError(absl::StrCat(where, ": the server answered ", response.status, ": ", response.body));
  }
  const nlohmann::json body = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object() || !body.contains("choices") || !body["choices"].is_array() || body["choices"].empty() ||
      !body["choices"][0].contains("message") || !body["choices"][0]["message"].contains("content") ||
      !body["choices"][0]["message"]["content"].is_string()) {
    return absl::InternalError(absl::StrCat(where, ": not a chat completion: ", response.body));
  }
  return body["choices"][0]["message"]["content"].get<std::string>();
}

template <typename Enum>
void count(AttributeScore& s, const std::optional<Enum>& truth, const std::optional<Enum>& parsed) {
  if (!truth) return;
  ++s.total;
  s.correct += parsed == truth;
}

}  // namespace

absl::StatusOr<std::vector<Prediction>> ask_server(const ServerEndpoint& server,
                                                   const std::vector<data::SynthExample>& examples, int num_threads,
                                                   const std::function<void(int64_t)>& progress) {
  std::vector<Prediction> predictions(examples.size());
  std::atomic<size_t> next{0};
  std::atomic<int64_t> done{0};
  std::atomic<int> finished_threads{0};
  std::mutex error_mutex;
  absl::Status error;
  const auto worker = [&] {
    absl::StatusOr<std::unique_ptr<serve::http::HttpClient>> client =
        serve::http::HttpClient::connect(server.host, server.port, kRequestTimeoutS);
    for (size_t i = next++; i < examples.size(); i = next++) {
      absl::StatusOr<std::string> reply = client.ok() ? ask(**client, server, examples[i]) : client.status();
      if (!reply.ok()) {
        const std::lock_guard lock(error_mutex);
        if (error.ok()) error = reply.status();
        next = examples.size();  // stop the others too
        break;
      }
      predictions[i] = {examples[i], *reply, data::parse_attributes(*reply)};
      ++done;
    }
    ++finished_threads;
  };
  const int n = std::max(1, num_threads);
  std::vector<std::thread> threads;
  for (int t = 0; t < n; ++t) threads.emplace_back(worker);
  for (int64_t reported = -1; finished_threads.load() < n;) {
    const int64_t now = done.load();
    if (progress && now != reported) progress(reported = now);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (std::thread& t : threads) t.join();
  if (!error.ok()) return error;
  if (progress) progress(done.load());
  return predictions;
}

std::vector<AttributeScore> score(const std::vector<Prediction>& predictions) {
  std::vector<AttributeScore> scores = {{.attribute = "shape", .chance = 1.0 / data::kShapeKinds.size()},
                                        {.attribute = "colour", .chance = 1.0 / data::kShapeColours.size()},
                                        {.attribute = "position", .chance = 1.0 / data::kImagePositions.size()},
                                        {.attribute = "motion", .chance = 1.0 / data::kMotions.size()}};
  for (const Prediction& p : predictions) {
    const data::ShapeAttributes& truth = p.example.attributes;
    count(scores[0], std::optional(truth.shape), p.parsed.shape);
    count(scores[1], std::optional(truth.colour), p.parsed.colour);
    count(scores[2], truth.position, p.parsed.position);
    count(scores[3], truth.motion, p.parsed.motion);
  }
  return scores;
}

std::string wrong_attributes(const Prediction& p) {
  const data::ShapeAttributes& truth = p.example.attributes;
  std::vector<std::string> wrong;
  if (p.parsed.shape != truth.shape) wrong.push_back("shape");
  if (p.parsed.colour != truth.colour) wrong.push_back("colour");
  if (truth.position && p.parsed.position != truth.position) wrong.push_back("position");
  if (truth.motion && p.parsed.motion != truth.motion) wrong.push_back("motion");
  return absl::StrJoin(wrong, ", ");
}

}  // namespace plm::demo
