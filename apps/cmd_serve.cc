// `plm serve`: an OpenAI-compatible HTTP server for one PLM directory on this machine (serve/http/http_server.h
// over serve/engine.h). Prints a ready line with the URL, one line per request, and on SIGTERM / SIGINT drains
// the requests in flight and exits 0 (a second signal cancels them). Under mpirun / srun the ranks form replicas
// of --tp ranks each, one server per replica.
#include <stdlib.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "apps/command.h"
#include "apps/serve_disaggregated.h"
#include "core/status_macros.h"
#include "distributed/launch_env.h"
#include "model/plm_model.h"
#include "runtime/compute_dtype.h"
#include "runtime/local_device.h"
#include "runtime/model_directory.h"
#include "runtime/model_parallelism.h"
#include "serve/engine.h"
#include "serve/http/http_server.h"
#include "serve/prompt_preparer.h"
#include "serve/step_mirror.h"

namespace plm::apps {

namespace {

struct ServeOptions {
  std::string model_dir;
  std::string served_model_name;
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string device = "cpu";
  std::string dtype;  // --dtype: "" is the device's default
  int max_num_seqs = 32;
  int64_t max_batch_tokens = 2048;
  int max_media_items_per_step = 32;
  int64_t max_model_len = 0;
  uint64_t kv_cache_bytes = uint64_t{2} << 30;
  std::string kv_cache = "paged";
  int64_t kv_block_size = 16;
  bool no_prefix_caching = false;
  uint64_t encoder_cache_bytes = uint64_t{512} << 20;
  uint64_t max_body_bytes = uint64_t{64} << 20;
  std::string api_key;
  std::string media_root;
  int max_media_items = 8;
  int64_t max_video_frames = 32;
  // 8192 x 8192: an 8K photo fits; a decompression bomb's 179 Mpx (Pillow's limit, 537 MB of RGB) does not.
  int64_t max_image_pixels = int64_t{8192} * 8192;
  int max_queue = 256;
  int io_threads = 2;
  int media_threads = 2;
  int tp = 1;
  bool disaggregate = false;
  DisaggregatedOptions disagg;
};

// A private directory for data: URL payloads, removed with this object.
class ScratchDir {
 public:
  static absl::StatusOr<ScratchDir> create() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = (std::filesystem::path(tmp != nullptr && *tmp ? tmp : "/tmp") / "plm-serve-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      return absl::InternalError(absl::StrCat(pattern, ": cannot create a scratch directory for data: URLs"));
    }
    return ScratchDir(pattern);
  }
  ScratchDir(ScratchDir&& other) noexcept : path_(std::exchange(other.path_, {})) {}
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  ~ScratchDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  explicit ScratchDir(std::filesystem::path path) : path_(std::move(path)) {}
  std::filesystem::path path_;
};

void print_line(const std::string& line) {
  static std::mutex mutex;
  const std::lock_guard lock(mutex);
  std::fprintf(stdout, "%s\n", line.c_str());
  std::fflush(stdout);
}

// A replica leader's part: the engine over `model` (stepping the replica's other TP ranks through `publisher`)
// and the HTTP server on `port`, until drained.
absl::Status serve_model(const ServeOptions& o, const model::PlmModel& model, Device device, int port,
                         const std::string& replica_label, serve::StepPublisher* publisher,
                         const FrontHooks& hooks = {}) {
  std::optional<std::filesystem::path> media_root;
  if (!o.media_root.empty()) {
    std::error_code error;
    media_root = std::filesystem::canonical(o.media_root, error);
    if (error || !std::filesystem::is_directory(*media_root)) {
      return absl::NotFoundError(absl::StrCat("--media-root ", o.media_root, ": not a directory"));
    }
  }
  PLM_ASSIGN_OR_RETURN(const runtime::ModelDirectory model_dir, runtime::open_model_directory(o.model_dir));
  PLM_ASSIGN_OR_RETURN(const ScratchDir scratch, ScratchDir::create());

  serve::EngineConfig engine_config;
  engine_config.scheduler = {.max_num_seqs = o.max_num_seqs,
                             .max_batch_tokens = o.max_batch_tokens,
                             .max_media_items_per_step = o.max_media_items_per_step,
                             .max_bypass = 16};
  engine_config.kv = {.kind = o.kv_cache == "dense" ? serve::KvCacheKind::kDense : serve::KvCacheKind::kPaged,
                      .bytes = static_cast<int64_t>(o.kv_cache_bytes),
                      .block_tokens = o.kv_block_size,
                      .prefix_caching = !o.no_prefix_caching};
  engine_config.max_model_len = o.max_model_len;
  engine_config.encoder_cache_bytes = static_cast<int64_t>(o.encoder_cache_bytes);
  engine_config.publisher = publisher;
  serve::Metrics metrics;
  PLM_ASSIGN_OR_RETURN(const std::unique_ptr<serve::Engine> engine,
                       serve::Engine::start(model, model_dir.tokenizer, model_dir.eos_token_ids(), engine_config, &metrics));
  const std::unique_ptr<serve::disagg::PoolMonitor> pools = hooks.watch_pools ? hooks.watch_pools(*engine, metrics) : nullptr;
  data::MediaOptions media;
  media.video_sampling = {.num_frames = o.max_video_frames, .fps = std::nullopt, .at_most = true};
  media.video_limits.max_output_frames = o.max_video_frames;
  media.image_limits.max_pixels = o.max_image_pixels;
  serve::PromptPreparer preparer(
      model_dir, {.media_root = media_root, .scratch_dir = scratch.path(), .max_media_items = o.max_media_items}, media,
      o.media_threads, hooks.media_encoder);

  serve::http::ServerConfig config;
  config.host = o.host;
  config.port = static_cast<uint16_t>(port);
  config.num_io_threads = o.io_threads;
  config.api_key = o.api_key;
  config.model_name = o.served_model_name.empty()
                          ? std::filesystem::path(o.model_dir).lexically_normal().filename().string()
                          : o.served_model_name;
  if (config.model_name.empty()) config.model_name = std::filesystem::canonical(o.model_dir).filename().string();
  config.max_queue = o.max_queue;
  config.max_body_bytes = static_cast<int64_t>(o.max_body_bytes);
  config.log = print_line;
  PLM_ASSIGN_OR_RETURN(const std::unique_ptr<serve::http::HttpServer> server,
                       serve::http::HttpServer::start(config, *engine, preparer, metrics));
  if (hooks.drain_on_signals) server->drain_on_signals();
  const serve::EngineStats stats = engine->stats();
  print_line(absl::StrCat("plm serve: ready on ", server->url(), " (pid ", ::getpid(), replica_label, ", model ", config.model_name, " on ", device.to_string(),
                          o.tp > 1 ? absl::StrCat(" x tp ", o.tp) : "", hooks.description,
                          ", ", o.max_num_seqs, " sequences of up to ", engine->max_sequence_tokens(),
                          " tokens, ", o.kv_cache, " KV cache ", stats.kv.bytes >> 20, " MiB (", stats.kv.num_blocks,
                          " blocks of ", stats.kv.block_tokens, " tokens), encoder cache ",
                          o.encoder_cache_bytes >> 20, " MiB", o.api_key.empty() ? "" : ", API key required",
                          media_root ? absl::StrCat(", media root ", media_root->string()) : "", ")"));
  if (hooks.serving) hooks.serving([s = server.get()] { s->drain(); });
  server->wait();
  if (hooks.serving) hooks.serving({});
  print_line("plm serve: drained; exiting");
  return absl::OkStatus();
}

// The port replica `parallel` listens on: --port plus the replica's index among those on this node (a TP group's
// ranks are adjacent and on one node), so every rank runs the same command line; 0 stays "any free port".
absl::StatusOr<int> replica_port(const ServeOptions& o, const runtime::ModelParallelism& parallel) {
  if (o.port == 0 || parallel.num_replicas() == 1) return o.port;
  const int local_rank = distributed::read_launch_env().local_rank;
  if (local_rank % o.tp != 0) {
    return absl::InvalidArgumentError(absl::StrCat("--tp ", o.tp, ": a tensor-parallel group must sit on one node, but rank ",
                                                   parallel.world_rank(), " leads a group at local rank ", local_rank,
                                                   " (launch a multiple of ", o.tp, " ranks per node)"));
  }
  const int port = o.port + local_rank / o.tp;
  if (port > 65535) return absl::InvalidArgumentError(absl::StrCat("--port ", o.port, ": replica port ", port, " is above 65535"));
  return port;
}

// Every rank loads its replica's share of the model. Ranks beyond --tp make more replicas (mpirun -n 4 --tp 2:
// two servers); each replica's first rank serves HTTP, its other TP ranks follow its steps.
absl::Status run_serve(const ServeOptions& o, const std::string& flags) {
  if (o.disagg.rebalance && !o.disaggregate) return absl::InvalidArgumentError("--rebalance needs --disaggregate");
  if (o.disaggregate) {
    DisaggregatedOptions d = o.disagg;
    d.model_dir = o.model_dir;
    d.device = o.device;
    d.dtype = o.dtype;
    d.flags = flags;
    d.encoder_cache_bytes = static_cast<int64_t>(o.encoder_cache_bytes);
    d.max_media_items_per_step = o.max_media_items_per_step;
    return run_serve_disaggregated(
        d,
        [&o](const model::PlmModel& model, Device device, serve::StepPublisher* publisher, const FrontHooks& hooks) {
          return serve_model(o, model, device, o.port == 0 ? 0 : o.port + hooks.replica, "", publisher, hooks);
        },
        print_line);
  }
  PLM_ASSIGN_OR_RETURN(const Device device,
                       runtime::local_device(o.device == "cuda" ? DeviceType::kCuda : DeviceType::kCpu));
  PLM_ASSIGN_OR_RETURN(
      const runtime::ModelParallelism parallel,
      runtime::set_up_model_parallelism({.command = "plm serve", .flags = flags, .tp = o.tp, .data_parallel = true}, device));
  PLM_ASSIGN_OR_RETURN(const int port, replica_port(o, parallel));
  PLM_ASSIGN_OR_RETURN(const model::LoadOptions load_options, runtime::inference_load_options(o.dtype, device));
  PLM_ASSIGN_OR_RETURN(const std::unique_ptr<model::PlmModel> model,
                       model::PlmModel::load(o.model_dir, device, parallel.layout, load_options));
  const serve::MirrorChannel channel{parallel.tp_host(), parallel.tp_device()};
  if (!parallel.is_replica_leader()) {
    // A follower ends when its leader has drained and says stop: a SIGTERM sent to every rank (scancel, srun) must
    // not end it first.
    std::signal(SIGTERM, SIG_IGN);
    std::signal(SIGINT, SIG_IGN);
    return serve::follow_steps(*model, channel);
  }
  std::optional<serve::StepPublisher> publisher;
  if (channel.control != nullptr) publisher.emplace(channel);
  const std::string replica_label =
      parallel.num_replicas() > 1 ? absl::StrCat(", replica ", parallel.replica(), " of ", parallel.num_replicas()) : "";
  const absl::Status served = serve_model(o, *model, device, port, replica_label, publisher ? &*publisher : nullptr);
  if (publisher) publisher->publish_stop();
  return served;
}

}  // namespace

void add_serve_command(CLI::App& app, CommandMain* selected) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand("serve", "Serve a PLM model over an OpenAI-compatible HTTP API");
  cmd->add_option("--model", o->model_dir, "Hugging Face PLM directory")->required();
  cmd->add_option("--served-model-name", o->served_model_name, "The model id clients use (default: the directory name)");
  cmd->add_option("--host", o->host, "Address to listen on (default 127.0.0.1: this machine only)");
  cmd->add_option("--port", o->port, "Port (default 8000; 0: any free port, printed in the ready line)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--device", o->device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--dtype", o->dtype, runtime::kDtypeFlagHelp)->check(CLI::IsMember({"f32", "bf16"}));
  cmd->add_option("--max-num-seqs", o->max_num_seqs, "Sequences decoding together (default 32)")->check(CLI::PositiveNumber);
  cmd->add_option("--max-batch-tokens", o->max_batch_tokens, "Tokens per engine step: decodes plus prefill chunks (default 2048)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-media-per-step", o->max_media_items_per_step,
                  "Image tiles / video frames the vision tower encodes per step (default 32)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-model-len", o->max_model_len, "Longest prompt + reply (default: the model's, capped by the KV cache)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--kv-cache-bytes", o->kv_cache_bytes, "KV-cache memory, e.g. 4G (default 2G)")->transform(CLI::AsSizeValue(false));
  cmd->add_option("--kv-cache", o->kv_cache,
                  "paged (default: blocks handed out as sequences grow) or dense (a slot of --max-model-len tokens "
                  "per sequence, --kv-cache-bytes / --max-num-seqs each)")
      ->check(CLI::IsMember({"paged", "dense"}));
  cmd->add_option("--kv-block-size", o->kv_block_size, "Tokens per paged KV-cache block (default 16)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--no-prefix-caching", o->no_prefix_caching,
                "Do not keep full KV blocks for later requests with the same prefix (paged cache)");
  cmd->add_option("--encoder-cache-bytes", o->encoder_cache_bytes, "Vision-embedding cache, e.g. 512M (default; 0: off)")
      ->transform(CLI::AsSizeValue(false));
  cmd->add_option("--api-key", o->api_key, "Require 'Authorization: Bearer KEY' on /v1/* (default: $PLM_API_KEY)")
      ->envname("PLM_API_KEY");
  cmd->add_option("--media-root", o->media_root, "Directory whose files requests may name (default: none, data: URLs only)");
  cmd->add_option("--max-media-items", o->max_media_items, "Images + videos per request (default 8)")->check(CLI::PositiveNumber);
  cmd->add_option("--max-video-frames", o->max_video_frames, "Frames sampled per video at most (default 32)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-image-pixels", o->max_image_pixels,
                  "Largest image (width x height) a request may send, checked before decoding (default 8192x8192)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-queue", o->max_queue, "Requests waiting beyond the running batch before 429 (default 256)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-body-bytes", o->max_body_bytes, "Largest request body (default 64M)")->transform(CLI::AsSizeValue(false));
  cmd->add_option("--io-threads", o->io_threads, "HTTP I/O threads (default 2)")->check(CLI::PositiveNumber);
  cmd->add_option("--media-threads", o->media_threads, "Media decode / preprocessing threads (default 2)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--tp", o->tp, "Tensor-parallel ranks per replica: launch a multiple of this with mpirun or srun; each replica's first "
                  "rank serves HTTP on --port + its index among the node's replicas")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--disaggregate", o->disaggregate,
                "Split the job into an encoder pool (vision tower + projector) and a decoder pool (language model); "
                "launch --encoder-ranks + --decoder-ranks ranks (serve/README.md)");
  cmd->add_option("--encoder-ranks", o->disagg.pools.encoder_ranks, "With --disaggregate: encoder ranks (default 1)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--decoder-ranks", o->disagg.pools.decoder_ranks,
                  "With --disaggregate: decoder ranks, in replicas of --decoder-tp; each replica's first rank serves "
                  "HTTP on --port + replica (default 1)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--decoder-tp", o->disagg.pools.decoder_tp, "With --disaggregate: tensor-parallel ranks per decoder replica (default 1)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-embedding-bytes-in-flight", o->disagg.max_embedding_bytes_in_flight,
                  "With --disaggregate: embedding bytes a front awaits from encoders before it holds requests back (default 256M)")
      ->transform(CLI::AsSizeValue(false));
  cmd->add_option("--peer-timeout", o->disagg.peer_timeout_s,
                  "With --disaggregate: seconds without a heartbeat after which a rank counts as dead: its requests get "
                  "503 (default 10; survives only under mpirun --enable-recovery)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--pool-stats-interval", o->disagg.pool_stats_interval_s,
                  "With --disaggregate: seconds between pool reports (log line and suggested split; default 10)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--rebalance", o->disagg.rebalance,
                "With --disaggregate (and --decoder-tp 1): move a rank between the pools when the suggested split has "
                "differed from the current one the same way for --rebalance-windows intervals (serve/README.md)");
  cmd->add_option("--rebalance-windows", o->disagg.rebalance_windows,
                  "With --rebalance: consecutive --pool-stats-interval windows the suggestion must hold (default 3)")
      ->check(CLI::PositiveNumber);
  cmd->callback([selected, o, cmd] {
    *selected = [o, flags = cmd->config_to_str(true, false)] {
      std::signal(SIGPIPE, SIG_IGN);  // a client that goes away is an error value, not a signal
      const absl::Status status = run_serve(*o, flags);
      if (!status.ok()) {
        std::fprintf(stderr, "plm serve: %s\n", std::string(status.message()).c_str());
        return 1;
      }
      return 0;
    };
  });
}

}  // namespace plm::apps
