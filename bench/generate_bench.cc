#include "bench/generate_bench.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/cpu_time.h"
#include "bench/peak_rss.h"
#include "bench/synthetic_prompts.h"
#include "core/cuda/runtime.h"
#include "core/machine_peak.h"
#include "core/status_macros.h"
#include "model/generator.h"
#include "model/plm_model.h"
#include "runtime/compute_dtype.h"

namespace plm::bench {

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kWarmupTokens = 8;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

struct GenerateTimes {
  double load_s = 0;
  double vision_s = 0;       // all tiles of all prompts
  double prefill_s = 0;      // decoder forward over the packed prompts, media rows given
  double first_token_s = 0;  // generate(): vision + prefill + first sample
  double decode_s = 0;       // generate(): first token to last, new_tokens - 1 steps
  // The same four as process CPU time: the steadier numbers of a one-thread run on a shared machine.
  double vision_cpu_s = 0, prefill_cpu_s = 0, first_token_cpu_s = 0, decode_cpu_s = 0;
  std::vector<int32_t> tokens;  // prompt 0's greedy tokens
};

void sync_device(const model::PlmModel& model) {
  if (model.device().is_cuda()) cuda_synchronize_device();
}

// Thread pools, allocator and first touch of the activations: a short text-only generation.
absl::Status warm_up(const model::PlmModel& model, const SyntheticPrompts& prompts, const GenerateBenchOptions& o) {
  model::GenerationRequest request;
  const std::vector<int32_t>& text = prompts.text_ids[0];
  request.prompt_ids.assign(text.begin(), text.begin() + std::min(kWarmupTokens, o.prompt_tokens));
  return model::generate(model, {request}, {.max_new_tokens = 2, .eos_ids = {}, .should_stop = {}}).status();
}

// Every prompt in its own cache slot, packed into one forward, as generate() does.
absl::Status time_prefill(const model::PlmModel& model, const SyntheticPrompts& prompts,
                          const model::MediaEmbeddings& media, const GenerateBenchOptions& o, GenerateTimes& times) {
  const int64_t length = static_cast<int64_t>(prompts.ids[0].size());
  const std::unique_ptr<model::KvCache> cache = model.make_cache(o.batch, length + o.new_tokens);
  std::vector<int32_t> ids;
  model::TokenBatch batch;
  for (int b = 0; b < o.batch; ++b) {
    ids.insert(ids.end(), prompts.ids[b].begin(), prompts.ids[b].end());
    batch.chunks.push_back({b, 0, length});
  }
  const auto start = Clock::now();
  const double cpu_start = process_cpu_seconds();
  const absl::StatusOr<OwnedTensor> logits = model.forward(ids, batch, media, *cache, /*all_positions=*/false);
  sync_device(model);
  if (!logits.ok()) return logits.status();
  times.prefill_cpu_s = process_cpu_seconds() - cpu_start;
  times.prefill_s = seconds_since(start);
  return absl::OkStatus();
}

// The whole generate(), media included; fills first_token_s, decode_s and tokens.
absl::Status time_generate(const model::PlmModel& model, const SyntheticPrompts& prompts, const GenerateBenchOptions& o,
                           GenerateTimes& times) {
  std::vector<model::GenerationRequest> requests(o.batch);
  for (int b = 0; b < o.batch; ++b) {
    requests[b].prompt_ids = prompts.ids[b];
    if (o.image_tiles > 0) {
      requests[b].image_pixels = prompts.pixels.view().slice(0, b * o.image_tiles, (b + 1) * o.image_tiles);
    }
  }
  // should_stop runs after every sampled token but the last, once its logits are on the host: its first
  // call ends the prefill; generate() returns right after sampling the last token.
  std::optional<Clock::time_point> first_token;
  double first_token_cpu = 0;
  const model::GenerationOptions options{
      .max_new_tokens = o.new_tokens, .eos_ids = {}, .should_stop = [&](int, const std::vector<int32_t>&) {
        if (!first_token) {
          first_token = Clock::now();
          first_token_cpu = process_cpu_seconds();
        }
        return false;
      }};
  const auto start = Clock::now();
  const double cpu_start = process_cpu_seconds();
  absl::StatusOr<std::vector<model::GenerationResult>> results = model::generate(model, requests, options);
  const auto end = Clock::now();
  const double cpu_end = process_cpu_seconds();
  if (!results.ok()) return results.status();
  times.first_token_s = std::chrono::duration<double>(*first_token - start).count();
  times.decode_s = std::chrono::duration<double>(end - *first_token).count();
  times.first_token_cpu_s = first_token_cpu - cpu_start;
  times.decode_cpu_s = cpu_end - first_token_cpu;
  times.tokens = (*results)[0].tokens;
  return absl::OkStatus();
}

// Keeps the faster of two runs' (wall, cpu) pair.
void keep_fastest(double wall, double cpu, double& best_wall, double& best_cpu) {
  if (best_wall == 0 || wall < best_wall) {
    best_wall = wall;
    best_cpu = cpu;
  }
}

absl::Status measure(const model::PlmModel& model, const SyntheticPrompts& prompts, const GenerateBenchOptions& o,
                     GenerateTimes& times) {
  PLM_RETURN_IF_ERROR(warm_up(model, prompts, o));
  model::MediaEmbeddings media;
  OwnedTensor image_rows;
  for (int run = 0; run < o.repeats && o.image_tiles > 0; ++run) {
    const auto start = Clock::now();
    const double cpu_start = process_cpu_seconds();
    image_rows = model.encode_media(prompts.pixels);
    sync_device(model);
    keep_fastest(seconds_since(start), process_cpu_seconds() - cpu_start, times.vision_s, times.vision_cpu_s);
    media.image = image_rows;
  }
  for (int run = 0; run < o.repeats; ++run) {
    GenerateTimes one;
    PLM_RETURN_IF_ERROR(time_prefill(model, prompts, media, o, one));
    keep_fastest(one.prefill_s, one.prefill_cpu_s, times.prefill_s, times.prefill_cpu_s);
  }
  for (int run = 0; run < o.repeats; ++run) {
    GenerateTimes one;
    PLM_RETURN_IF_ERROR(time_generate(model, prompts, o, one));
    keep_fastest(one.first_token_s, one.first_token_cpu_s, times.first_token_s, times.first_token_cpu_s);
    keep_fastest(one.decode_s, one.decode_cpu_s, times.decode_s, times.decode_cpu_s);
    times.tokens = one.tokens;
  }
  return absl::OkStatus();
}

// Bytes one decode step reads, by the weights' own dtypes: every decoder matrix and norm and the head once (the
// embedding table only as a tied head: a step looks up one row of it), plus each sequence's KV cache at the
// decode's mean context.
double decode_step_bytes(const model::PlmModel& model, const GenerateBenchOptions& o, int64_t prompt_length) {
  model::DecoderWeights text = model.weights().text;
  double bytes = 0.0;
  text.for_each_parameter([&](const std::string& name, Tensor& t) {
    if (name != model::kEmbedTokensName || text.lm_head_tied) bytes += static_cast<double>(t.nbytes());
  });
  const model::TextConfig& c = model.config().text;
  const double mean_context = static_cast<double>(prompt_length) + 0.5 * (o.new_tokens - 1);
  bytes += o.batch * mean_context * c.num_layers * 2.0 * c.num_kv_heads * c.head_dim *
           static_cast<double>(dtype_size(model.kv_dtype()));
  return bytes;
}

void print_report(const model::PlmModel& model, const GenerateBenchOptions& o, const GenerateTimes& t) {
  const model::PlmConfig& c = model.config();
  const int64_t length = int64_t{o.image_tiles} * c.tokens_per_tile() + o.prompt_tokens;
  const int64_t prefill_tokens = int64_t{o.batch} * length, decode_tokens = int64_t{o.batch} * (o.new_tokens - 1);
  const int64_t tiles = int64_t{o.batch} * o.image_tiles;
  const int threads = omp_get_max_threads();
  const std::string dtype(dtype_name(model.compute_dtype()));
  std::printf("plm bench generate: %s\n", o.model_dir.c_str());
  // On CPU, bf16-stored GEMM weights stay bf16; compute is f32 (weights widened exactly) or bf16 (--dtype bf16).
  std::printf("device %s (%s compute, bf16-stored matrices kept bf16, %d threads), batch %d, prompt %d text + "
              "%lld image tokens, %d new tokens (greedy)\n",
              o.device.c_str(), dtype.c_str(), threads, o.batch, o.prompt_tokens,
              static_cast<long long>(length - o.prompt_tokens), o.new_tokens);
  std::printf("%-12s %-28s %10s %10s %12s\n", "stage", "work", "time_s", "cpu_s", "rate");
  std::printf("%-12s %-28s %10.3f\n", "load",
              (std::to_string(model::count_parameters(c).total) + " parameters").c_str(), t.load_s);
  if (tiles > 0) {
    std::printf("%-12s %-28s %10.3f %10.3f %9.1f ms/tile\n", "vision", (std::to_string(tiles) + " tiles").c_str(),
                t.vision_s, t.vision_cpu_s, 1e3 * t.vision_s / tiles);
  }
  std::printf("%-12s %-28s %10.3f %10.3f %9.1f tok/s\n", "prefill",
              (std::to_string(prefill_tokens) + " tokens").c_str(), t.prefill_s, t.prefill_cpu_s,
              prefill_tokens / t.prefill_s);
  std::printf("%-12s %-28s %10.3f %10.3f\n", "first token", "generate: media + prefill", t.first_token_s,
              t.first_token_cpu_s);
  std::printf("%-12s %-28s %10.3f %10.3f %9.2f tok/s\n", "decode", (std::to_string(decode_tokens) + " tokens").c_str(),
              t.decode_s, t.decode_cpu_s, decode_tokens / t.decode_s);
  // The decode's roofline: the bytes a step must read against the read bandwidth measured right after it.
  const double step_bytes = decode_step_bytes(model, o, length);
  const double decode_bytes_per_s = step_bytes * (o.new_tokens - 1) / t.decode_s;
  const double read_bytes_per_s = model.device().is_cpu() ? measure_cpu_read_bytes_per_s()
                                                          : cuda_peak(model.device().index).read_bytes_per_s;
  std::printf("%-12s %.3f GB read per step: %.1f GB/s = %.1f %% of the %.1f GB/s read bandwidth (%s)\n",
              "roofline", step_bytes / 1e9, decode_bytes_per_s / 1e9, 100.0 * decode_bytes_per_s / read_bytes_per_s,
              read_bytes_per_s / 1e9, model.device().is_cpu() ? "measured after the decode" : "spec");

  const nlohmann::ordered_json line = {
      {"bench", "generate"}, {"impl", "plm"}, {"model", o.model_dir}, {"device", o.device}, {"dtype", dtype},
      {"threads", threads}, {"batch", o.batch}, {"prompt_tokens", o.prompt_tokens}, {"image_tiles", o.image_tiles},
      {"prompt_length", length}, {"new_tokens", o.new_tokens}, {"seed", o.seed}, {"repeats", o.repeats}, {"load_s", t.load_s},
      {"vision_ms_per_tile", tiles > 0 ? 1e3 * t.vision_s / tiles : 0.0}, {"prefill_s", t.prefill_s},
      {"prefill_tok_s", prefill_tokens / t.prefill_s}, {"first_token_s", t.first_token_s}, {"decode_s", t.decode_s},
      {"decode_tok_s", decode_tokens / t.decode_s}, {"vision_cpu_s", t.vision_cpu_s},
      {"prefill_cpu_s", t.prefill_cpu_s}, {"first_token_cpu_s", t.first_token_cpu_s}, {"decode_cpu_s", t.decode_cpu_s},
      {"decode_step_gb", step_bytes / 1e9}, {"decode_gb_s", decode_bytes_per_s / 1e9},
      {"read_gb_s", read_bytes_per_s / 1e9}, {"decode_roofline_fraction", decode_bytes_per_s / read_bytes_per_s},
      {"peak_rss_mib", peak_rss_mib()}, {"tokens", t.tokens}};
  std::printf("%s\n", line.dump().c_str());
}

}  // namespace

int run_generate_bench(const GenerateBenchOptions& o) {
  if (o.prompt_tokens < 1 || o.new_tokens < 2 || o.batch < 1 || o.image_tiles < 0) {
    std::fprintf(stderr, "plm bench generate: need --prompt-tokens >= 1, --new-tokens >= 2, --batch >= 1, "
                         "--image-tiles >= 0 (got %d, %d, %d, %d)\n",
                 o.prompt_tokens, o.new_tokens, o.batch, o.image_tiles);
    return 2;
  }
  const bool on_cuda = o.device == "cuda";
  if (on_cuda && cuda_device_count() == 0) {
    std::fprintf(stderr, "plm bench generate: %s\n", cuda_unavailable_reason().c_str());
    return 1;
  }
  const Device device = on_cuda ? Device::cuda(0) : Device::cpu();
  const absl::StatusOr<model::LoadOptions> load_options = runtime::inference_load_options(o.dtype, device);
  if (!load_options.ok()) {
    std::fprintf(stderr, "plm bench generate: %s\n", load_options.status().ToString().c_str());
    return 2;
  }
  GenerateTimes times;
  const auto start = Clock::now();
  absl::StatusOr<std::unique_ptr<model::PlmModel>> model =
      model::PlmModel::load(o.model_dir, device, {}, *load_options);
  if (!model.ok()) {
    std::fprintf(stderr, "plm bench generate: %s\n", model.status().ToString().c_str());
    return 1;
  }
  times.load_s = seconds_since(start);
  const SyntheticPrompts prompts = make_synthetic_prompts(
      (*model)->config(),
      {.batch = o.batch, .text_tokens = o.prompt_tokens, .image_tiles = o.image_tiles, .seed = o.seed});
  if (absl::Status status = measure(**model, prompts, o, times); !status.ok()) {
    std::fprintf(stderr, "plm bench generate: %s\n", status.ToString().c_str());
    return 1;
  }
  print_report(**model, o, times);
  return 0;
}

}  // namespace plm::bench
