#include "bench/serve_bench.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "serve/http/http_client.h"

namespace plm::bench {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// One request's outcome.
struct Sample {
  bool ok = false;
  std::string error_class;  // "http_429", "transport", ...
  double ttft_s = 0, latency_s = 0, tpot_s = -1;  // tpot < 0: fewer than two tokens
  int64_t output_tokens = 0;
  // Gaps between consecutive content chunks of the stream (inter-token latency: one chunk per token unless
  // text is held back, e.g. an incomplete UTF-8 sequence): where a long prefill or vision step stalls a stream.
  std::vector<double> itl_s;
};

absl::StatusOr<std::string> data_url(const std::string& path, const char* kind) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream bytes;
  bytes << in.rdbuf();
  std::string ext = path.substr(path.find_last_of('.') + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ext == "jpg") ext = "jpeg";
  return absl::StrCat("data:", kind, "/", ext, ";base64,", absl::Base64Escape(bytes.str()));
}

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double at = p / 100.0 * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(at);
  const size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (values[hi] - values[lo]) * (at - static_cast<double>(lo));
}

Sample run_one(serve::http::HttpClient& client, const std::string& body, const serve::http::Headers& headers) {
  Sample s;
  const Clock::time_point start = Clock::now();
  Clock::time_point first{}, last{};
  bool bad_event = false;
  const absl::StatusOr<serve::http::HttpResponse> r =
      client.stream("/v1/chat/completions", body, headers, [&](std::string_view data) {
        if (data == "[DONE]") return true;
        const json chunk = json::parse(data, nullptr, false);
        if (chunk.is_discarded() || chunk.contains("error")) {
          bad_event = true;
          return true;
        }
        if (!chunk["choices"].empty() && !chunk["choices"][0]["delta"].value("content", "").empty()) {
          const Clock::time_point now = Clock::now();
          if (first == Clock::time_point{}) {
            first = now;
          } else {
            s.itl_s.push_back(seconds(now - last));
          }
          last = now;
        }
        if (chunk.contains("usage") && chunk["usage"].is_object()) s.output_tokens = chunk["usage"]["completion_tokens"];
        return true;
      });
  s.latency_s = seconds(Clock::now() - start);
  if (!r.ok()) {
    s.error_class = "transport";
    return s;
  }
  if (r->status != 200) {
    s.error_class = absl::StrCat("http_", r->status);
    return s;
  }
  if (bad_event) {
    s.error_class = "stream_error";
    return s;
  }
  s.ok = true;
  s.ttft_s = first == Clock::time_point{} ? s.latency_s : seconds(first - start);
  if (s.output_tokens > 1) s.tpot_s = (s.latency_s - s.ttft_s) / static_cast<double>(s.output_tokens - 1);
  return s;
}

}  // namespace

int run_serve_bench(const ServeBenchOptions& o) {
  const auto fail = [](const std::string& message) {
    std::fprintf(stderr, "plm bench serve: %s\n", message.c_str());
    return 1;
  };
  if (o.concurrency < 1 || o.requests < 1 || o.max_tokens < 1) return fail("need --concurrency, --requests, --max-tokens >= 1");
  const absl::StatusOr<serve::http::HttpUrl> url = serve::http::parse_http_url(o.url);
  if (!url.ok()) return fail(std::string(url.status().message()));
  serve::http::Headers headers;
  if (!o.api_key.empty()) headers.emplace_back("Authorization", "Bearer " + o.api_key);

  std::string model = o.model;
  if (model.empty()) {
    absl::StatusOr<std::unique_ptr<serve::http::HttpClient>> client = serve::http::HttpClient::connect(url->host, url->port, 30);
    if (!client.ok()) return fail(std::string(client.status().message()));
    const absl::StatusOr<serve::http::HttpResponse> models = (*client)->request("GET", "/v1/models", "", headers);
    if (!models.ok() || models->status != 200) return fail(absl::StrCat(o.url, "/v1/models: ", models.ok() ? models->body : std::string(models.status().message())));
    const json list = json::parse(models->body, nullptr, false);
    if (list.is_discarded() || list["data"].empty()) return fail("/v1/models lists no model");
    model = list["data"][0]["id"];
  }
  json content = json::array();
  for (const auto& [path, kind] : {std::pair{o.image, "image"}, std::pair{o.video, "video"}}) {
    if (path.empty()) continue;
    const absl::StatusOr<std::string> media = data_url(path, kind);
    if (!media.ok()) return fail(std::string(media.status().message()));
    const std::string part = absl::StrCat(kind, "_url");
    content.push_back({{"type", part}, {part, {{"url", *media}}}});
  }
  content.push_back({{"type", "text"}, {"text", o.prompt}});
  const std::string body = json{{"model", model},
                                {"messages", json::array({{{"role", "user"}, {"content", content}}})},
                                {"max_tokens", o.max_tokens},
                                {"temperature", 0},
                                {"stream", true},
                                {"stream_options", {{"include_usage", true}}}}
                               .dump();

  std::atomic<int> next{0};
  std::mutex mutex;
  std::vector<Sample> samples;
  const Clock::time_point start = Clock::now();
  std::vector<std::thread> workers;
  for (int w = 0; w < std::min(o.concurrency, o.requests); ++w) {
    workers.emplace_back([&] {
      std::unique_ptr<serve::http::HttpClient> client;
      while (next.fetch_add(1) < o.requests) {
        Sample s;
        if (!client) {
          absl::StatusOr<std::unique_ptr<serve::http::HttpClient>> c =
              serve::http::HttpClient::connect(url->host, url->port, o.timeout_s);
          if (c.ok()) client = std::move(*c);
        }
        if (client) {
          s = run_one(*client, body, headers);
          if (s.error_class == "transport") client.reset();
        } else {
          s.error_class = "connect";
        }
        const std::lock_guard lock(mutex);
        samples.push_back(s);
      }
    });
  }
  for (std::thread& t : workers) t.join();
  const double wall_s = seconds(Clock::now() - start);

  std::vector<double> ttft, tpot, latency, itl;
  std::map<std::string, int> errors;
  int64_t tokens = 0;
  for (const Sample& s : samples) {
    if (!s.ok) {
      ++errors[s.error_class];
      continue;
    }
    ttft.push_back(s.ttft_s);
    latency.push_back(s.latency_s);
    if (s.tpot_s >= 0) tpot.push_back(s.tpot_s);
    itl.insert(itl.end(), s.itl_s.begin(), s.itl_s.end());
    tokens += s.output_tokens;
  }
  const int ok = static_cast<int>(latency.size());
  std::printf("plm bench serve: %s (model %s), %d requests at concurrency %d, max_tokens %d%s%s\n", o.url.c_str(),
              model.c_str(), o.requests, o.concurrency, o.max_tokens, o.image.empty() ? "" : ", with an image",
              o.video.empty() ? "" : ", with a video");
  std::printf("%-22s %12.3f\n%-22s %12.2f\n%-22s %12.1f\n", "wall_s", wall_s, "requests_per_s", ok / wall_s,
              "output_tokens_per_s", static_cast<double>(tokens) / wall_s);
  std::printf("%-22s %12s %12s %12s\n", "ms", "p50", "p99", "mean");
  for (const auto& [name, values] : {std::pair{"ttft", &ttft}, std::pair{"tpot", &tpot}, std::pair{"itl", &itl},
                                      std::pair{"latency", &latency}}) {
    double mean = 0;
    for (double v : *values) mean += v;
    mean = values->empty() ? 0 : mean / static_cast<double>(values->size());
    std::printf("%-22s %12.2f %12.2f %12.2f\n", name, percentile(*values, 50) * 1e3, percentile(*values, 99) * 1e3, mean * 1e3);
  }
  std::printf("%-22s %12d\n", "ok", ok);
  for (const auto& [name, count] : errors) std::printf("%-22s %12d\n", ("error " + name).c_str(), count);
  nlohmann::ordered_json line = {{"concurrency", o.concurrency},
                                 {"requests", o.requests},
                                 {"ok", ok},
                                 {"wall_s", wall_s},
                                 {"requests_per_s", ok / wall_s},
                                 {"output_tokens_per_s", static_cast<double>(tokens) / wall_s},
                                 {"ttft_ms_p50", percentile(ttft, 50) * 1e3},
                                 {"ttft_ms_p99", percentile(ttft, 99) * 1e3},
                                 {"tpot_ms_p50", percentile(tpot, 50) * 1e3},
                                 {"itl_ms_p50", percentile(itl, 50) * 1e3},
                                 {"itl_ms_p99", percentile(itl, 99) * 1e3},
                                 {"itl_ms_max", itl.empty() ? 0.0 : *std::max_element(itl.begin(), itl.end()) * 1e3},
                                 {"tpot_ms_p99", percentile(tpot, 99) * 1e3},
                                 {"latency_ms_p50", percentile(latency, 50) * 1e3},
                                 {"latency_ms_p99", percentile(latency, 99) * 1e3},
                                 {"errors", errors}};
  std::printf("%s\n", line.dump().c_str());
  return ok == 0 ? 1 : 0;
}

}  // namespace plm::bench
