#include "serve/metrics.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "core/check.h"

namespace plm::serve {

namespace {

constexpr std::chrono::seconds kRateWindow{10};

void header(std::string& out, const char* name, const char* type, const char* help) {
  absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

template <typename T>
void sample(std::string& out, const char* name, T value, const std::string& labels = "") {
  absl::StrAppend(&out, name, labels.empty() ? "" : "{", labels, labels.empty() ? "" : "}", " ", value, "\n");
}

template <typename T>
void single(std::string& out, const char* name, const char* type, const char* help, T value) {
  header(out, name, type, help);
  sample(out, name, value);
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)), counts_(upper_bounds_.size() + 1, 0) {
  PLM_CHECK(std::is_sorted(upper_bounds_.begin(), upper_bounds_.end()));
}

void Histogram::observe(double value) {
  const auto at = std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value) - upper_bounds_.begin();
  ++counts_[at];
  sum_ += value;
  ++count_;
}

void Histogram::render(const std::string& name, std::string& out) const {
  int64_t cumulative = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    cumulative += counts_[i];
    const std::string le = i < upper_bounds_.size() ? absl::StrCat(upper_bounds_[i]) : "+Inf";
    absl::StrAppend(&out, name, "_bucket{le=\"", le, "\"} ", cumulative, "\n");
  }
  absl::StrAppend(&out, name, "_sum ", sum_, "\n", name, "_count ", count_, "\n");
}

Metrics::Metrics()
    : ttft_({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}),
      tpot_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}),
      e2e_({0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}) {}

void Metrics::record_request(const RequestUpdate& u) {
  const std::lock_guard lock(mutex_);
  ttft_.observe(u.ttft_s);
  e2e_.observe(u.latency_s);
  if (u.usage.completion_tokens > 1) {
    tpot_.observe((u.latency_s - u.ttft_s) / static_cast<double>(u.usage.completion_tokens - 1));
  }
  prompt_tokens_ += u.usage.prompt_tokens;
  completion_tokens_ += u.usage.completion_tokens;
}

void Metrics::record_generated(int64_t tokens, Clock::time_point now) {
  const std::lock_guard lock(mutex_);
  recent_.emplace_back(now, tokens);
  while (!recent_.empty() && now - recent_.front().first > kRateWindow) recent_.pop_front();
}

void Metrics::count_response(int http_status) {
  const std::lock_guard lock(mutex_);
  ++responses_[http_status];
}

std::string Metrics::render(const EngineStats& e, const ServerGauges& server) const {
  const std::lock_guard lock(mutex_);
  std::string out;
  header(out, "plm_http_responses_total", "counter", "HTTP responses by status code");
  for (const auto& [status, count] : responses_) sample(out, "plm_http_responses_total", count, absl::StrCat("status=\"", status, "\""));
  single(out, "plm_num_requests_preparing", "gauge", "Requests whose media and prompt are being prepared", server.num_preparing);
  single(out, "plm_num_requests_waiting", "gauge", "Requests queued for the engine (not yet admitted)", e.num_waiting);
  single(out, "plm_num_requests_running", "gauge", "Requests holding KV-cache room", e.num_running);
  single(out, "plm_queue_depth", "gauge", "Requests not yet running: preparing plus waiting", server.num_preparing + e.num_waiting);
  single(out, "plm_draining", "gauge", "1 after SIGTERM while in-flight requests finish", server.draining ? 1 : 0);

  header(out, "plm_kv_cache_tokens", "gauge", "KV-cache tokens: capacity, reserved by running requests, computed");
  sample(out, "plm_kv_cache_tokens", e.kv.capacity_tokens, "state=\"capacity\"");
  sample(out, "plm_kv_cache_tokens", e.kv.reserved_tokens, "state=\"reserved\"");
  sample(out, "plm_kv_cache_tokens", e.kv.filled_tokens, "state=\"filled\"");
  single(out, "plm_kv_cache_usage_ratio", "gauge", "Reserved KV-cache tokens over capacity",
         e.kv.capacity_tokens > 0 ? static_cast<double>(e.kv.reserved_tokens) / e.kv.capacity_tokens : 0.0);
  single(out, "plm_kv_cache_bytes", "gauge", "Device memory of the KV cache", e.kv.bytes);
  header(out, "plm_kv_cache_blocks", "gauge",
         "KV-cache blocks (the dense cache: one per slot): used by requests, held by the prefix cache alone, free");
  sample(out, "plm_kv_cache_blocks", e.kv.blocks_used, "state=\"used\"");
  sample(out, "plm_kv_cache_blocks", e.kv.blocks_cached, "state=\"cached\"");
  sample(out, "plm_kv_cache_blocks", e.kv.blocks_free, "state=\"free\"");
  single(out, "plm_kv_cache_block_tokens", "gauge", "Tokens per KV-cache block", e.kv.block_tokens);
  const PrefixCacheCounters& p = e.kv.prefix_cache;
  single(out, "plm_prefix_cache_queries_total", "counter", "Tokens of the sequences admitted (prefix cache lookups)",
         p.queried_tokens);
  single(out, "plm_prefix_cache_hits_total", "counter", "Of them, tokens found in the prefix cache", p.hit_tokens);
  single(out, "plm_prefix_cache_hit_rate", "gauge", "Prefix cache hits over queries since start",
         p.queried_tokens > 0 ? static_cast<double>(p.hit_tokens) / static_cast<double>(p.queried_tokens) : 0.0);
  single(out, "plm_prefix_cache_evictions_total", "counter", "KV blocks evicted from the prefix cache", p.evictions);
  single(out, "plm_prefix_cache_blocks", "gauge", "KV blocks the prefix cache knows (in use or not)", p.cached_blocks);

  const EncoderCacheCounters& c = e.encoder_cache;
  single(out, "plm_encoder_cache_hits_total", "counter", "Tiles / frames found in the encoder cache", c.hits);
  single(out, "plm_encoder_cache_misses_total", "counter", "Tiles / frames not found (encoded)", c.misses);
  single(out, "plm_encoder_cache_hit_rate", "gauge", "Encoder cache hits over lookups since start",
         c.hits + c.misses > 0 ? static_cast<double>(c.hits) / static_cast<double>(c.hits + c.misses) : 0.0);
  single(out, "plm_encoder_cache_evictions_total", "counter", "Encoder cache entries evicted", c.evictions);
  single(out, "plm_encoder_cache_entries", "gauge", "Encoder cache entries", c.entries);
  single(out, "plm_encoder_cache_bytes", "gauge", "Encoder cache bytes in use", c.bytes);
  single(out, "plm_encoder_cache_capacity_bytes", "gauge", "Encoder cache byte budget", c.capacity_bytes);
  single(out, "plm_vision_items_encoded_total", "counter", "Tiles / frames through the vision tower", e.media_items_encoded);

  single(out, "plm_prompt_tokens_total", "counter", "Prompt tokens of finished requests", prompt_tokens_);
  single(out, "plm_generation_tokens_total", "counter", "Generated tokens", e.generated_tokens);
  single(out, "plm_prefill_tokens_computed_total", "counter", "Prefill tokens through the model (recomputation included)",
         e.prompt_tokens_computed);
  int64_t recent = 0;
  for (const auto& [time, tokens] : recent_) recent += tokens;
  single(out, "plm_generation_tokens_per_second", "gauge", "Generated tokens per second over the last 10 s",
         static_cast<double>(recent) / static_cast<double>(kRateWindow.count()));
  header(out, "plm_requests_finished_total", "counter", "Requests the engine finished, by outcome");
  sample(out, "plm_requests_finished_total", e.requests_finished, "outcome=\"completed\"");
  sample(out, "plm_requests_finished_total", e.requests_cancelled, "outcome=\"cancelled\"");
  sample(out, "plm_requests_finished_total", e.requests_failed, "outcome=\"failed\"");
  single(out, "plm_preemptions_total", "counter", "Sequences preempted to recompute later", e.num_preemptions);
  single(out, "plm_engine_steps_total", "counter", "Engine steps", e.num_steps);
  header(out, "plm_engine_step_seconds_total", "counter", "Engine step wall time by part");
  sample(out, "plm_engine_step_seconds_total", e.vision_s, "part=\"vision\"");
  sample(out, "plm_engine_step_seconds_total", e.forward_s, "part=\"forward\"");
  sample(out, "plm_engine_step_seconds_total", std::max(0.0, e.step_s - e.vision_s - e.forward_s), "part=\"other\"");

  header(out, "plm_time_to_first_token_seconds", "histogram", "Time from arrival to the first token");
  ttft_.render("plm_time_to_first_token_seconds", out);
  header(out, "plm_time_per_output_token_seconds", "histogram", "Time per output token after the first");
  tpot_.render("plm_time_per_output_token_seconds", out);
  header(out, "plm_e2e_request_latency_seconds", "histogram", "Time from arrival to the last token");
  e2e_.render("plm_e2e_request_latency_seconds", out);
  if (render_extra_) out += render_extra_();
  return out;
}

}  // namespace plm::serve
