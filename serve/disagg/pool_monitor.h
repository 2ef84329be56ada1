// PoolMonitor: a front's picture of both pools of disaggregated serving, and the pool split it suggests. From
// the encoders' replies (RemoteEncoder) and the engine's totals it measures unit costs: tower seconds per image
// tile and per video frame, decoder seconds per prefill token and per decoded token. Every interval it takes the
// traffic mix of the interval (tiles and frames encoded, prompt and generated tokens), prices it with those costs
// into rank-seconds of work per pool (the decoder's times its TP size), and suggests splitting the ranks in that
// proportion; it logs a line when the interval saw work and hands every interval's suggestion to `on_window`
// (PoolControl::observe on rank 0). render() is the Prometheus text for /metrics (the ranks per pool are
// PoolControl's).
// Thread-safe.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "serve/disagg/remote_encoder.h"
#include "serve/engine.h"

namespace plm::serve::disagg {

struct UnitCosts {
  double tile_s = 0, frame_s = 0;                 // tower + projector, per encoded tile / frame
  double prefill_token_s = 0, decode_token_s = 0;  // decoder forward (wall time of the TP replica)
};
UnitCosts measure_costs(const EncoderPoolStats& encoders, const EngineStats& engine);

struct SplitSuggestion {
  int encoder_ranks = 0, decoder_ranks = 0;
  double encoder_share = 0;  // of the work, in rank-seconds
};
// Ranks in proportion to each pool's rank-seconds of work: at least one encoder and one decoder replica, the
// decoder ranks a multiple of decoder_tp. No work: encoder_ranks = decoder_ranks = 0 (nothing to suggest).
SplitSuggestion suggest_split(double encoder_rank_s, double decoder_rank_s, int world_size, int decoder_tp);

struct PoolMonitorConfig {
  int world_size = 2;
  int decoder_tp = 1;
  double interval_s = 10;
  std::function<void(const std::string&)> log;
  std::function<void(const SplitSuggestion&)> on_window;  // each interval's suggestion (0 ranks: no traffic)
};

class PoolMonitor {
 public:
  // `encoders` and `engine` must outlive the monitor.
  PoolMonitor(const RemoteEncoder& encoders, const Engine& engine, const PoolMonitorConfig& config);
  ~PoolMonitor();
  PoolMonitor(const PoolMonitor&) = delete;
  PoolMonitor& operator=(const PoolMonitor&) = delete;

  std::string render() const;

 private:
  struct Snapshot {
    EncoderPoolStats encoders;
    EngineStats engine;
    std::chrono::steady_clock::time_point at;
  };
  Snapshot snapshot() const;
  void loop();
  // The interval from `before` to `now`: its suggestion (from its mix) and decoder busy fraction, and its log line.
  void account(const Snapshot& before, const Snapshot& now);

  const RemoteEncoder& encoders_;
  const Engine& engine_;
  const PoolMonitorConfig config_;

  mutable std::mutex mutex_;  // guards everything below
  std::condition_variable stop_cv_;
  bool stop_ = false;
  SplitSuggestion last_;
  double decoder_busy_fraction_ = 0;

  std::thread thread_;  // last
};

}  // namespace plm::serve::disagg
