#include "demo/demo_run.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "bench/random_checkpoint.h"
#include "core/progress.h"
#include "core/status_macros.h"
#include "data/read_file.h"
#include "data/synthetic_dataset.h"
#include "demo/captioning.h"
#include "demo/child_process.h"
#include "demo/demo_assets.h"
#include "demo/demo_plan.h"
#include "demo/evaluation.h"
#include "demo/progress_bar.h"
#include "trainer/checkpoint_export.h"
#include "trainer/metrics_log.h"
#include "trainer/metrics_plot.h"

namespace plm::demo {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kMarker = ".plm-demo";  // what makes out_dir replaceable by a later demo
constexpr const char* kServedModel = "plm-demo";
constexpr uint64_t kModelSeed = 7;
constexpr int kRanks = 2;
constexpr int kVideoFrames = 4;  // configs/train/demo.yaml's data.num_frames: the server samples as many
constexpr int kAskThreads = 4;
constexpr auto kPollInterval = std::chrono::milliseconds(500);
constexpr double kServerStartTimeoutS = 120;
constexpr int kExamplesShown = 6;  // per kind, in the printed table

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// The folders and files a demo writes: removed before an earlier demo's out_dir is reused.
struct DemoLayout {
  fs::path out, data, model_init, train, final_hf, plots, logs, predictions, captions;
  explicit DemoLayout(const fs::path& o)
      : out(o),
        data(o / "data"),
        model_init(o / "model-init"),
        train(o / "train"),
        final_hf(o / "train" / "final-hf"),
        plots(o / "plots"),
        logs(o / "logs"),
        predictions(o / "predictions.jsonl"),
        captions(o / "captions") {}
};

absl::Status prepare_out_dir(const DemoLayout& layout) {
  std::error_code error;
  if (fs::exists(layout.out, error) && !fs::is_empty(layout.out, error) && !fs::exists(layout.out / kMarker, error)) {
    return absl::AlreadyExistsError(
        absl::StrCat(layout.out.string(), " exists and is not an earlier plm demo's folder; choose another --out"));
  }
  for (const fs::path& p :
       {layout.data, layout.model_init, layout.train, layout.plots, layout.logs, layout.predictions, layout.captions}) {
    fs::remove_all(p, error);
    if (error) return absl::InternalError(absl::StrCat(p.string(), ": cannot remove: ", error.message()));
  }
  for (const fs::path& p : {layout.out, layout.logs}) {
    fs::create_directories(p, error);
    if (error) return absl::InternalError(absl::StrCat(p.string(), ": cannot create: ", error.message()));
  }
  std::ofstream(layout.out / kMarker) << "written by plm demo; a later plm demo --out here replaces this folder\n";
  return absl::OkStatus();
}

absl::Status write_initial_model(const DemoAssets& assets, const fs::path& dir) {
  bench::RandomCheckpointOptions options;
  options.config_dir = assets.config_dir.string();
  options.out_dir = dir.string();
  options.seed = kModelSeed;
  PLM_RETURN_IF_ERROR(bench::write_random_checkpoint(options).status());
  for (const char* file : kTokenizerFiles) {
    std::error_code error;
    fs::copy_file(assets.tokenizer_dir / file, dir / file, fs::copy_options::overwrite_existing, error);
    if (error) {
      return absl::InternalError(
          absl::StrCat((assets.tokenizer_dir / file).string(), ": cannot copy: ", error.message()));
    }
  }
  return absl::OkStatus();
}

struct TrainOutcome {
  int64_t steps_done = 0;
  bool stopped_early = false;  // by the time budget
  double seconds = 0;
  double last_loss = 0;
};

// `mpirun -n 2 plm train` with the demo's config, a progress bar fed from metrics.jsonl, and SIGUSR1 (which
// mpirun forwards to the ranks: finish the step, save, exit 0) once the time budget is spent.
absl::StatusOr<TrainOutcome> train(const DemoAssets& assets, const DemoLayout& layout, const DemoPlan& plan,
                                   const DemoOptions& options) {
  std::vector<std::string> argv = {PLM_MPIEXEC, "-n", std::to_string(kRanks)};
  if (::geteuid() == 0) argv.push_back("--allow-run-as-root");  // containers and CI run as root
  for (const std::string& a :
       {std::string("--oversubscribe"), std::string("-x"), std::string("OMP_NUM_THREADS"), options.executable.string(),
        std::string("train"), std::string("--config"), assets.train_config.string(),
        absl::StrCat("model=", layout.model_init.string()),
        absl::StrCat("data.train=", (layout.data / "train.jsonl").string()),
        absl::StrCat("output_dir=", layout.train.string()), absl::StrCat("steps=", plan.steps)}) {
    argv.push_back(a);
  }
  const fs::path log = layout.logs / "train.log";
  // One thread per rank: the ranks are the parallelism.
  PLM_ASSIGN_OR_RETURN(const std::unique_ptr<ChildProcess> child,
                       ChildProcess::start(argv, {{"OMP_NUM_THREADS", "1"}}, log));
  const Clock::time_point start = Clock::now();
  TrainOutcome outcome;
  const fs::path metrics = layout.train / "metrics.jsonl";
  // The latest step in metrics.jsonl, once the run has written one.
  const auto read_progress = [&]() -> bool {
    std::error_code error;
    if (!fs::exists(metrics, error)) return false;
    const absl::StatusOr<std::vector<trainer::StepMetrics>> history = trainer::read_metrics_jsonl(metrics);
    if (!history.ok()) return false;
    outcome.steps_done = history->back().step;
    outcome.last_loss = history->back().loss;
    return true;
  };
  ProgressBar bar("training", plan.steps);
  while (!child->poll()) {
    std::this_thread::sleep_for(kPollInterval);
    if (read_progress()) {
      const double eta_s = eta_seconds(outcome.steps_done, seconds_since(start), plan.steps - outcome.steps_done);
      bar.update(outcome.steps_done, absl::StrFormat("loss %.3f  ETA %s", outcome.last_loss, format_hms(eta_s)));
    }
    if (options.stop_at_budget && !outcome.stopped_early && seconds_since(start) > plan.training_budget_s) {
      child->signal(SIGUSR1);
      outcome.stopped_early = true;
    }
  }
  const int status = child->wait();
  outcome.seconds = seconds_since(start);
  if (status != 0) {
    return absl::InternalError(absl::StrCat("mpirun ... plm train exited with status ", status, "; the end of ",
                                            log.string(), ":\n", log_tail(log)));
  }
  read_progress();
  bar.update(outcome.steps_done);
  bar.finish(absl::StrFormat("loss %.3f, %s%s", outcome.last_loss, format_hms(outcome.seconds),
                             outcome.stopped_early ? " (stopped at the time budget)" : ""));
  std::error_code error;
  if (!fs::exists(layout.final_hf / "config.json", error)) {
    // A run stopped early saved a checkpoint but exported nothing: export it as the run would have.
    trainer::ConvertOptions convert;
    convert.dtype = DType::kF32;
    PLM_RETURN_IF_ERROR(trainer::convert_checkpoint_to_hf(layout.train, layout.final_hf, convert));
  }
  return outcome;
}

struct Server {
  std::unique_ptr<ChildProcess> process;
  ServerEndpoint endpoint;
};

// `plm serve` on a port the OS picks, ready once its log shows the ready line.
absl::StatusOr<Server> start_server(const DemoLayout& layout, const fs::path& executable) {
  const std::vector<std::string> argv = {executable.string(),
                                         "serve",
                                         "--model",
                                         layout.final_hf.string(),
                                         "--served-model-name",
                                         kServedModel,
                                         "--port",
                                         "0",
                                         "--media-root",
                                         layout.data.string(),
                                         "--max-video-frames",
                                         std::to_string(kVideoFrames),
                                         "--kv-cache-bytes",
                                         "256M",
                                         "--encoder-cache-bytes",
                                         "64M"};
  const fs::path log = layout.logs / "serve.log";
  PLM_ASSIGN_OR_RETURN(std::unique_ptr<ChildProcess> child, ChildProcess::start(argv, {}, log));
  const std::regex ready("ready on http://([0-9.]+):([0-9]+)");
  const Clock::time_point start = Clock::now();
  while (seconds_since(start) < kServerStartTimeoutS) {
    const absl::StatusOr<std::string> text = data::read_file(log);
    std::smatch match;
    if (text.ok() && std::regex_search(*text, match, ready)) {
      Server server{std::move(child),
                    {.host = match[1],
                     .port = static_cast<uint16_t>(std::stoi(match[2])),
                     .model = kServedModel,
                     .media_root = layout.data}};
      return server;
    }
    if (child->poll()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return absl::InternalError(
      absl::StrCat("plm serve did not get ready; the end of ", log.string(), ":\n", log_tail(log)));
}

absl::Status write_predictions(const fs::path& path, const std::vector<Prediction>& predictions,
                               const fs::path& data_dir) {
  std::ofstream out(path, std::ios::trunc);
  for (const Prediction& p : predictions) {
    out << nlohmann::json{{"media", p.example.media.lexically_relative(data_dir).string()},
                          {"truth", p.example.answer},
                          {"reply", p.reply},
                          {"wrong", wrong_attributes(p)}}
               .dump()
        << "\n";
  }
  out.close();
  if (!out) return absl::InternalError(absl::StrCat(path.string(), ": write failed"));
  return absl::OkStatus();
}

// A reply as one short line for the table: control characters as spaces, cut to at most `width` bytes at a
// UTF-8 character boundary.
std::string one_line(const std::string& text, size_t width) {
  std::string line;
  for (const char c : text) line.push_back(static_cast<unsigned char>(c) < 0x20 ? ' ' : c);
  if (line.size() <= width) return line;
  size_t cut = width - 3;
  while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) --cut;  // a continuation byte
  return line.substr(0, cut) + "...";
}

// Up to kExamplesShown pictures and clips of `predictions`: the truth next to `what` the model said.
void print_examples(const std::vector<Prediction>& predictions, const char* what) {
  std::printf("\n  %-6s %-30s %-30s %s\n", "", "truth", what, "");
  for (const data::MediaKind kind : {data::MediaKind::kImage, data::MediaKind::kVideo}) {
    int shown = 0;
    for (const Prediction& p : predictions) {
      if (p.example.kind != kind || shown++ >= kExamplesShown) continue;
      const std::string wrong = wrong_attributes(p);
      std::printf("  %-6s %-30s %-30s %s\n", kind == data::MediaKind::kImage ? "image" : "video",
                  p.example.answer.c_str(), one_line(p.reply, 30).c_str(),
                  wrong.empty() ? "ok" : ("wrong " + wrong).c_str());
    }
  }
}

// The accuracy per attribute of `what` (the answers, the captions) over the pictures and clips they cover.
void print_scores(const std::vector<Prediction>& predictions, const char* what) {
  int64_t num_images = 0, num_videos = 0;
  for (const Prediction& p : predictions) ++(p.example.kind == data::MediaKind::kImage ? num_images : num_videos);
  std::vector<std::string> covered;
  if (num_images > 0) covered.push_back(absl::StrCat(num_images, " held-out pictures"));
  if (num_videos > 0) covered.push_back(absl::StrCat(num_videos, " held-out clips"));
  std::printf("\naccuracy of the %s on %s:\n", what, absl::StrJoin(covered, " and ").c_str());
  for (const AttributeScore& s : score(predictions)) {
    if (s.total == 0) continue;
    std::printf("  %-9s %5.1f%%   (chance %4.1f%%, %lld/%lld)\n", s.attribute.c_str(), 100 * s.accuracy(),
                100 * s.chance, static_cast<long long>(s.correct), static_cast<long long>(s.total));
  }
}

}  // namespace

absl::Status run_demo(const DemoOptions& options) {
  const Clock::time_point start = Clock::now();
  PLM_ASSIGN_OR_RETURN(const DemoPlan plan, plan_demo(options.minutes, options.seed));
  PLM_ASSIGN_OR_RETURN(const DemoAssets assets, find_demo_assets(options.executable));
  const DemoLayout layout(fs::absolute(options.out_dir));
  PLM_RETURN_IF_ERROR(prepare_out_dir(layout));
  std::printf(
      "plm demo: fine-tune a tiny PLM to describe coloured shapes in pictures and clips, on this CPU, then ask\n"
      "it about held-out ones (budget %.0f min; everything goes to %s)\n\n",
      options.minutes, layout.out.c_str());

  std::printf("[1/7] data: %lld pictures and %lld clips of coloured shapes (plm data synth)\n",
              static_cast<long long>(plan.data.num_images), static_cast<long long>(plan.data.num_videos));
  const Clock::time_point data_start = Clock::now();
  ProgressBar data_bar("generating", plan.data.num_images + plan.data.num_videos);
  PLM_RETURN_IF_ERROR(data::write_synthetic_dataset(plan.data, layout.data, [&data_bar](int64_t done, int64_t) {
                        data_bar.update(done);
                      }).status());
  data_bar.finish(layout.data.string());
  const double data_s = seconds_since(data_start);

  std::printf("[2/7] model: a random-init tiny PLM (configs/demo: vision 2 x 64, text 4 x 32, Llama 3 tokenizer)\n");
  PLM_RETURN_IF_ERROR(write_initial_model(assets, layout.model_init));
  std::printf("      %s\n", layout.model_init.c_str());

  std::printf("[3/7] training: %lld steps of %lld samples, data parallel over %d ranks (mpirun -n %d plm train)\n",
              static_cast<long long>(plan.steps), static_cast<long long>(kBatchSamples), kRanks, kRanks);
  PLM_ASSIGN_OR_RETURN(const TrainOutcome trained, train(assets, layout, plan, options));

  std::printf("[4/7] plots: loss, learning rate, gradient norm, tokens/s (plm plot)\n");
  PLM_ASSIGN_OR_RETURN(const std::vector<trainer::StepMetrics> history,
                       trainer::read_metrics_jsonl(layout.train / "metrics.jsonl"));
  PLM_RETURN_IF_ERROR(trainer::write_metric_plots(history, layout.plots).status());
  std::printf("      %s\n", (layout.plots / "metrics.png").c_str());

  std::printf("[5/7] serving: plm serve %s on a free loopback port\n", layout.final_hf.c_str());
  PLM_ASSIGN_OR_RETURN(Server server, start_server(layout, options.executable));
  std::printf("      http://%s:%d/v1 (OpenAI API, model \"%s\")\n", server.endpoint.host.c_str(), server.endpoint.port,
              kServedModel);

  PLM_ASSIGN_OR_RETURN(const std::vector<data::SynthExample> examples,
                       data::read_synthetic_split(layout.data / "test.jsonl"));
  std::printf("[6/7] asking: %zu held-out pictures and clips through /v1/chat/completions\n", examples.size());
  const Clock::time_point ask_start = Clock::now();
  ProgressBar ask_bar("asking", static_cast<int64_t>(examples.size()));
  PLM_ASSIGN_OR_RETURN(
      const std::vector<Prediction> predictions,
      ask_server(server.endpoint, examples, kAskThreads, [&ask_bar](int64_t done) { ask_bar.update(done); }));
  ask_bar.finish();
  const double ask_s = seconds_since(ask_start);
  PLM_RETURN_IF_ERROR(write_predictions(layout.predictions, predictions, layout.data));

  server.process->signal(SIGTERM);  // drains and exits
  server.process->wait();

  std::vector<data::SynthExample> clips;
  for (const data::SynthExample& e : examples) {
    if (e.kind == data::MediaKind::kVideo) clips.push_back(e);
  }
  std::printf("[7/7] captions: plm caption on the %zu held-out clips (offline, no server)\n", clips.size());
  const Clock::time_point caption_start = Clock::now();
  ProgressBar caption_bar("captioning", static_cast<int64_t>(clips.size()));
  PLM_ASSIGN_OR_RETURN(const std::vector<Prediction> captions,
                       caption_examples({.executable = options.executable,
                                         .model_dir = layout.final_hf,
                                         .data_dir = layout.data,
                                         .out_dir = layout.captions,
                                         .log = layout.logs / "caption.log",
                                         .num_frames = kVideoFrames},
                                        clips, [&caption_bar](int64_t done) { caption_bar.update(done); }));
  caption_bar.finish((layout.captions / "captions.jsonl").string());
  const double caption_s = seconds_since(caption_start);

  print_examples(predictions, "the model's answer (OpenAI API)");
  print_scores(predictions, "answers");
  print_examples(captions, "plm caption's caption");
  print_scores(captions, "captions");
  std::printf("\nmodel        %s\n", layout.final_hf.c_str());
  std::printf("plots        %s   (metrics.png; loss.png, lr.png, grad_norm.png, tokens_per_s.png)\n",
              layout.plots.c_str());
  std::printf("answers      %s\n", layout.predictions.c_str());
  std::printf("captions     %s\n", (layout.captions / "captions.jsonl").c_str());
  std::printf("data         %s   (train/validation/test.jsonl, images/, videos/)\n", layout.data.c_str());
  std::printf("logs         %s   (train.log, serve.log, caption.log)\n", layout.logs.c_str());
  std::printf("time         %s in all: data %s, training %s (%lld steps%s), asking %s, captions %s\n",
              format_hms(seconds_since(start)).c_str(), format_hms(data_s).c_str(), format_hms(trained.seconds).c_str(),
              static_cast<long long>(trained.steps_done), trained.stopped_early ? ", stopped at the time budget" : "",
              format_hms(ask_s).c_str(), format_hms(caption_s).c_str());
  if (!examples.empty()) {
    const data::SynthExample& e = examples.front();
    const bool image = e.kind == data::MediaKind::kImage;
    std::printf("\nask it yourself:\n  %s generate --model %s --system \"%s\" --%s %s%s --prompt \"%s\"\n",
                options.executable.c_str(), layout.final_hf.c_str(), e.system.c_str(), image ? "image" : "video",
                e.media.c_str(), image ? "" : absl::StrCat(" --num-frames ", kVideoFrames).c_str(), e.question.c_str());
  }
  return absl::OkStatus();
}

}  // namespace plm::demo
