#include "apps/serve_disaggregated.h"

#include <unistd.h>

#include <csignal>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "distributed/consistency.h"
#include "distributed/mpi_communicator.h"
#include "distributed/nccl_communicator.h"
#include "runtime/local_device.h"
#include "serve/disagg/encoder_worker.h"
#include "serve/disagg/pool_control.h"
#include "serve/disagg/remote_encoder.h"

namespace plm::apps {

namespace {

using serve::disagg::PoolControl;
using serve::disagg::PoolLayout;
using serve::disagg::PoolRole;

// The groups of one rank, created collectively in the same order on every rank.
struct PoolGroups {
  std::unique_ptr<distributed::Communicator> world, jobs, replies, control, tp;
  std::unique_ptr<distributed::Communicator> data_device, tp_device;  // NCCL twins on a GPU
  distributed::Communicator* data() const { return data_device ? data_device.get() : replies.get(); }
};

PoolGroups make_groups(std::unique_ptr<distributed::Communicator> world, const PoolLayout& layout, Device device) {
  PoolGroups g;
  const int rank = world->rank();
  g.jobs = world->split(0, rank, "disagg_jobs");
  g.replies = world->split(0, rank, "disagg_replies");
  g.control = world->split(0, rank, "disagg_control");
  // Each decoder replica is a TP group; each encoder rank a group of its own.
  const int color = layout.role(rank) == PoolRole::kDecoder ? layout.decoder_replica(rank)
                                                            : layout.num_fronts() + layout.encoder_index(rank);
  g.tp = world->split(color, rank, "tp");
  if (device.is_cuda()) {
    g.data_device = distributed::nccl_communicator(*g.replies, device.index, "disagg_data");
    if (g.tp->size() > 1) g.tp_device = distributed::nccl_communicator(*g.tp, device.index, "tp");
  }
  g.world = std::move(world);
  return g;
}

// `num_fronts`: the fronts that know this encoder already (at the job's start); later ones join.
absl::Status run_encoder(const DisaggregatedOptions& o, const PoolGroups& g, Device device, PoolControl& control,
                         int num_fronts) {
  // An encoder ends when every front has stopped: a SIGTERM sent to every rank must not end it first.
  std::signal(SIGTERM, SIG_IGN);
  std::signal(SIGINT, SIG_IGN);
  model::ModelParallel parallel;
  parallel.part = model::ModelPart::kVision;
  PLM_ASSIGN_OR_RETURN(const std::unique_ptr<model::PlmModel> model, model::PlmModel::load(o.model_dir, device, parallel));
  control.rejoined();
  return serve::disagg::run_encoder_worker(*model, {.jobs = g.jobs.get(), .replies = g.replies.get(), .data = g.data()},
                                           {.num_fronts = num_fronts,
                                            .cache_bytes = o.encoder_cache_bytes,
                                            .max_items_per_batch = o.max_media_items_per_step,
                                            .may_exit = [&control] { return control.encoder_may_exit(); }});
}

// `joined`: this rank became a front after the job started (--rebalance): the encoders learn of it by a join.
absl::Status run_decoder(const DisaggregatedOptions& o, const PoolLayout& layout, const PoolGroups& g, Device device,
                         const ServeFront& serve_front, const std::function<void(const std::string&)>& log,
                         PoolControl& control, bool joined) {
  model::ModelParallel parallel;
  parallel.part = model::ModelPart::kLanguage;
  if (g.tp->size() > 1) parallel.tp = g.tp_device ? g.tp_device.get() : g.tp.get();
  PLM_ASSIGN_OR_RETURN(const std::unique_ptr<model::PlmModel> model, model::PlmModel::load(o.model_dir, device, parallel));
  const serve::MirrorChannel channel{g.tp->size() > 1 ? g.tp.get() : nullptr, parallel.tp};
  const int rank = g.world->rank();
  if (g.tp->rank() != 0) {  // a TP follower (a rank that changed roles is a replica of its own)
    std::signal(SIGTERM, SIG_IGN);
    std::signal(SIGINT, SIG_IGN);
    return serve::follow_steps(*model, channel);
  }
  // Under --rebalance rank 0 alone drains on signals and ends the job on every rank (the others' fronts with it).
  const bool drain_on_signals = !o.rebalance || rank == 0;
  if (!drain_on_signals) {
    std::signal(SIGTERM, SIG_IGN);
    std::signal(SIGINT, SIG_IGN);
  }
  std::optional<serve::StepPublisher> publisher;
  if (channel.control != nullptr) publisher.emplace(channel);
  serve::disagg::RemoteEncoderConfig config{.encoder_ranks = control.encoder_ranks(),
                                            .join_encoders = joined,
                                            .max_in_flight_bytes = o.max_embedding_bytes_in_flight,
                                            .rows_per_item = model->config().tokens_per_tile(),
                                            .hidden = model->config().text.hidden_size,
                                            .dtype = model->dtype(),
                                            .device = device};
  serve::disagg::RemoteEncoder encoder(config, {.jobs = g.jobs.get(), .replies = g.replies.get(), .data = g.data()});
  control.attach_encoders(&encoder);
  int num_fronts = 0;
  for (int r = 0; r < g.world->size(); ++r) {
    num_fronts += control.role(r) == PoolRole::kDecoder && r % layout.decoder_tp() == 0 ? 1 : 0;
  }
  FrontHooks hooks;
  hooks.media_encoder = &encoder;
  hooks.replica = layout.decoder_replica(rank);
  hooks.description = absl::StrCat(", disaggregated: ", config.encoder_ranks.size(), " encoder ranks, decoder replica ",
                                   hooks.replica, " of ", num_fronts, " x tp ", layout.decoder_tp(),
                                   o.rebalance ? ", rebalancing" : "");
  hooks.drain_on_signals = drain_on_signals;
  hooks.serving = [&control](std::function<void()> drain) {
    const bool ready = static_cast<bool>(drain);
    control.attach_drain(std::move(drain));
    if (ready) control.rejoined();
  };
  hooks.watch_pools = [&](const serve::Engine& engine, serve::Metrics& metrics) {
    serve::disagg::PoolMonitorConfig monitor_config{.world_size = layout.world_size(),
                                                    .decoder_tp = layout.decoder_tp(),
                                                    .interval_s = o.pool_stats_interval_s,
                                                    .log = log,
                                                    .on_window = nullptr};
    if (rank == 0) monitor_config.on_window = [&control](const serve::disagg::SplitSuggestion& s) { control.observe(s); };
    auto monitor = std::make_unique<serve::disagg::PoolMonitor>(encoder, engine, monitor_config);
    metrics.set_extra([m = monitor.get(), &control] { return m->render() + control.render(); });
    return monitor;
  };
  const absl::Status served = serve_front(*model, device, publisher ? &*publisher : nullptr, hooks);
  if (rank == 0) control.finish();  // a move in progress completes (this front's encoder routing with it)
  control.attach_encoders(nullptr);
  encoder.stop();  // every encoder this front knows hears it is done
  if (publisher) publisher->publish_stop();
  return served;
}

}  // namespace

absl::Status run_serve_disaggregated(const DisaggregatedOptions& o, const ServeFront& serve_front,
                                     const std::function<void(const std::string&)>& log) {
  if (o.rebalance && o.pools.decoder_tp != 1) {
    return absl::InvalidArgumentError(absl::StrCat("--rebalance moves single-rank replicas only, but --decoder-tp is ",
                                                   o.pools.decoder_tp, " (serve/README.md, \"Rebalancing\")"));
  }
  PLM_ASSIGN_OR_RETURN(const Device device,
                       runtime::local_device(o.device == "cuda" ? DeviceType::kCuda : DeviceType::kCpu));
  std::unique_ptr<distributed::Communicator> world = distributed::mpi_world();
  PLM_RETURN_IF_ERROR(distributed::check_same_on_all_ranks(*world, "the plm serve command line", o.flags));
  PLM_ASSIGN_OR_RETURN(const PoolLayout layout, PoolLayout::create(o.pools, world->size()));
  const int rank = world->rank();
  const PoolGroups groups = make_groups(std::move(world), layout, device);
  PoolControl control(*groups.control, layout,
                      {.rebalance = o.rebalance, .rebalance_windows = o.rebalance_windows, .log = log});
  // One role after another: a rank told to move drains, returns here and loads the other role's weights.
  PoolRole role = layout.role(rank);
  for (bool first = true;; first = false) {
    if (role == PoolRole::kEncoder) {
      log(first ? absl::StrCat("plm serve: rank ", rank, " is encoder ", layout.encoder_index(rank), " of ",
                               layout.num_encoders(), " (pid ", ::getpid(), ")")
                : absl::StrCat("plm serve: rank ", rank, " loads the vision tower and projector (pid ", ::getpid(), ")"));
      PLM_RETURN_IF_ERROR(run_encoder(o, groups, device, control, first ? layout.num_fronts() : 0));
    } else {
      if (!first) log(absl::StrCat("plm serve: rank ", rank, " loads the language model (pid ", ::getpid(), ")"));
      PLM_RETURN_IF_ERROR(run_decoder(o, layout, groups, device, serve_front, log, control, !first));
    }
    const PoolRole next = control.role(rank);
    if (next == role) return absl::OkStatus();  // the job ended
    log(absl::StrCat("plm serve: rank ", rank, " drained as ", serve::disagg::pool_name(role),
                     " and freed its weights; moving to the ", serve::disagg::pool_name(next), " pool"));
    role = next;
  }
}

}  // namespace plm::apps
