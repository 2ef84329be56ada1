#include "caption/caption_run.h"

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "caption/caption_inputs.h"
#include "caption/part_file.h"
#include "caption/progress_report.h"
#include "caption/replica_sync.h"
#include "core/status_macros.h"
#include "distributed/process_groups.h"
#include "distributed/status_agreement.h"
#include "model/plm_model.h"
#include "runtime/compute_dtype.h"
#include "runtime/local_device.h"
#include "runtime/model_directory.h"
#include "serve/step_mirror.h"

namespace plm::caption {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// This rank's share of the replica's model: the whole model on one rank, a TP shard in a group of several.
struct ModelShare {
  std::unique_ptr<distributed::Communicator> device_group;  // NCCL over the TP group on a GPU
  serve::MirrorChannel channel;                             // control + data groups when tp > 1
  std::unique_ptr<model::PlmModel> model;
};

absl::Status load_share(const CaptionRunConfig& config, distributed::Communicator& tp_group, ModelShare& share) {
  PLM_ASSIGN_OR_RETURN(const Device device, runtime::local_device(config.device));
  model::ModelParallel layout;
  if (config.tp > 1) {
    if (device.is_cuda() && config.device_group) share.device_group = config.device_group(tp_group, device.index);
    layout.tp = share.device_group ? share.device_group.get() : &tp_group;
    share.channel = {.control = &tp_group, .data = layout.tp};
  }
  PLM_ASSIGN_OR_RETURN(const model::LoadOptions load_options, runtime::inference_load_options(config.dtype, device));
  PLM_ASSIGN_OR_RETURN(share.model, model::PlmModel::load(config.model_dir.string(), device, layout, load_options));
  return absl::OkStatus();
}

// What a TP replica's leader tells its group before anything is loaded.
enum ReplicaPlan : int64_t { kNothingToDo = 0, kCaption = 1, kFailed = 2 };

void broadcast_plan(distributed::Communicator& tp_group, int64_t& plan) {
  tp_group.broadcast(Tensor(&plan, {1}, DType::kI64), 0);
}

// What one replica captions, with the model and engine loaded only when there is something to caption. With
// TP the engine steps the group's other ranks; they stop when the engine is gone.
struct Replica {
  std::vector<CaptionItem> todo;
  int64_t num_finished_before = 0;
  std::unique_ptr<PartWriter> part;
  std::unique_ptr<runtime::ModelDirectory> model_dir;  // stays put: the engine refers to its tokenizer
  ModelShare share;
  std::unique_ptr<serve::StepPublisher> publisher;  // tp > 1
  std::unique_ptr<serve::Engine> engine;

  Replica() = default;
  Replica(Replica&&) = default;
  ~Replica() {
    engine.reset();  // joins the engine thread: the last step has been published
    if (publisher) publisher->publish_stop();
  }
};

// The todo list of this replica and, when it is not empty, the model directory's config and tokenizer.
absl::Status plan_replica(const CaptionRunConfig& config, const std::vector<CaptionItem>& items, int replica,
                          int num_replicas, Replica& r) {
  const std::filesystem::path own =
      part_path(config.out, replica, config.shard ? std::optional<int>(config.shard->index) : std::nullopt);
  PLM_ASSIGN_OR_RETURN(const auto finished, finished_ids(config.out, own));
  for (CaptionItem& item : shard_items(items, replica, num_replicas)) {
    if (finished.contains(item.id)) {
      ++r.num_finished_before;
    } else {
      r.todo.push_back(std::move(item));
    }
  }
  PLM_ASSIGN_OR_RETURN(r.part, PartWriter::open(own));
  if (r.todo.empty()) return absl::OkStatus();
  PLM_ASSIGN_OR_RETURN(runtime::ModelDirectory model_dir, runtime::open_model_directory(config.model_dir));
  r.model_dir = std::make_unique<runtime::ModelDirectory>(std::move(model_dir));
  return absl::OkStatus();
}

// The leader's part of setting up: plan, tell the group, and (when there is work) load and start the engine.
absl::StatusOr<Replica> set_up_replica(const CaptionRunConfig& config, const std::vector<CaptionItem>& items,
                                       int replica, int num_replicas, distributed::Communicator& tp_group) {
  Replica r;
  const absl::Status planned = plan_replica(config, items, replica, num_replicas, r);
  int64_t plan = !planned.ok() ? kFailed : r.todo.empty() ? kNothingToDo : kCaption;
  if (config.tp > 1) broadcast_plan(tp_group, plan);
  PLM_RETURN_IF_ERROR(planned);
  if (r.todo.empty()) return r;
  PLM_RETURN_IF_ERROR(load_share(config, tp_group, r.share));
  serve::EngineConfig engine = config.engine;
  if (config.tp > 1) {
    r.publisher = std::make_unique<serve::StepPublisher>(r.share.channel);
    engine.publisher = r.publisher.get();
  }
  PLM_ASSIGN_OR_RETURN(r.engine, serve::Engine::start(*r.share.model, r.model_dir->tokenizer,
                                                      r.model_dir->eos_token_ids(), engine));
  return r;
}

// A TP replica's other ranks: load the share and follow the leader's engine until it stops.
absl::Status follow_replica(const CaptionRunConfig& config, distributed::Communicator& tp_group) {
  int64_t plan = kFailed;
  broadcast_plan(tp_group, plan);
  if (plan == kNothingToDo) return absl::OkStatus();
  if (plan == kFailed) return absl::AbortedError("the replica's lead rank failed to plan its items; its log has why");
  ModelShare share;
  PLM_RETURN_IF_ERROR(load_share(config, tp_group, share));
  return serve::follow_steps(*share.model, share.channel);
}

}  // namespace

absl::Status run_caption(const CaptionRunConfig& config, std::unique_ptr<distributed::Communicator> world) {
  const Clock::time_point start = Clock::now();
  PLM_ASSIGN_OR_RETURN(distributed::ProcessGroups groups,
                       distributed::ProcessGroups::create(std::move(world), config.tp, /*pp=*/1));
  // Only the tp_index-0 ranks (the `leaders` below) run the job, the sync and the merge; the others follow.
  if (groups.coords.tp_index != 0) return follow_replica(config, *groups.tp);
  const bool is_rank0 = groups.world->rank() == 0;
  const int replica = groups.coords.dp_index;
  distributed::Communicator& leaders = *groups.dp;  // the replicas' group-rank-0s (tp = 1: every rank)
  ReplicaSync sync(leaders);

  absl::StatusOr<std::vector<CaptionItem>> read = read_caption_inputs(config.inputs);
  if (!read.ok() && config.tp > 1) {
    int64_t plan = kFailed;
    broadcast_plan(*groups.tp, plan);
  }
  PLM_RETURN_IF_ERROR(read.status());
  const std::vector<CaptionItem> items =
      config.shard ? shard_items(*read, config.shard->index, config.shard->count) : *std::move(read);
  absl::StatusOr<Replica> set_up = set_up_replica(config, items, replica, sync.num_replicas(), *groups.tp);
  PLM_RETURN_IF_ERROR(distributed::agree_on_status(leaders, set_up.status(), "replica", Device::cpu()));
  Replica& r = *set_up;

  CaptionCounters before;  // the job's size, before anything runs
  before.items_total = static_cast<int64_t>(r.todo.size());
  before.items_done = r.num_finished_before;
  const CaptionCounters sizes = sync.exchange(before, /*done=*/false);
  if (is_rank0) {
    std::fprintf(config.log, "plm caption: %zu items, %lld finished by an earlier run, %lld to caption on %d replica(s)\n",
                 items.size(), static_cast<long long>(sizes.items_done), static_cast<long long>(sizes.items_total),
                 sync.num_replicas());
  }

  ProgressPrinter printer(config.log);
  const Clock::time_point job_start = Clock::now();
  CaptionCounters local;
  absl::Status job_status;
  if (!r.todo.empty()) {
    CaptionJob job(*r.engine, *r.model_dir, config.job);
    absl::StatusOr<CaptionCounters> done = job.run(r.todo, *r.part, [&](const CaptionCounters& c) {
      const CaptionCounters total = sync.exchange(c, /*done=*/false);
      if (is_rank0) printer.update(total, seconds_since(job_start));
    });
    job_status = done.status();
    if (done.ok()) local = *done;
  }
  // Finish together: keep exchanging (one short all-reduce per tick) until every replica is done.
  CaptionCounters total = sync.exchange(local, /*done=*/true);
  while (!sync.all_done(total)) {
    std::this_thread::sleep_for(std::chrono::duration<double>(config.job.tick_interval_s));
    total = sync.exchange(local, /*done=*/true);
  }
  PLM_RETURN_IF_ERROR(distributed::agree_on_status(leaders, job_status, "replica", Device::cpu()));
  if (!is_rank0) return absl::OkStatus();
  const double job_s = seconds_since(job_start);
  printer.finish(total, job_s);
  std::fprintf(config.log, "%s\n", summary_text(total, job_s, sync.num_replicas()).c_str());
  if (config.shard) {
    std::fprintf(config.log, "plm caption: shard %d/%d done; `plm caption --merge` writes %s once every shard is done\n",
                 config.shard->index, config.shard->count, config.out.string().c_str());
    return absl::OkStatus();
  }
  PLM_ASSIGN_OR_RETURN(const MergeSummary merged, merge_parts(items, config.out, config.embeddings_out));
  std::fprintf(config.log, "%s (all done in %.1f s)\n", merge_summary_line(merged, config.out, config.embeddings_out).c_str(),
               seconds_since(start));
  return absl::OkStatus();
}

absl::StatusOr<MergeSummary> run_merge(const std::filesystem::path& inputs, const std::filesystem::path& out,
                                       const std::optional<std::filesystem::path>& embeddings_out) {
  PLM_ASSIGN_OR_RETURN(const std::vector<CaptionItem> items, read_caption_inputs(inputs));
  return merge_parts(items, out, embeddings_out);
}

std::string merge_summary_line(const MergeSummary& s, const std::filesystem::path& out,
                               const std::optional<std::filesystem::path>& embeddings_out) {
  std::string line = absl::StrCat(out.string(), ": ", s.num_items, " lines (", s.num_captions, " captions, ",
                                  s.num_errors, " errors) from ", s.num_parts, " part(s)");
  if (embeddings_out) absl::StrAppend(&line, "; ", embeddings_out->string(), ": ", s.num_embeddings, " embeddings");
  return line;
}

}  // namespace plm::caption
