#include "apps/serve_disaggregated.h"

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/status_macros.h"
#include "distributed/consistency.h"
#include "distributed/launch_env.h"
#include "distributed/mpi_communicator.h"
#include "distributed/nccl_communicator.h"
#include "runtime/compute_dtype.h"
#include "runtime/local_device.h"
#include "serve/disagg/encoder_worker.h"
#include "serve/disagg/peer_liveness.h"
#include "serve/disagg/pool_control.h"
#include "serve/disagg/remote_encoder.h"

namespace plm::apps {

namespace {

using serve::disagg::PoolControl;
using serve::disagg::PoolLayout;
using serve::disagg::PoolRole;

// The groups of one rank, created collectively in the same order on every rank.
struct PoolGroups {
  std::unique_ptr<distributed::Communicator> world, jobs, replies, control, heartbeat, tp;
  std::unique_ptr<distributed::Communicator> tp_heartbeat;  // a decoder replica's leader <-> followers
  std::unique_ptr<distributed::Communicator> data_device, tp_device;  // NCCL twins on a GPU
  distributed::Communicator* data() const { return data_device ? data_device.get() : replies.get(); }
};

PoolGroups make_groups(std::unique_ptr<distributed::Communicator> world, const PoolLayout& layout, Device device) {
  PoolGroups g;
  const int rank = world->rank();
  g.jobs = world->split(0, rank, "disagg_jobs");
  g.replies = world->split(0, rank, "disagg_replies");
  g.control = world->split(0, rank, "disagg_control");
  g.heartbeat = world->split(0, rank, "disagg_heartbeat");
  // Each decoder replica is a TP group; each encoder rank a group of its own.
  const int color = layout.role(rank) == PoolRole::kDecoder ? layout.decoder_replica(rank)
                                                            : layout.num_fronts() + layout.encoder_index(rank);
  g.tp = world->split(color, rank, "tp");
  g.tp_heartbeat = world->split(color, rank, "tp_heartbeat");
  if (device.is_cuda()) {
    g.data_device = distributed::nccl_communicator(*g.replies, device.index, "disagg_data");
    if (g.tp->size() > 1) g.tp_device = distributed::nccl_communicator(*g.tp, device.index, "tp");
  }
  g.world = std::move(world);
  return g;
}

// What happens here when a rank dies: only `mpirun --enable-recovery` keeps the other ranks running; otherwise
// the launcher ends the job.
std::string failure_mode(const distributed::LaunchEnv& env) {
  if (env.survives_rank_death) {
    return "a rank that dies is survived (mpirun --enable-recovery): its requests get 503 and the rest go on";
  }
  if (env.launcher == "openmpi") {
    return "a rank that dies ends the whole job (mpirun aborts it); launch with mpirun --enable-recovery to keep "
           "serving (serve/README.md, \"Failure\")";
  }
  if (env.launcher == "slurm") {
    return "a rank that dies ends the job unless srun runs with --kill-on-bad-exit=0 and the MPI library keeps the "
           "other ranks (untested; mpirun --enable-recovery is the tested way, serve/README.md)";
  }
  return "a single rank: nothing to survive";
}

// Ends this rank at once with a message: its peers in a TP replica are gone, and the replica's collectives would
// wait for them for good. The rest of the job notices by heartbeats (under mpirun --enable-recovery).
[[noreturn]] void exit_rank(const std::string& message) {
  std::fprintf(stderr, "plm serve: %s; exiting\n", message.c_str());
  std::fflush(stderr);
  std::fflush(stdout);
  std::_Exit(1);
}

// A decoder replica of tp > 1 ends whole: its leader exits when a follower dies, a follower when its leader does.
std::unique_ptr<serve::disagg::PeerLiveness> watch_replica(const PoolGroups& g, int world_rank, double timeout_s) {
  distributed::Communicator& group = *g.tp_heartbeat;
  if (group.size() == 1) return nullptr;
  std::vector<int> peers;
  if (group.rank() == 0) {
    for (int r = 1; r < group.size(); ++r) peers.push_back(r);
  } else {
    peers.push_back(0);
  }
  const int leader = world_rank - group.rank();
  return std::make_unique<serve::disagg::PeerLiveness>(
      group, peers,
      serve::disagg::PeerLivenessConfig{
          .interval_s = std::min(0.5, timeout_s / 4),
          .timeout_s = timeout_s,
          .on_death = [world_rank, leader, timeout_s](int peer) {
            exit_rank(absl::StrFormat("rank %d: rank %d of its decoder replica stopped answering (no heartbeat for %g s): "
                                      "the replica cannot step any more",
                                      world_rank, leader + peer, timeout_s));
          }});
}

// The dead encoders' ranks as "1, 2" (for messages).
std::string dead_ranks(const serve::disagg::EncoderPoolStats& stats) {
  std::vector<int> dead;
  for (const auto& e : stats.encoders) {
    if (!e.alive) dead.push_back(e.rank);
  }
  return absl::StrJoin(dead, ", ");
}

// `first`: this rank's role at the job's start, whose fronts know this encoder already; a rank that moved here
// (--rebalance) knows no front until each sends it a join.
absl::Status run_encoder(const DisaggregatedOptions& o, const PoolLayout& layout, const PoolGroups& g, Device device,
                         PoolControl& control, bool first, const std::function<void(const std::string&)>& log) {
  // An encoder ends when every front has stopped: a SIGTERM sent to every rank must not end it first.
  std::signal(SIGTERM, SIG_IGN);
  std::signal(SIGINT, SIG_IGN);
  model::ModelParallel parallel;
  parallel.part = model::ModelPart::kVision;
  PLM_ASSIGN_OR_RETURN(const model::LoadOptions load_options, runtime::inference_load_options(o.dtype, device));
  PLM_ASSIGN_OR_RETURN(const std::unique_ptr<model::PlmModel> model,
                       model::PlmModel::load(o.model_dir, device, parallel, load_options));
  // Every rank has loaded its part: the heartbeats' clocks start together (a later load, after a move, is one
  // rank's: nobody watches it until it rejoins).
  if (first) g.heartbeat->barrier();
  control.rejoined();
  std::vector<int> fronts;
  for (int f = 0; first && f < layout.num_fronts(); ++f) fronts.push_back(layout.front_rank(f));
  const serve::disagg::EncoderWorkerConfig config{.front_ranks = fronts,
                                                  .peer_timeout_s = o.peer_timeout_s,
                                                  .log = log,
                                                  .cache_bytes = o.encoder_cache_bytes,
                                                  .max_items_per_batch = o.max_media_items_per_step,
                                                  .may_exit = [&control] { return control.encoder_may_exit(); }};
  return serve::disagg::run_encoder_worker(
      *model, {.jobs = g.jobs.get(), .replies = g.replies.get(), .data = g.data(), .heartbeat = g.heartbeat.get()},
      config);
}

// The server's drain, callable from another thread: tripped before the server is up, it drains it as soon as it
// is; after the server has gone, a no-op.
class DrainSwitch {
 public:
  void set(std::function<void()> drain) {
    const std::lock_guard lock(mutex_);
    drain_ = std::move(drain);
    if (tripped_ && drain_) drain_();
  }
  void trip() {
    const std::lock_guard lock(mutex_);
    tripped_ = true;
    if (drain_) drain_();
  }
  bool tripped() const {
    const std::lock_guard lock(mutex_);
    return tripped_;
  }

 private:
  mutable std::mutex mutex_;
  std::function<void()> drain_;
  bool tripped_ = false;
};

// `joined`: this rank became a front after the job started (--rebalance): the encoders learn of it by a join.
absl::Status run_decoder(const DisaggregatedOptions& o, const PoolLayout& layout, const PoolGroups& g, Device device,
                         const ServeFront& serve_front, const std::function<void(const std::string&)>& log,
                         PoolControl& control, bool joined) {
  model::ModelParallel parallel;
  parallel.part = model::ModelPart::kLanguage;
  if (g.tp->size() > 1) parallel.tp = g.tp_device ? g.tp_device.get() : g.tp.get();
  PLM_ASSIGN_OR_RETURN(const model::LoadOptions load_options, runtime::inference_load_options(o.dtype, device));
  PLM_ASSIGN_OR_RETURN(const std::unique_ptr<model::PlmModel> model,
                       model::PlmModel::load(o.model_dir, device, parallel, load_options));
  if (!joined) g.heartbeat->barrier();  // as the encoders: loading takes longer than --peer-timeout on big models
  const serve::MirrorChannel channel{g.tp->size() > 1 ? g.tp.get() : nullptr, parallel.tp};
  const int rank = g.world->rank();
  const std::unique_ptr<serve::disagg::PeerLiveness> replica = watch_replica(g, rank, o.peer_timeout_s);
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
  // No encoder left: this front drains (text requests in flight finish) and the job ends with a message, so that
  // whatever runs it restarts it whole rather than keep a replica that answers every image with 503.
  DrainSwitch pool_empty;
  serve::disagg::RemoteEncoderConfig config{.encoder_ranks = control.encoder_ranks(),
                                            .join_encoders = joined,
                                            .max_in_flight_bytes = o.max_embedding_bytes_in_flight,
                                            .rows_per_item = model->config().tokens_per_tile(),
                                            .hidden = model->config().text.hidden_size,
                                            .dtype = model->dtype(),
                                            .device = device,
                                            .peer_timeout_s = o.peer_timeout_s,
                                            .log = log,
                                            .on_pool_empty = [&pool_empty] { pool_empty.trip(); }};
  serve::disagg::RemoteEncoder encoder(
      config, {.jobs = g.jobs.get(), .replies = g.replies.get(), .data = g.data(), .heartbeat = g.heartbeat.get()});
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
  hooks.serving = [&control, &pool_empty](std::function<void()> drain) {
    const bool ready = static_cast<bool>(drain);
    pool_empty.set(drain);
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
  const serve::disagg::EncoderPoolStats pool = encoder.stats();  // before stop(): the encoders it routed to
  if (rank == 0) control.finish();  // a move in progress completes (this front's encoder routing with it)
  control.attach_encoders(nullptr);
  encoder.stop();  // every encoder this front knows hears it is done
  if (publisher) publisher->publish_stop();
  PLM_RETURN_IF_ERROR(served);
  if (pool_empty.tripped()) {
    return absl::UnavailableError(absl::StrCat("no encoder rank is left (", dead_ranks(pool),
                                               " stopped answering): drained and exiting so that the job can be "
                                               "restarted whole (serve/README.md, \"Failure\")"));
  }
  return absl::OkStatus();
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
  if (rank == 0) log(absl::StrCat("plm serve: on failure: ", failure_mode(distributed::read_launch_env())));
  PoolControl control(*groups.control, layout,
                      {.rebalance = o.rebalance, .rebalance_windows = o.rebalance_windows, .log = log});
  // One role after another: a rank told to move drains, returns here and loads the other role's weights.
  PoolRole role = layout.role(rank);
  for (bool first = true;; first = false) {
    if (role == PoolRole::kEncoder) {
      log(first ? absl::StrCat("plm serve: rank ", rank, " is encoder ", layout.encoder_index(rank), " of ",
                               layout.num_encoders(), " (pid ", ::getpid(), ")")
                : absl::StrCat("plm serve: rank ", rank, " loads the vision tower and projector (pid ", ::getpid(), ")"));
      PLM_RETURN_IF_ERROR(run_encoder(o, layout, groups, device, control, first, log));
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
