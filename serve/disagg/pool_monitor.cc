#include "serve/disagg/pool_monitor.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "serve/disagg/prometheus_text.h"

namespace plm::serve::disagg {

namespace {

double ratio(double num, double den) { return den > 0 ? num / den : 0.0; }

// Rank-seconds of work of the traffic between two snapshots, per pool.
std::pair<double, double> work_between(const EncoderPoolStats& e0, const EngineStats& d0, const EncoderPoolStats& e1,
                                       const EngineStats& d1, const UnitCosts& c, int decoder_tp) {
  const double encoder = static_cast<double>(e1.encoded[0] - e0.encoded[0]) * c.tile_s +
                         static_cast<double>(e1.encoded[1] - e0.encoded[1]) * c.frame_s;
  const double decoder = (static_cast<double>(d1.prompt_tokens_computed - d0.prompt_tokens_computed) * c.prefill_token_s +
                          static_cast<double>(d1.generated_tokens - d0.generated_tokens) * c.decode_token_s) *
                         decoder_tp;
  return {encoder, decoder};
}

}  // namespace

UnitCosts measure_costs(const EncoderPoolStats& encoders, const EngineStats& engine) {
  UnitCosts c;
  c.tile_s = ratio(encoders.encode_s[0], static_cast<double>(encoders.encoded[0]));
  c.frame_s = ratio(encoders.encode_s[1], static_cast<double>(encoders.encoded[1]));
  c.decode_token_s = ratio(engine.decode_forward_s, static_cast<double>(engine.decode_step_tokens));
  // Mixed steps also decode: their prompt tokens carry what remains after the decodes' share.
  const double mixed_decodes = static_cast<double>(engine.decode_tokens - engine.decode_step_tokens);
  const double prefill_s = engine.forward_s - engine.decode_forward_s - mixed_decodes * c.decode_token_s;
  c.prefill_token_s = std::max(0.0, ratio(prefill_s, static_cast<double>(engine.prompt_tokens_computed)));
  return c;
}

SplitSuggestion suggest_split(double encoder_rank_s, double decoder_rank_s, int world_size, int decoder_tp) {
  SplitSuggestion s;
  if (encoder_rank_s + decoder_rank_s <= 0 || world_size < decoder_tp + 1) return s;
  s.encoder_share = encoder_rank_s / (encoder_rank_s + decoder_rank_s);
  const int max_encoders = world_size - decoder_tp;
  const int encoders = std::clamp(static_cast<int>(std::lround(s.encoder_share * world_size)), 1, max_encoders);
  // Decoder ranks: what is left, down to whole replicas; the remainder encodes.
  s.decoder_ranks = std::max(decoder_tp, (world_size - encoders) / decoder_tp * decoder_tp);
  s.encoder_ranks = world_size - s.decoder_ranks;
  return s;
}

PoolMonitor::PoolMonitor(const RemoteEncoder& encoders, const Engine& engine, const PoolMonitorConfig& config)
    : encoders_(encoders), engine_(engine), config_(config), thread_([this] { loop(); }) {}

PoolMonitor::~PoolMonitor() {
  {
    const std::lock_guard lock(mutex_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  thread_.join();
}

PoolMonitor::Snapshot PoolMonitor::snapshot() const {
  return {encoders_.stats(), engine_.stats(), std::chrono::steady_clock::now()};
}

void PoolMonitor::loop() {
  Snapshot before = snapshot();
  std::unique_lock lock(mutex_);
  while (!stop_cv_.wait_for(lock, std::chrono::duration<double>(config_.interval_s), [&] { return stop_; })) {
    lock.unlock();
    const Snapshot now = snapshot();
    account(before, now);
    before = now;
    lock.lock();
  }
}

void PoolMonitor::account(const Snapshot& before, const Snapshot& now) {
  const UnitCosts costs = measure_costs(now.encoders, now.engine);
  const auto [encoder_s, decoder_s] =
      work_between(before.encoders, before.engine, now.encoders, now.engine, costs, config_.decoder_tp);
  const double wall_s = std::chrono::duration<double>(now.at - before.at).count();
  const double decoder_busy = ratio(now.engine.step_s - before.engine.step_s, wall_s);
  const SplitSuggestion s = suggest_split(encoder_s, decoder_s, config_.world_size, config_.decoder_tp);
  {
    const std::lock_guard lock(mutex_);
    decoder_busy_fraction_ = decoder_busy;
    if (s.encoder_ranks > 0) last_ = s;
  }
  if (config_.on_window) config_.on_window(s);
  if (s.encoder_ranks == 0 || !config_.log) return;
  std::string encoders;
  for (const EncoderPoolStats::Encoder& e : now.encoders.encoders) {
    absl::StrAppendFormat(&encoders, " r%d %.0f%% q%d", e.rank, 100 * e.busy_fraction, e.queued_items + e.outstanding_items);
  }
  config_.log(absl::StrFormat(
      "plm serve: pools over %.0f s: encoders%s; decoder busy %.0f%%, %d waiting; embeddings %.1f MiB in %d transfers "
      "(%.2f ms each); costs: tile %.2f ms, frame %.2f ms, prefill token %.3f ms, decode token %.3f ms; work "
      "encoder %.2f rank-s, decoder %.2f rank-s; suggested split %d encoder : %d decoder ranks",
      wall_s, encoders, 100 * decoder_busy, now.engine.num_waiting,
      static_cast<double>(now.encoders.embedding_bytes - before.encoders.embedding_bytes) / (1 << 20),
      now.encoders.transfers - before.encoders.transfers,
      1e3 * ratio(now.encoders.transfer_s - before.encoders.transfer_s,
                  static_cast<double>(now.encoders.transfers - before.encoders.transfers)),
      1e3 * costs.tile_s, 1e3 * costs.frame_s, 1e3 * costs.prefill_token_s, 1e3 * costs.decode_token_s, encoder_s,
      decoder_s, s.encoder_ranks, s.decoder_ranks));
}

std::string PoolMonitor::render() const {
  const Snapshot now = snapshot();
  const UnitCosts costs = measure_costs(now.encoders, now.engine);
  SplitSuggestion last;
  double decoder_busy = 0;
  {
    const std::lock_guard lock(mutex_);
    last = last_;
    decoder_busy = decoder_busy_fraction_;
  }
  const EncoderPoolStats& e = now.encoders;
  std::string out;
  metric(out, "plm_disagg_queue_depth", "gauge",
         "Work waiting per pool: the decoder's requests not yet running; per encoder rank the tiles / frames queued "
         "there (all fronts, at its last reply) plus those this front awaits");
  sample(out, "plm_disagg_queue_depth", now.engine.num_waiting, "pool=\"decoder\"");
  for (const EncoderPoolStats::Encoder& x : e.encoders) {
    sample(out, "plm_disagg_queue_depth", x.queued_items + x.outstanding_items,
           absl::StrCat("pool=\"encoder\",rank=\"", x.rank, "\""));
  }
  metric(out, "plm_disagg_encoder_alive", "gauge", "1 while the encoder rank answers heartbeats; 0 once it is dead");
  for (const EncoderPoolStats::Encoder& x : e.encoders) {
    sample(out, "plm_disagg_encoder_alive", x.alive ? 1 : 0, absl::StrCat("rank=\"", x.rank, "\""));
  }
  metric(out, "plm_disagg_requests_failed_total", "counter",
         "Requests with media failed with 503: their encoder died, or none was left");
  sample(out, "plm_disagg_requests_failed_total", e.jobs_failed);
  metric(out, "plm_disagg_requests_awaiting_encoders", "gauge",
         "Requests of this front waiting to be sent (backpressure) or for their embeddings");
  sample(out, "plm_disagg_requests_awaiting_encoders", e.jobs_waiting);
  metric(out, "plm_disagg_busy_fraction", "gauge",
         "Busy fraction: the decoder's engine steps over the last interval; each encoder's tower time since start");
  sample(out, "plm_disagg_busy_fraction", decoder_busy, "pool=\"decoder\"");
  for (const EncoderPoolStats::Encoder& x : e.encoders) {
    sample(out, "plm_disagg_busy_fraction", x.busy_fraction, absl::StrCat("pool=\"encoder\",rank=\"", x.rank, "\""));
  }
  metric(out, "plm_disagg_embedding_bytes_total", "counter", "Post-projector embedding bytes received from encoders");
  sample(out, "plm_disagg_embedding_bytes_total", e.embedding_bytes);
  metric(out, "plm_disagg_embedding_bytes_in_flight", "gauge", "Embedding bytes requested and not yet received");
  sample(out, "plm_disagg_embedding_bytes_in_flight", e.in_flight_bytes);
  metric(out, "plm_disagg_transfers_total", "counter", "Embedding transfers (one per request with media)");
  sample(out, "plm_disagg_transfers_total", e.transfers);
  metric(out, "plm_disagg_transfer_seconds_total", "counter", "Time receiving embedding rows, summed");
  sample(out, "plm_disagg_transfer_seconds_total", e.transfer_s);
  metric(out, "plm_disagg_encode_round_trip_seconds_total", "counter",
         "Time from sending a request's media to an encoder to holding its rows, summed");
  sample(out, "plm_disagg_encode_round_trip_seconds_total", e.round_trip_s);
  metric(out, "plm_disagg_unit_cost_seconds", "gauge", "Measured cost per unit of work");
  sample(out, "plm_disagg_unit_cost_seconds", costs.tile_s, "unit=\"image_tile\"");
  sample(out, "plm_disagg_unit_cost_seconds", costs.frame_s, "unit=\"video_frame\"");
  sample(out, "plm_disagg_unit_cost_seconds", costs.prefill_token_s, "unit=\"prefill_token\"");
  sample(out, "plm_disagg_unit_cost_seconds", costs.decode_token_s, "unit=\"decode_token\"");
  metric(out, "plm_disagg_suggested_ranks", "gauge",
         "Ranks per pool in proportion to the last interval's work (0 before any)");
  sample(out, "plm_disagg_suggested_ranks", last.encoder_ranks, "pool=\"encoder\"");
  sample(out, "plm_disagg_suggested_ranks", last.decoder_ranks, "pool=\"decoder\"");
  return out;
}

}  // namespace plm::serve::disagg
