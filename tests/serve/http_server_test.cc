// The HTTP front end in process, on the tiny model and a free port: a chat request with a data: image returns
// the solo greedy text, streaming (SSE) returns the same text in chunks with role, finish, usage and [DONE];
// every bad request gets its status and an OpenAI-style error while the server stays up; the API key, the queue
// limit (429), client disconnects (cancelled in the engine, its KV blocks freed) and draining behave; a repeated
// prompt reports its cached tokens and moves the prefix-cache metrics; an endless chunked trailer is refused.
#include "serve/http/http_server.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "serve/http/http_client.h"
#include "serve/prompt_preparer.h"
#include "tests/serve/serve_fixture.h"

namespace plm::serve::http {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using serve::testing::tiny_model;

class Server {
 public:
  explicit Server(ServerConfig config = {}, EngineConfig engine_config = default_engine()) {
    absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::start(
        *tiny_model().model, tiny_model().dir.tokenizer, tiny_model().dir.eos_token_ids(), engine_config, &metrics_);
    PLM_CHECK(engine.ok()) << engine.status().message();
    engine_ = std::move(*engine);
    preparer_ = std::make_unique<PromptPreparer>(tiny_model().dir, serve::testing::test_media_policy(), data::MediaOptions{}, 2);
    config.port = 0;
    config.model_name = "tiny";
    config.log = [this](const std::string& line) {
      const std::lock_guard lock(mutex_);
      log_.push_back(line);
    };
    absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::start(config, *engine_, *preparer_, metrics_);
    PLM_CHECK(server.ok()) << server.status().message();
    server_ = std::move(*server);
  }
  ~Server() { server_.reset(); }

  static EngineConfig default_engine() {
    EngineConfig c;
    c.scheduler = {.max_num_seqs = 8, .max_batch_tokens = 256, .max_media_items_per_step = 8, .max_bypass = 8};
    c.max_model_len = 1024;
    c.kv.bytes = int64_t{8} << 20;
    return c;
  }

  std::unique_ptr<HttpClient> client() {
    absl::StatusOr<std::unique_ptr<HttpClient>> c = HttpClient::connect("127.0.0.1", server_->port(), 60);
    PLM_CHECK(c.ok()) << c.status().message();
    return std::move(*c);
  }
  HttpResponse post(const std::string& route, const json& body, const Headers& headers = {}) {
    absl::StatusOr<HttpResponse> r = client()->request("POST", route, body.dump(), headers);
    PLM_CHECK(r.ok()) << r.status().message();
    return *r;
  }
  HttpResponse get(const std::string& route, const Headers& headers = {}) {
    absl::StatusOr<HttpResponse> r = client()->request("GET", route, "", headers);
    PLM_CHECK(r.ok()) << r.status().message();
    return *r;
  }
  std::vector<std::string> log() {
    const std::lock_guard lock(mutex_);
    return log_;
  }

  Metrics metrics_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<PromptPreparer> preparer_;
  std::unique_ptr<HttpServer> server_;
  std::mutex mutex_;
  std::vector<std::string> log_;
};

json image_chat(int max_tokens) {
  const std::string url = serve::testing::data_url(serve::testing::inputs_dir() / "image_150x100.png", "image/png");
  return {{"model", "tiny"},
          {"max_tokens", max_tokens},
          {"temperature", 0},
          {"messages", json::array({{{"role", "user"},
                                     {"content", json::array({{{"type", "image_url"}, {"image_url", {{"url", url}}}},
                                                              {{"type", "text"}, {"text", "Describe this image."}}})}}})}};
}

// The greedy reply `plm generate --image image_150x100.png --prompt "Describe this image."` gives.
std::string solo_image_reply(int max_tokens) {
  absl::StatusOr<PreparedPrompt> prompt = prepare_chat_prompt(
      serve::testing::user_turn("Describe this image.", {"image_150x100.png"}), tiny_model().dir,
      serve::testing::test_media_policy(), {});
  PLM_CHECK(prompt.ok());
  const std::vector<int32_t> tokens =
      serve::testing::solo_tokens(*prompt, {.max_tokens = max_tokens, .sampling = {}, .stop = {}});
  return *tiny_model().dir.tokenizer.decode(tokens, {.skip_special_tokens = true});
}

// The error object of an OpenAI-style error body.
json error_of(const HttpResponse& r) {
  const json body = json::parse(r.body);
  return body.at("error");
}

TEST(HttpServer, ChatWithDataImageAndItsStreamGiveTheSoloGreedyText) {
  Server server;
  const std::string expected = solo_image_reply(12);
  const HttpResponse r = server.post("/v1/chat/completions", image_chat(12));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers.at("content-type"), "application/json");
  const json body = json::parse(r.body);
  EXPECT_EQ(body["object"], "chat.completion");
  EXPECT_EQ(body["model"], "tiny");
  EXPECT_THAT(body["id"].get<std::string>(), ::testing::StartsWith("chatcmpl-"));
  EXPECT_EQ(body["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(body["choices"][0]["message"]["content"], expected);
  EXPECT_EQ(body["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(body["usage"]["completion_tokens"], 12);
  EXPECT_EQ(body["usage"]["total_tokens"], body["usage"]["prompt_tokens"].get<int>() + 12);

  json streamed = image_chat(12);
  streamed["stream"] = true;
  streamed["stream_options"] = {{"include_usage", true}};
  std::vector<std::string> events;
  const absl::StatusOr<HttpResponse> s = server.client()->stream(
      "/v1/chat/completions", streamed.dump(), {}, [&](std::string_view data) {
        events.emplace_back(data);
        return true;
      });
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->status, 200);
  EXPECT_EQ(s->headers.at("content-type"), "text/event-stream");
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const json chunk = json::parse(events[i]);
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    EXPECT_TRUE(chunk.contains("usage"));
    if (i == 0) {
      EXPECT_EQ(chunk["choices"][0]["delta"]["role"], "assistant");
    }
    if (i + 2 == events.size()) {  // the usage chunk
      EXPECT_TRUE(chunk["choices"].empty());
      EXPECT_EQ(chunk["usage"]["completion_tokens"], 12);
      continue;
    }
    if (i + 3 == events.size()) {
      EXPECT_EQ(chunk["choices"][0]["finish_reason"], "length");
    } else {
      EXPECT_TRUE(chunk["choices"][0]["finish_reason"].is_null());
    }
    text += chunk["choices"][0]["delta"].value("content", "");
  }
  EXPECT_EQ(text, expected);
  // One log line per request with the token counts and timings (written once the response is out).
  std::vector<std::string> log;
  for (int i = 0; i < 1000 && (log = server.log()).size() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ASSERT_EQ(log.size(), 2u);
  EXPECT_THAT(log[0], ::testing::AllOf(HasSubstr("status=200"), HasSubstr("completion_tokens=12"), HasSubstr("ttft_ms="),
                                       HasSubstr("latency_ms="), HasSubstr("finish=length")));
}

// The engine publishes its stats after the step that finished a reply, so a client can read /metrics before
// they show the request gone: wait for that.
bool wait_for_idle(Server& server) {
  for (int i = 0; i < 2000; ++i) {
    const EngineStats s = server.engine_->stats();
    if (s.num_running == 0 && s.num_waiting == 0 && s.kv.blocks_used == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

TEST(HttpServer, CompletionsModelsHealthAndMetrics) {
  Server server;
  const HttpResponse r = server.post("/v1/completions", {{"prompt", "Hello"}, {"max_tokens", 5}, {"temperature", 0}});
  ASSERT_EQ(r.status, 200) << r.body;
  const json body = json::parse(r.body);
  EXPECT_EQ(body["object"], "text_completion");
  const std::vector<int32_t> expected = serve::testing::solo_tokens(
      prepare_text_prompt("Hello", tiny_model().dir.tokenizer), {.max_tokens = 5, .sampling = {}, .stop = {}});
  EXPECT_EQ(body["choices"][0]["text"], *tiny_model().dir.tokenizer.decode(expected, {.skip_special_tokens = true}));

  const json models = json::parse(server.get("/v1/models").body);
  EXPECT_EQ(models["data"][0]["id"], "tiny");
  EXPECT_EQ(models["data"][0]["max_model_len"], 1024);
  EXPECT_EQ(server.get("/health").status, 200);
  ASSERT_TRUE(wait_for_idle(server));
  const HttpResponse metrics = server.get("/metrics");
  EXPECT_EQ(metrics.status, 200);
  for (const char* name : {"plm_http_responses_total{status=\"200\"} 3", "plm_num_requests_waiting 0",
                           "plm_num_requests_running 0", "plm_kv_cache_usage_ratio", "plm_encoder_cache_hit_rate",
                           "plm_time_to_first_token_seconds_bucket", "plm_time_per_output_token_seconds_count 1",
                           "plm_e2e_request_latency_seconds_count 1", "plm_generation_tokens_per_second",
                           "plm_queue_depth 0", "plm_kv_cache_blocks{state=\"free\"}"}) {
    EXPECT_THAT(metrics.body, HasSubstr(name));
  }
}

TEST(HttpServer, RepeatedPromptReportsCachedTokensAndPrefixCacheMetrics) {
  Server server;
  std::string prompt;
  for (int i = 0; i < 6; ++i) prompt += "The quick brown fox jumps over the lazy dog. ";
  const json request = {{"prompt", prompt}, {"max_tokens", 4}, {"temperature", 0}};
  const HttpResponse first = server.post("/v1/completions", request);
  ASSERT_EQ(first.status, 200) << first.body;
  const HttpResponse second = server.post("/v1/completions", request);
  ASSERT_EQ(second.status, 200) << second.body;
  const json a = json::parse(first.body), b = json::parse(second.body);
  EXPECT_EQ(a["choices"][0]["text"], b["choices"][0]["text"]);
  EXPECT_EQ(a["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  const int64_t prompt_tokens = b["usage"]["prompt_tokens"];
  const int64_t block = Server::default_engine().kv.block_tokens;
  const int64_t cached = (prompt_tokens - 1) / block * block;
  ASSERT_GT(cached, 0);
  EXPECT_EQ(b["usage"]["prompt_tokens_details"]["cached_tokens"], cached);
  ASSERT_TRUE(wait_for_idle(server));
  const std::string metrics = server.get("/metrics").body;
  EXPECT_THAT(metrics, HasSubstr(absl::StrCat("plm_prefix_cache_hits_total ", cached, "\n")));
  EXPECT_THAT(metrics, HasSubstr(absl::StrCat("plm_prefix_cache_queries_total ", 2 * prompt_tokens, "\n")));
  EXPECT_THAT(metrics, HasSubstr("plm_kv_cache_blocks{state=\"cached\"} "));
  EXPECT_THAT(metrics, HasSubstr("plm_kv_cache_blocks{state=\"used\"} 0\n"));
}

TEST(HttpServer, BadRequestsGetTheirStatusAndTheServerStaysUp) {
  ServerConfig config;
  config.max_body_bytes = 512 << 10;
  config.api.max_messages = 4;
  Server server(config);
  const auto chat = [](json extra) {
    json body = {{"messages", json::array({{{"role", "user"}, {"content", "Hi"}}})}, {"max_tokens", 2}};
    for (auto& [key, value] : extra.items()) body[key] = value;
    return body;
  };
  struct Case {
    std::string name;
    HttpResponse response;
    int status;
    std::string message;
  };
  std::vector<Case> cases;
  const auto raw_post = [&](const std::string& body) {
    return *server.client()->request("POST", "/v1/chat/completions", body);
  };
  cases.push_back({"bad json", raw_post("{not json"), 400, "not valid JSON"});
  cases.push_back({"not an object", raw_post("[1]"), 400, "JSON object"});
  cases.push_back({"no messages", server.post("/v1/chat/completions", {{"model", "tiny"}}), 400, "messages"});
  cases.push_back({"n=2", server.post("/v1/chat/completions", chat({{"n", 2}})), 400, "only n = 1"});
  cases.push_back({"temperature", server.post("/v1/chat/completions", chat({{"temperature", 3}})), 400, "temperature"});
  cases.push_back({"max_tokens 0", server.post("/v1/chat/completions", chat({{"max_tokens", 0}})), 400, "max_tokens"});
  cases.push_back({"logprobs", server.post("/v1/chat/completions", chat({{"logprobs", true}})), 400, "not supported"});
  cases.push_back({"bad role", server.post("/v1/chat/completions",
                                           {{"messages", json::array({{{"role", "tool"}, {"content", "x"}}})}}), 400, "role"});
  cases.push_back({"unknown model", server.post("/v1/chat/completions", chat({{"model", "gpt-4"}})), 404, "gpt-4"});
  cases.push_back({"unknown route", server.post("/v1/embeddings", chat({})), 404, "no route"});
  cases.push_back({"wrong method", server.get("/v1/chat/completions"), 405, "POST only"});
  cases.push_back({"context", server.post("/v1/chat/completions", chat({{"max_tokens", 5000}})), 422, "context is 1024"});
  json many = chat({});
  for (int i = 0; i < 5; ++i) many["messages"].push_back({{"role", "user"}, {"content", "x"}});
  cases.push_back({"messages", server.post("/v1/chat/completions", many), 422, "at most 4"});
  const auto with_image = [&](const std::string& url) {
    return chat({{"messages", json::array({{{"role", "user"},
                                            {"content", json::array({{{"type", "image_url"}, {"image_url", {{"url", url}}}},
                                                                     {{"type", "text"}, {"text", "?"}}})}}})}});
  };
  cases.push_back({"remote url", server.post("/v1/chat/completions", with_image("https://example.com/a.png")), 400,
                   "not fetched"});
  cases.push_back({"traversal", server.post("/v1/chat/completions", with_image("../cls_tied/config.json")), 403,
                   "outside the media root"});
  cases.push_back({"missing file", server.post("/v1/chat/completions", with_image("nope.png")), 400, "no such media file"});
  cases.push_back({"not an image", server.post("/v1/chat/completions", with_image("text_messages.json")), 400,
                   "image 0 (text_messages.json)"});
  cases.push_back({"bad base64", server.post("/v1/chat/completions", with_image("data:image/png;base64,@@@")), 400, "base64"});
  cases.push_back({"body too large", raw_post(std::string(600 << 10, ' ')), 413, "exceeds"});
  for (const Case& c : cases) {
    EXPECT_EQ(c.response.status, c.status) << c.name << ": " << c.response.body;
    const json error = error_of(c.response);
    EXPECT_THAT(error.value("message", ""), HasSubstr(c.message)) << c.name;
    EXPECT_TRUE(error.contains("type") && error.contains("code") && error.contains("param")) << c.name;
  }
  // Malformed HTTP itself.
  const absl::StatusOr<std::string> garbage = server.client()->raw("NOT HTTP AT ALL\r\n\r\n");
  ASSERT_TRUE(garbage.ok());
  EXPECT_THAT(*garbage, ::testing::StartsWith("HTTP/1.1 400"));
  // Still serving.
  EXPECT_EQ(server.get("/health").status, 200);
  EXPECT_EQ(server.post("/v1/chat/completions", chat({})).status, 200);
}

TEST(HttpServer, EndlessChunkTrailerIsRefusedNotBuffered) {
  // A chunked body's final chunk, then 4 MiB of trailer that never ends: Beast 1.74 keeps asking for more, so the
  // server must stop at its unparsed-bytes limit (1 MiB) and answer 400 instead of buffering until the timeout.
  Server server;
  const std::string request = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" +
                              std::string(4 << 20, 'a');
  const auto start = std::chrono::steady_clock::now();
  const absl::StatusOr<std::string> reply = server.client()->raw(request);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_THAT(*reply, ::testing::StartsWith("HTTP/1.1 400"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
  EXPECT_EQ(server.get("/health").status, 200);

  // Bodies larger than the limit still arrive, with a length or chunked: the parser consumes body bytes as they come.
  const std::string body = R"({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2)" +
                           std::string(3 << 20, ' ') + "}";
  EXPECT_EQ(server.client()->request("POST", "/v1/chat/completions", body).value().status, 200);
  std::string chunked = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n";
  for (size_t at = 0; at < body.size(); at += 100'000) {
    const std::string part = body.substr(at, 100'000);
    chunked += absl::StrCat(absl::Hex(part.size()), "\r\n", part, "\r\n");
  }
  const absl::StatusOr<std::string> chunked_reply = server.client()->raw(chunked + "0\r\n\r\n");
  ASSERT_TRUE(chunked_reply.ok()) << chunked_reply.status();
  EXPECT_THAT(*chunked_reply, ::testing::StartsWith("HTTP/1.1 200"));
}

TEST(HttpServer, ApiKeyGuardsTheApiButNotHealth) {
  ServerConfig config;
  config.api_key = "s3cret";
  Server server(config);
  const json body = {{"prompt", "Hi"}, {"max_tokens", 1}};
  const HttpResponse none = server.post("/v1/completions", body);
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.headers.at("www-authenticate"), "Bearer");
  EXPECT_EQ(error_of(none)["type"], "authentication_error");
  EXPECT_EQ(server.post("/v1/completions", body, {{"Authorization", "Bearer s3cre"}}).status, 401);
  EXPECT_EQ(server.post("/v1/completions", body, {{"Authorization", "s3cret"}}).status, 401);
  EXPECT_EQ(server.get("/v1/models").status, 401);
  EXPECT_EQ(server.post("/v1/completions", body, {{"Authorization", "Bearer s3cret"}}).status, 200);
  EXPECT_EQ(server.get("/v1/models", {{"Authorization", "bearer s3cret"}}).status, 200);
  EXPECT_EQ(server.get("/health").status, 200);
}

TEST(HttpServer, FullQueueAnswers429WithRetryAfter) {
  ServerConfig config;
  config.max_queue = 0;
  Server server(config);
  const HttpResponse r = server.post("/v1/completions", {{"prompt", "Hi"}, {"max_tokens", 1}});
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.headers.at("retry-after"), "1");
  EXPECT_EQ(error_of(r)["type"], "rate_limit_error");
}

// A long greedy reply (no EOS in its first 300 tokens), so a disconnect always comes first.
json long_completion() { return {{"prompt", "Count to one thousand:"}, {"max_tokens", 300}, {"temperature", 0}}; }

int wait_for_cancelled(Server& server, int64_t at_least) {
  for (int i = 0; i < 2000; ++i) {
    const EngineStats s = server.engine_->stats();
    if (s.requests_cancelled >= at_least && s.num_running == 0 && s.kv.reserved_tokens == 0 && s.kv.blocks_used == 0) {
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return 0;
}

TEST(HttpServer, ClientThatDisconnectsCancelsItsRequestAndFreesItsCache) {
  Server server;
  const std::vector<int32_t> solo = serve::testing::solo_tokens(
      prepare_text_prompt("Count to one thousand:", tiny_model().dir.tokenizer), {.max_tokens = 300, .sampling = {}, .stop = {}});
  ASSERT_EQ(solo.size(), 300u) << "the test prompt needs a reply without EOS";
  // Streaming: the client goes away after the first event.
  json streamed = long_completion();
  streamed["stream"] = true;
  int events = 0;
  ASSERT_TRUE(server.client()->stream("/v1/completions", streamed.dump(), {}, [&](std::string_view) { return ++events < 1; }).ok());
  EXPECT_EQ(wait_for_cancelled(server, 1), 1);
  // Not streaming: the client sends its request and closes the connection.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(server.server_->port());
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  const std::string body = long_completion().dump();
  const std::string request = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                              std::to_string(body.size()) + "\r\n\r\n" + body;
  ASSERT_EQ(::write(fd, request.data(), request.size()), static_cast<ssize_t>(request.size()));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ::close(fd);
  EXPECT_EQ(wait_for_cancelled(server, 2), 1);
  EXPECT_EQ(server.server_->num_in_flight(), 0);
  const std::string metrics = server.get("/metrics").body;
  EXPECT_THAT(metrics, HasSubstr("plm_http_responses_total{status=\"499\"}"));
  EXPECT_THAT(metrics, HasSubstr("plm_kv_cache_blocks{state=\"used\"} 0\n"));
}

TEST(HttpServer, DrainFinishesTheRequestsInFlightThenStops) {
  Server server;
  std::vector<std::string> events;
  std::thread client([&] {
    json streamed = long_completion();
    streamed["max_tokens"] = 40;
    streamed["stream"] = true;
    const absl::StatusOr<HttpResponse> r = server.client()->stream("/v1/completions", streamed.dump(), {},
                                                                     [&](std::string_view data) {
                                                                       events.emplace_back(data);
                                                                       return true;
                                                                     });
    EXPECT_TRUE(r.ok()) << r.status();
  });
  while (server.server_->num_in_flight() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  server.server_->drain();
  server.server_->wait();
  client.join();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back(), "[DONE]");
  EXPECT_FALSE(HttpClient::connect("127.0.0.1", server.server_->port(), 5).ok());
}

}  // namespace
}  // namespace plm::serve::http
