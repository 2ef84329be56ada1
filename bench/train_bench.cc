#include "bench/train_bench.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/cpu_time.h"
#include "bench/peak_rss.h"
#include "bench/synthetic_prompts.h"
#include "core/cpu_time.h"
#include "distributed/single_rank_communicator.h"
#include "model/parallel.h"
#include "model/plm_model.h"
#include "model/recompute.h"
#include "model/training_pass.h"
#include "runtime/model_parallelism.h"
#include "trainer/data_parallel_step.h"
#include "trainer/tied_embedding.h"

namespace plm::bench {

namespace {

using Clock = std::chrono::steady_clock;

// The step's optimizer settings, mirrored in bench/torch_train_bench.py.
constexpr float kLr = 1e-5f;
constexpr trainer::AdamWConfig kAdamW{
    .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
constexpr float kGradClip = 1.0f;
constexpr double kMiB = 1024.0 * 1024.0;

std::optional<model::Recompute> parse_recompute(const std::string &text) {
  for (const model::Recompute r :
       {model::Recompute::kNone, model::Recompute::kSelective,
        model::Recompute::kFull}) {
    if (model::recompute_text(r) == text)
      return r;
  }
  return std::nullopt;
}

// The prompts packed into one micro-batch. Every next token is labelled but
// placeholders (media is never a target) and each sequence's last token has
// none: HF's labels = input_ids with placeholders at -100.
model::TrainingBatch make_batch(const model::PlmConfig &config,
                                const SyntheticPrompts &prompts) {
  model::TrainingBatch batch;
  for (const std::vector<int32_t> &ids : prompts.ids) {
    for (size_t i = 0; i < ids.size(); ++i) {
      const bool unlabelled =
          i + 1 == ids.size() || ids[i + 1] == config.image_token_id;
      batch.targets.push_back(unlabelled ? model::kIgnoreTarget : ids[i + 1]);
    }
    batch.ids.insert(batch.ids.end(), ids.begin(), ids.end());
    batch.lengths.push_back(static_cast<int64_t>(ids.size()));
  }
  if (prompts.pixels.numel() > 0)
    batch.image_pixels = prompts.pixels.view();
  return batch;
}

struct StepTimes {
  double first_loss = 0.0;     // the warm-up step's loss: the initial weights',
                               // comparable with PyTorch
  std::vector<double> seconds; // wall time of each timed step
  std::vector<double> cpu_seconds; // process CPU time of each timed step
  size_t arena_peak_bytes = 0;
  double compute_s = 0.0, transfer_s = 0.0; // this stage's schedule, summed
                                            // over the timed steps
  // This stage's forward + backward compute of the micro-batches with media
  // and of the text-only ones, and their counts, over the timed steps.
  double media_s = 0.0, text_s = 0.0;
  int media_micro = 0, text_micro = 0;
  double compute_cpu_s = 0.0; // this stage's forwards and backwards
};

absl::StatusOr<StepTimes>
run_steps(trainer::DataParallelStep &step,
          const std::vector<model::TrainingBatch> &micro_batches, int steps) {
  StepTimes times;
  for (int i = 0; i <= steps; ++i) {
    const auto start = Clock::now();
    const double cpu_start = process_cpu_seconds();
    const absl::StatusOr<trainer::StepStats> stats =
        step.step(micro_batches, kLr);
    const double cpu_seconds = process_cpu_seconds() - cpu_start;
    const double seconds =
        std::chrono::duration<double>(Clock::now() - start).count();
    if (!stats.ok())
      return stats.status();
    if (i == 0) {
      times.first_loss = stats->loss;
    } else {
      times.seconds.push_back(seconds);
      times.cpu_seconds.push_back(cpu_seconds);
      const trainer::PipelineStats &p = stats->pipeline;
      times.compute_s += p.media_compute_s + p.text_compute_s;
      times.transfer_s += p.transfer_s;
      times.media_s += p.media_compute_s;
      times.text_s += p.text_compute_s;
      times.media_micro += p.media_micro;
      times.compute_cpu_s += p.compute_cpu_s;
      times.text_micro += p.text_micro;
    }
    times.arena_peak_bytes =
        std::max(times.arena_peak_bytes, stats->peak_arena_bytes);
  }
  return times;
}

// Analytic memory of the step: per trainable parameter the working weight and
// its gradient (model dtype), the f32 master copy and AdamW's two f32 moments;
// plus the activations (the arena's peak, sized exactly).
struct MemoryEstimate {
  double weights_mib = 0, grads_mib = 0, master_mib = 0, moments_mib = 0,
         activations_mib = 0;
  double total_mib() const {
    return weights_mib + grads_mib + master_mib + moments_mib + activations_mib;
  }
};

MemoryEstimate estimate_memory(int64_t trainable, DType dtype,
                               size_t arena_peak_bytes) {
  const double n = static_cast<double>(trainable),
               e = static_cast<double>(dtype_size(dtype));
  return {.weights_mib = n * e / kMiB,
          .grads_mib = n * e / kMiB,
          .master_mib = n * 4 / kMiB,
          .moments_mib = 2 * n * 4 / kMiB,
          .activations_mib = static_cast<double>(arena_peak_bytes) / kMiB};
}

// Per stage, in stage order: the share of its schedule spent in transfers
// (waiting for a neighbour) and its compute CPU per step.
struct StageReport {
  std::vector<double> bubble, compute_cpu_s;
};

// rss_mib: each rank's peak RSS (world rank order); rss_before_load_mib: rank
// 0's before the model loaded. t: rank 0's (stage 0's) times.
void print_report(const model::PlmModel &model, const TrainBenchOptions &o,
                  int64_t trainable, const StepTimes &t,
                  const std::vector<double> &rss_mib,
                  double rss_before_load_mib, const StageReport &stages) {
  const model::PlmConfig &c = model.config();
  const int64_t tokens = int64_t{o.batch} * o.seq_len * o.micro,
                placeholders = int64_t{o.image_tiles} * c.tokens_per_tile();
  const auto mean = [](const std::vector<double> &v) {
    double total = 0.0;
    for (const double x : v)
      total += x;
    return total / static_cast<double>(v.size());
  };
  const double mean_s = mean(t.seconds), cpu_s = mean(t.cpu_seconds);
  const double min_s = *std::min_element(t.seconds.begin(), t.seconds.end());
  const MemoryEstimate m =
      estimate_memory(trainable, model.dtype(), t.arena_peak_bytes);
  const int threads = omp_get_max_threads();
  const std::string dtype =
      std::string(dtype_name(model.dtype())) +
      (model.compute_dtype() == DType::kBF16 ? ", bf16 compute" : "");
  std::printf("plm bench train: %s (%d text layers, %d vision blocks)\n",
              o.model_dir.c_str(), c.text.num_layers, c.vision.depth);
  std::printf("cpu (%s, %d threads, tp %d, pp %d), %d micro-batch(es) of "
              "%d x %d tokens (%lld image "
              "placeholders each), recompute %s, "
              "AdamW + clip %.1f, %lld trainable parameters on rank 0\n",
              dtype.c_str(), threads, o.tp, o.pp, o.micro, o.batch, o.seq_len,
              static_cast<long long>(placeholders), o.recompute.c_str(),
              kGradClip, static_cast<long long>(trainable));
  std::vector<int> stage_layers = model.parallel().stage_layer_counts;
  if (stage_layers.empty()) {
    for (int stage = 0; stage < o.pp; ++stage) {
      const auto [first, last] =
          model::stage_layers(c.text.num_layers, stage, o.pp);
      stage_layers.push_back(last - first);
    }
  }
  std::string layers_text;
  for (const int n : stage_layers)
    layers_text += (layers_text.empty() ? "" : ", ") + std::to_string(n);
  std::printf("%-22s [%s]\n", "decoder layers/stage", layers_text.c_str());
  std::printf("%-22s %12.6f\n", "loss (step 1)", t.first_loss);
  std::printf("%-22s %12.1f ms (min %.1f, %zu steps; CPU %.1f ms)\n", "step",
              1e3 * mean_s, 1e3 * min_s, t.seconds.size(), 1e3 * cpu_s);
  std::printf("%-22s %12.1f tok/s\n", "throughput", tokens / mean_s);
  const double largest_rss =
      *std::max_element(rss_mib.begin(), rss_mib.end());
  std::string per_rank;
  for (const double r : rss_mib)
    per_rank += (per_rank.empty() ? "" : ", ") + std::to_string(std::lround(r));
  std::printf("%-22s %12.1f MiB%s (%.1f before the model loaded: the run "
              "added %.1f); per rank [%s]\n",
              "peak RSS", largest_rss,
              rss_mib.size() > 1 ? " (the largest rank's)" : "",
              rss_before_load_mib, largest_rss - rss_before_load_mib,
              per_rank.c_str());
  std::printf("%-22s %12.1f MiB = weights %.1f + grads %.1f + master %.1f + "
              "moments %.1f + activations %.1f\n",
              "estimate", m.total_mib(), m.weights_mib, m.grads_mib,
              m.master_mib, m.moments_mib, m.activations_mib);
  const double ideal_bubble =
      static_cast<double>(o.pp - 1) / static_cast<double>(o.micro + o.pp - 1);
  const auto join = [](const std::vector<double> &v, double scale) {
    std::string text;
    for (const double x : v) {
      char item[32];
      std::snprintf(item, sizeof(item), "%.3f", scale * x);
      text += (text.empty() ? "" : ", ") + std::string(item);
    }
    return text;
  };
  // 1F1B with stage s taking c_s per micro-batch and every transfer free:
  // (m - 1) max_s c_s + sum_s c_s, and stage s idles 1 - m c_s / that; equal
  // stages give (p-1)/(m+p-1).
  const std::vector<double> &cpu = stages.compute_cpu_s;
  const double max_cpu = *std::max_element(cpu.begin(), cpu.end());
  double sum_cpu = 0.0;
  for (const double c : cpu)
    sum_cpu += c;
  const double schedule_cpu =
      ((o.micro - 1) * max_cpu + sum_cpu) / o.micro;
  std::vector<double> predicted;
  for (const double c : cpu)
    predicted.push_back(1.0 - c / schedule_cpu);
  std::printf("%-22s stages [%s]; (p-1)/(m+p-1) = %.3f; from the stages' "
              "compute CPU [%s]\n",
              "bubble", join(stages.bubble, 1.0).c_str(), ideal_bubble,
              join(predicted, 1.0).c_str());
  std::printf("%-22s stages [%s] s per step; the schedule on dedicated cores "
              "%.3f s\n",
              "compute CPU", join(cpu, 1.0).c_str(), schedule_cpu);
  const auto per_micro_ms = [](double s, int n) {
    return n > 0 ? 1e3 * s / n : 0.0;
  };
  const double media_ms = per_micro_ms(t.media_s, t.media_micro),
               text_ms = per_micro_ms(t.text_s, t.text_micro);
  std::printf("%-22s with media %.1f ms (%d), text only %.1f ms (%d) per "
              "micro-batch (forward + backward compute)\n",
              "stage 0", media_ms, t.media_micro, text_ms, t.text_micro);

  const nlohmann::ordered_json line = {
      {"bench", "train"},
      {"impl", "plm"},
      {"model", o.model_dir},
      {"dtype", dtype},
      {"threads", threads},
      {"tp", o.tp},
      {"pp", o.pp},
      {"micro", o.micro},
      {"stage_layers", stage_layers},
      {"media_micro", o.media_micro < 0 ? o.micro : o.media_micro},
      {"text_layers", c.text.num_layers},
      {"vision_blocks", c.vision.depth},
      {"batch", o.batch},
      {"seq_len", o.seq_len},
      {"image_tiles", o.image_tiles},
      {"recompute", o.recompute},
      {"compute", o.dtype},
      {"seed", o.seed},
      {"parameters", trainable},
      {"loss_step1", t.first_loss},
      {"steps", t.seconds.size()},
      {"step_ms", 1e3 * mean_s},
      {"step_ms_min", 1e3 * min_s},
      {"step_cpu_ms", 1e3 * cpu_s},
      {"tokens_per_s", tokens / mean_s},
      {"peak_rss_mib", largest_rss},
      {"peak_rss_mib_per_rank", rss_mib},
      {"rss_before_load_mib", rss_before_load_mib},
      {"arena_peak_mib", m.activations_mib},
      {"estimate_mib", m.total_mib()},
      {"bubble", stages.bubble},
      {"bubble_ideal", ideal_bubble},
      {"bubble_from_compute_cpu", predicted},
      {"stage_compute_cpu_s", cpu},
      {"schedule_cpu_s", schedule_cpu},
      {"stage0_media_ms", media_ms},
      {"stage0_text_ms", text_ms}};
  std::printf("%s\n", line.dump().c_str());
}

} // namespace

int run_train_bench(const TrainBenchOptions &o) {
  const std::optional<model::Recompute> recompute =
      parse_recompute(o.recompute);
  if (o.batch < 1 || o.seq_len < 2 || o.image_tiles < 0 || o.steps < 1 ||
      o.media_micro > o.micro || !recompute) {
    std::fprintf(stderr,
                 "plm bench train: need --batch >= 1, --seq-len >= 2, "
                 "--image-tiles >= 0, --steps >= 1, --media-micro <= --micro "
                 "and --recompute none|selective|full (got %d, %d, %d, %d, "
                 "%d of %d, %s)\n",
                 o.batch, o.seq_len, o.image_tiles, o.steps, o.media_micro,
                 o.micro, o.recompute.c_str());
    return 2;
  }
  const double rss_before_load_mib = current_rss_mib();
  absl::StatusOr<model::PlmConfig> model_config =
      model::load_plm_config(o.model_dir);
  if (!model_config.ok()) {
    std::fprintf(stderr, "plm bench train: %s\n",
                 model_config.status().ToString().c_str());
    return 1;
  }
  // The decoder layers split by cost: stage 0 also runs the tower for the
  // sequence's share of placeholders, the last stage the head and loss.
  model::ModelParallel layout;
  if (!o.pp_layers.empty()) {
    layout.stage_layer_counts = o.pp_layers;
  } else if (o.pp > 1) {
    const double media_fraction =
        static_cast<double>(int64_t{o.image_tiles} *
                            model_config->tokens_per_tile()) /
        o.seq_len;
    // Every text token is labelled (make_batch): it reaches the head.
    const double media = std::min(media_fraction, 1.0);
    layout.stage_layer_counts = model::cost_aware_stage_layers(
        *model_config, o.pp, {.media_fraction = media, .head_fraction = 1.0 - media});
  }
  absl::StatusOr<runtime::ModelParallelism> parallel =
      runtime::set_up_model_parallelism(
          {.command = "plm bench train",
           .flags =
               nlohmann::json({o.model_dir, o.batch, o.seq_len, o.image_tiles,
                               o.steps, o.recompute, o.seed, o.tp, o.pp,
                               o.micro, o.media_micro, o.pp_layers})
                   .dump(),
           .tp = o.tp,
           .pp = o.pp,
           .data_parallel = false},
          Device::cpu(), layout);
  if (!parallel.ok()) {
    std::fprintf(stderr, "plm bench train: %s\n",
                 parallel.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<model::PlmModel>> model =
      model::PlmModel::load(o.model_dir, Device::cpu(), parallel->layout,
                            {.for_training = true,
                             .cpu_compute = o.dtype == "bf16" ? DType::kBF16
                                                              : DType::kF32});
  if (!model.ok()) {
    std::fprintf(stderr, "plm bench train: %s\n",
                 model.status().ToString().c_str());
    return 1;
  }
  const model::PlmConfig &config = (*model)->config();
  const int64_t placeholders =
      int64_t{o.image_tiles} * config.tokens_per_tile();
  if (placeholders + 2 > o.seq_len) {
    std::fprintf(stderr,
                 "plm bench train: --seq-len %d leaves no text after %d "
                 "tile(s) x %lld placeholders\n",
                 o.seq_len, o.image_tiles,
                 static_cast<long long>(config.tokens_per_tile()));
    return 2;
  }
  const SyntheticPrompts prompts = make_synthetic_prompts(
      config, {.batch = o.batch,
               .text_tokens = o.seq_len - static_cast<int>(placeholders),
               .image_tiles = o.image_tiles,
               .seed = o.seed});
  // The micro-batches without media: as many text ids instead of the
  // placeholders.
  const SyntheticPrompts text_prompts = make_synthetic_prompts(
      config, {.batch = o.batch, .text_tokens = o.seq_len, .seed = o.seed});
  const model::TrainingBatch batch = make_batch(config, prompts),
                             text_batch = make_batch(config, text_prompts);
  const int media_micro = o.media_micro < 0 ? o.micro : o.media_micro;
  std::vector<model::TrainingBatch> micro_batches(media_micro, batch);
  micro_batches.resize(o.micro, text_batch);
  // A tied head split over stages: its copies' gradients are summed.
  std::unique_ptr<distributed::Communicator> tied;
  if (parallel->groups) {
    OwnedTensor copies({1}, DType::kI32);
    copies.data_as<int32_t>()[0] =
        (*model)->decoder().weights().lm_head_copies_embedding;
    parallel->groups->world->all_reduce(copies, distributed::ReduceOp::kMax);
    tied = trainer::tied_embedding_group(*parallel->groups->world,
                                         parallel->groups->dims,
                                         copies.data_as<int32_t>()[0] != 0);
  }
  trainer::DataParallelStep step(**model, distributed::single_rank_group(),
                                 {.zero_stage = 0,
                                  .adamw = kAdamW,
                                  .grad_clip = kGradClip,
                                  .recompute = *recompute},
                                 [](const std::string &) { return true; },
                                 tied.get());
  const absl::StatusOr<StepTimes> times =
      run_steps(step, micro_batches, o.steps);
  if (!times.ok()) {
    std::fprintf(stderr, "plm bench train: %s\n",
                 times.status().ToString().c_str());
    return 1;
  }
  const int world_size = parallel->world_size();
  OwnedTensor own_rss({1}, DType::kF32), rss({world_size}, DType::kF32);
  own_rss.data_as<float>()[0] = rss.data_as<float>()[0] =
      static_cast<float>(peak_rss_mib());
  // Each stage's bubble and compute CPU per step, in stage order (the stage's
  // TP rank 0 reports them).
  OwnedTensor stages({2, o.pp}, DType::kF32);
  float *bubble = stages.data_as<float>(), *cpu = bubble + o.pp;
  std::fill(bubble, bubble + 2 * o.pp, 0.0f);
  if ((*model)->parallel().tp_rank() == 0) {
    const int stage = (*model)->parallel().pp_rank();
    bubble[stage] = static_cast<float>(
        times->transfer_s / (times->compute_s + times->transfer_s));
    cpu[stage] = static_cast<float>(times->compute_cpu_s / o.steps);
  }
  if (parallel->groups) {
    parallel->groups->world->all_gather(rss, own_rss);
    parallel->groups->world->all_reduce(stages, distributed::ReduceOp::kSum);
  }
  if (parallel->world_rank() == 0)
    print_report(**model, o, step.num_trainable(), *times,
                 std::vector<double>(rss.data_as<float>(),
                                     rss.data_as<float>() + world_size),
                 rss_before_load_mib,
                 {.bubble = std::vector<double>(bubble, bubble + o.pp),
                  .compute_cpu_s = std::vector<double>(cpu, cpu + o.pp)});
  return 0;
}

} // namespace plm::bench
