// `plm caption`: offline captioning of many videos and images with a PLM model (caption/caption_run.h): decode
// threads ahead of the serving engine, continuous batching, greedy decoding (a caption is what `plm generate`
// prints for the same file and prompt), resumable per-replica parts, data parallel under mpirun / srun, and rank
// 0's merge into one JSONL in input order. `plm caption --merge` only merges.
#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "apps/command.h"
#include "caption/caption_run.h"
#include "runtime/compute_dtype.h"
#include "core/status_macros.h"
#include "distributed/consistency.h"
#include "distributed/launch_env.h"
#include "distributed/mpi_communicator.h"
#include "distributed/nccl_communicator.h"
#include "distributed/single_rank_communicator.h"

namespace plm::apps {

namespace {

struct CaptionOptions {
  std::string model_dir;
  std::string inputs;
  std::string out;
  std::string prompt;
  std::string system;
  int64_t num_frames = 0;  // 0: up to 32 (data::MediaOptions' default), as plm generate
  double fps = 0.0;
  int64_t max_new_tokens = 256;
  int64_t batch_tokens = 8192;
  int max_num_seqs = 16;
  int max_frames_per_step = 64;
  int prefetch = 16;
  int decode_threads = 2;
  int tp = 1;
  std::string device = "cpu";
  std::string dtype;  // --dtype: "" is the device's default
  uint64_t kv_cache_bytes = uint64_t{2} << 30;
  double max_video_seconds = 0.0;  // 0: no limit beyond the decoder's (4 h, then truncated)
  std::string save_embeddings;
  bool merge = false;
  std::string shard;  // "S/N"
};

// The exit status of `plm caption --merge` while some item has no line yet (a shard of an array job still running),
// so a script can tell "not yet" from a failure.
constexpr int kMergeIncompleteExit = 3;

absl::StatusOr<std::optional<caption::InputShard>> parse_shard(const std::string& text) {
  if (text.empty()) return std::nullopt;
  const std::vector<std::string> parts = absl::StrSplit(text, '/');
  caption::InputShard shard;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &shard.index) || !absl::SimpleAtoi(parts[1], &shard.count) ||
      shard.count < 1 || shard.index < 0 || shard.index >= shard.count) {
    return absl::InvalidArgumentError(absl::StrCat("--shard ", text, ": expected S/N with 0 <= S < N, e.g. 0/4"));
  }
  return shard;
}

absl::Status run(const CaptionOptions& o, const std::string& flags) {
  const std::optional<std::filesystem::path> embeddings =
      o.save_embeddings.empty() ? std::nullopt : std::optional<std::filesystem::path>(o.save_embeddings);
  if (o.merge) {
    if (!o.shard.empty()) return absl::InvalidArgumentError("--merge merges every shard's parts: drop --shard");
    PLM_ASSIGN_OR_RETURN(const caption::MergeSummary s, caption::run_merge(o.inputs, o.out, embeddings));
    std::fprintf(stderr, "plm caption --merge: %s\n", caption::merge_summary_line(s, o.out, embeddings).c_str());
    return absl::OkStatus();
  }
  if (o.model_dir.empty()) return absl::InvalidArgumentError("--model is required (except with --merge)");
  PLM_ASSIGN_OR_RETURN(const std::optional<caption::InputShard> shard, parse_shard(o.shard));
  caption::CaptionRunConfig config;
  config.model_dir = o.model_dir;
  config.inputs = o.inputs;
  config.out = o.out;
  config.embeddings_out = embeddings;
  config.shard = shard;
  config.device = o.device == "cuda" ? DeviceType::kCuda : DeviceType::kCpu;
  config.dtype = o.dtype;
  config.tp = o.tp;
  config.device_group = [](distributed::Communicator& group, int device) {
    return distributed::nccl_communicator(group, device, "tp");
  };
  config.engine.scheduler = {.max_num_seqs = o.max_num_seqs,
                             .max_batch_tokens = o.batch_tokens,
                             .max_media_items_per_step = o.max_frames_per_step,
                             .max_bypass = 16};
  // Pooled embeddings need every item's rows: no prefix caching then (it only saves the short shared text prefix).
  config.engine.kv = {.kind = serve::KvCacheKind::kPaged,
                      .bytes = static_cast<int64_t>(o.kv_cache_bytes),
                      .block_tokens = 16,
                      .prefix_caching = embeddings == std::nullopt};
  if (!o.prompt.empty()) config.job.prompt = o.prompt;
  config.job.system = o.system;
  config.job.media.video_sampling = data::video_sampling_from_flags(o.num_frames, o.fps);
  if (o.max_video_seconds > 0) {
    config.job.media.video_limits.max_duration_s = o.max_video_seconds;
    config.job.media.video_limits.refuse_longer = true;
  }
  config.job.max_new_tokens = o.max_new_tokens;
  config.job.num_decode_threads = o.decode_threads;
  config.job.max_in_flight = o.max_num_seqs + o.prefetch;
  config.job.save_embeddings = embeddings.has_value();

  std::unique_ptr<distributed::Communicator> world;
  if (distributed::read_launch_env().world_size > 1) {
    world = distributed::mpi_world();
    // Every rank must run the same command: a different shard size or output would hang or mix parts.
    PLM_RETURN_IF_ERROR(distributed::check_same_on_all_ranks(*world, "the plm caption command line", flags));
  } else {
    world = std::make_unique<distributed::SingleRankCommunicator>("world");
  }
  return caption::run_caption(config, std::move(world));
}

}  // namespace

void add_caption_command(CLI::App& app, CommandMain* selected) {
  auto o = std::make_shared<CaptionOptions>();
  CLI::App* cmd = app.add_subcommand(
      "caption", "Caption many videos / images (offline, resumable, data parallel under mpirun or srun)");
  cmd->add_option("--model", o->model_dir, "Hugging Face PLM directory");
  cmd->add_option("--inputs", o->inputs,
                  "A directory (videos and images, recursively), a .jsonl of {\"id\", \"path\", \"prompt\"}, or a "
                  "text file of paths")
      ->required();
  cmd->add_option("--out", o->out, "Output JSONL, one line per item in input order (parts: OUT.rank-N)")->required();
  cmd->add_option("--prompt", o->prompt, "User text for items without their own (default: describe the video / image)");
  cmd->add_option("--system", o->system, "System message of every item, as plm generate --system (default: PLM's)");
  CLI::Option* num_frames = cmd->add_option("--num-frames", o->num_frames,
                                            "Frames sampled uniformly per video, exactly (default: up to 32)")
                                ->check(CLI::PositiveNumber);
  cmd->add_option("--fps", o->fps, "Sample videos at this rate instead")->excludes(num_frames)->check(CLI::PositiveNumber);
  cmd->add_option("--max-new-tokens", o->max_new_tokens, "Tokens per caption at most (default 256)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--batch-tokens", o->batch_tokens, "Tokens per engine step: decodes plus prefill chunks (default 8192)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-num-seqs", o->max_num_seqs, "Items decoding together in the engine (default 16)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-frames-per-step", o->max_frames_per_step,
                  "Frames / tiles the vision tower encodes per engine step (default 64)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--prefetch", o->prefetch, "Items decoded ahead of the engine (default 16)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--decode-threads", o->decode_threads, "Video decode / preprocessing threads (default 2)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--kv-cache-bytes", o->kv_cache_bytes, "KV-cache memory per replica, e.g. 4G (default 2G)")
      ->transform(CLI::AsSizeValue(false));
  cmd->add_option("--max-video-seconds", o->max_video_seconds, "Longer videos get an error line (default: no limit)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--tp", o->tp, "Tensor-parallel ranks per replica (launch a multiple of it)")->check(CLI::PositiveNumber);
  cmd->add_option("--device", o->device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--dtype", o->dtype, runtime::kDtypeFlagHelp)->check(CLI::IsMember({"f32", "bf16"}));
  cmd->add_option("--save-embeddings", o->save_embeddings,
                  "Also write each item's pooled vision embedding to this HDF5 file (ids in input order)");
  cmd->add_option("--shard", o->shard,
                  "S/N: caption only every N-th item from the S-th (0-based; one task of a Slurm array) into parts "
                  "OUT.shard-S.rank-*, without the merge");
  cmd->add_flag("--merge", o->merge,
                "Only merge the parts into OUT (input order); needs --inputs and --out; exits 3, writing nothing, while "
                "some item has no line yet");
  cmd->callback([selected, o, cmd] {
    *selected = [o, flags = cmd->config_to_str(true, false)] {
      const absl::Status status = run(*o, flags);
      if (!status.ok()) {
        std::fprintf(stderr, "plm caption: %s\n", std::string(status.message()).c_str());
        return o->merge && absl::IsFailedPrecondition(status) ? kMergeIncompleteExit : 1;
      }
      return 0;
    };
  });
}

}  // namespace plm::apps
