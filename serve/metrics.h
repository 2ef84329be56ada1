// Metrics: request-level measurements (TTFT, time per output token, end-to-end latency, token counts, HTTP
// statuses) collected from the engine and HTTP threads, rendered with an EngineStats snapshot as Prometheus text
// exposition format 0.0.4 for GET /metrics. Thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "serve/engine_stats.h"
#include "serve/request.h"

namespace plm::serve {

// Cumulative-bucket histogram (Prometheus semantics); not thread-safe by itself.
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  // Prometheus lines for metric `name`: _bucket{le=...}, _sum, _count.
  void render(const std::string& name, std::string& out) const;

 private:
  std::vector<double> upper_bounds_;
  std::vector<int64_t> counts_;  // per bucket (not cumulative); the last is +Inf
  double sum_ = 0;
  int64_t count_ = 0;
};

// What the HTTP front end adds to the picture.
struct ServerGauges {
  int num_preparing = 0;  // requests whose media and prompt are being prepared on the worker pool
  bool draining = false;
};

class Metrics {
 public:
  Metrics();
  // A request that produced a reply (stop or length): its timings and token counts.
  void record_request(const RequestUpdate& final_update);
  // Generated tokens of one engine step (for the tokens/s gauge over the last kRateWindow).
  void record_generated(int64_t tokens, Clock::time_point now);
  void count_response(int http_status);
  std::string render(const EngineStats& engine, const ServerGauges& server) const;
  // More Prometheus text that render() appends (disaggregated serving's pools). Call before serving starts.
  void set_extra(std::function<std::string()> render_extra) { render_extra_ = std::move(render_extra); }

 private:
  std::function<std::string()> render_extra_;
  mutable std::mutex mutex_;
  Histogram ttft_, tpot_, e2e_;
  int64_t prompt_tokens_ = 0, completion_tokens_ = 0;
  std::map<int, int64_t> responses_;                         // by HTTP status
  std::deque<std::pair<Clock::time_point, int64_t>> recent_;  // generated tokens per step, last window
};

}  // namespace plm::serve
