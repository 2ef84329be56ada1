// `plm serve --disaggregate`: one job split into an encoder pool and a decoder pool (serve/disagg/). Every rank
// builds the pools' groups and loads the part of the model its role needs; each decoder replica's first rank
// serves HTTP through `serve_front` (cmd_serve.cc's server) with its prompts' media encoded on the encoder pool,
// its TP followers step with it, and the encoder ranks serve jobs until every front has stopped. Fronts and
// encoders watch each other by heartbeats: a dead encoder's requests get 503, a dead front's jobs are dropped,
// and a front whose encoder pool is empty drains and returns an error (serve/README.md, "Failure"). With
// --rebalance a rank may change roles while the job runs (serve/disagg/pool_control.h): it drains, frees its
// weights, loads the other role's from the model directory and rejoins.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "core/device.h"
#include "model/plm_model.h"
#include "serve/disagg/pool_layout.h"
#include "serve/disagg/pool_monitor.h"
#include "serve/engine.h"
#include "serve/metrics.h"
#include "serve/prompt_preparer.h"
#include "serve/step_mirror.h"

namespace plm::apps {

struct DisaggregatedOptions {
  std::string model_dir;
  std::string device = "cpu";
  std::string dtype;  // --dtype: "" is the device's default
  std::string flags;  // the command line, compared across ranks
  serve::disagg::PoolLayoutConfig pools;
  int64_t encoder_cache_bytes = int64_t{512} << 20;  // per encoder rank
  int max_media_items_per_step = 32;                 // an encoder's batch
  int64_t max_embedding_bytes_in_flight = int64_t{256} << 20;
  double pool_stats_interval_s = 10;
  double peer_timeout_s = 10;  // a rank whose heartbeats stop this long is dead
  bool rebalance = false;     // move ranks between the pools (needs decoder_tp 1)
  int rebalance_windows = 3;  // consecutive --pool-stats-interval windows the suggestion must hold
};

// What the front's server takes from the disaggregated run.
struct FrontHooks {
  serve::MediaEncoder* media_encoder = nullptr;  // prompts with media go through it
  // Once the engine runs: what watches both pools (its /metrics text is attached to `metrics`); it must live
  // until the server has drained.
  std::function<std::unique_ptr<serve::disagg::PoolMonitor>(const serve::Engine&, serve::Metrics&)> watch_pools;
  int replica = 0;           // the front's decoder replica: it listens on --port + replica (when --port is not 0)
  std::string description;   // for the ready line
  bool drain_on_signals = true;  // false: only PoolControl drains it (a move, or the job's end)
  // Called once the server is ready with its drain(), and with an empty function before it is destroyed: PoolControl
  // drains the front for a move or the job's end, and the front drains itself when its encoder pool is empty.
  std::function<void(std::function<void()> drain)> serving;
};

using ServeFront = std::function<absl::Status(const model::PlmModel& model, Device device,
                                              serve::StepPublisher* publisher, const FrontHooks& hooks)>;

absl::Status run_serve_disaggregated(const DisaggregatedOptions& options, const ServeFront& serve_front,
                                     const std::function<void(const std::string&)>& log);

}  // namespace plm::apps
