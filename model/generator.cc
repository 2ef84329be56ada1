#include "model/generator.h"

#include <algorithm>
#include <memory>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace plm::model {

namespace {

std::vector<float> host_row(Tensor logits) {
  const OwnedTensor host = to_device(logits, Device::cpu());
  return std::vector<float>(host.data_as<float>(), host.data_as<float>() + host.numel());
}

// The cache of options.kv_cache for the requests (their prompt lengths in results), holding sequences
// 0 .. n-1: a paged cache gets exactly the blocks each prompt and its new tokens take.
std::unique_ptr<KvCache> make_cache(const PlmModel& model, const std::vector<GenerationResult>& results,
                                    const GenerationOptions& options, int64_t max_len) {
  const int n = static_cast<int>(results.size());
  switch (options.kv_cache) {
    case KvCacheKind::kDense: return model.make_cache(n, max_len);
    case KvCacheKind::kPaged: {
      const int64_t block = options.kv_block_size;
      int64_t num_blocks = 0;
      for (const GenerationResult& r : results) {
        num_blocks += (r.prompt_tokens + options.max_new_tokens + block - 1) / block;
      }
      std::unique_ptr<PagedKvCache> cache =
          model.make_paged_cache({.block_size = block, .num_blocks = num_blocks, .max_sequence_len = max_len});
      for (int i = 0; i < n; ++i) {
        const absl::Status added = cache->add_sequence(i);
        PLM_CHECK(added.ok()) << added;
      }
      return cache;
    }
  }
  PLM_CHECK(false) << "unknown KvCacheKind";
  return nullptr;
}

}  // namespace

absl::StatusOr<std::vector<GenerationResult>> generate(const PlmModel& model,
                                                       const std::vector<GenerationRequest>& requests,
                                                       const GenerationOptions& options) {
  if (options.max_new_tokens < 0) {
    return absl::InvalidArgumentError(absl::StrCat("max_new_tokens is ", options.max_new_tokens, "; it must be >= 0"));
  }
  if (options.kv_block_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("kv_block_size is ", options.kv_block_size, "; it must be >= 1"));
  }
  const int n = static_cast<int>(requests.size());
  std::vector<GenerationResult> results(n);
  if (n == 0) return results;
  int64_t longest_prompt = 0;
  const PlmConfig& config = model.config();
  for (int i = 0; i < n; ++i) {
    const GenerationRequest& r = requests[i];
    if (r.prompt_ids.empty()) return absl::InvalidArgumentError(absl::StrCat("request ", i, ": empty prompt"));
    longest_prompt = std::max<int64_t>(longest_prompt, static_cast<int64_t>(r.prompt_ids.size()));
    // Checked here, identically on every rank, before any collective: under pipeline parallelism only the
    // first stage sees the media, and a late error there would leave the other stages waiting.
    for (auto [token, pixels, kind] : {std::tuple{config.image_token_id, r.image_pixels, "image"},
                                       std::tuple{config.video_token_id, r.video_pixels, "video"}}) {
      const int64_t placeholders = std::count(r.prompt_ids.begin(), r.prompt_ids.end(), token);
      const int64_t rows = pixels.defined() ? pixels.size(0) * config.tokens_per_tile() : 0;
      if (placeholders != rows) {
        return absl::InvalidArgumentError(absl::StrCat("request ", i, ": the prompt has ", placeholders, " ", kind,
                                                       " placeholder tokens but the ", kind, "s give ", rows,
                                                       " embedding rows"));
      }
    }
    results[i].prompt_tokens = static_cast<int64_t>(r.prompt_ids.size());
  }
  // Nothing to generate: no forward at all (the first token needs the prefill's logits).
  if (options.max_new_tokens == 0) return results;
  const int64_t max_len = longest_prompt + options.max_new_tokens;
  std::unique_ptr<KvCache> cache = make_cache(model, results, options, max_len);

  // Prefill: every prompt is one chunk of its own sequence (its index), with its own media rows.
  StepBatch prefill;
  std::vector<OwnedTensor> media_rows;  // kept alive for the step
  for (int i = 0; i < n; ++i) {
    const GenerationRequest& r = requests[i];
    StepChunk chunk{.sequence = i, .start = 0, .ids = r.prompt_ids};
    for (auto [pixels, segments] : {std::pair{r.image_pixels, &chunk.media.image},
                                    std::pair{r.video_pixels, &chunk.media.video}}) {
      if (!pixels.defined() || pixels.size(0) == 0) continue;
      OwnedTensor& rows = media_rows.emplace_back(model.encode_media(pixels));
      if (rows.view().defined()) segments->push_back(rows);  // undefined on pipeline stages without media
    }
    prefill.chunks.push_back(std::move(chunk));
  }
  PLM_ASSIGN_OR_RETURN(StepOutput out, model.step(prefill, *cache));

  std::vector<Sampler> samplers;
  for (const GenerationRequest& r : requests) samplers.emplace_back(r.sampling);
  std::vector<int64_t> lengths(n);
  std::vector<int> running;
  for (int i = 0; i < n; ++i) {
    lengths[i] = results[i].prompt_tokens;
    running.push_back(i);
  }
  // Chunk k of the last step belongs to running[k].
  while (!running.empty()) {
    std::vector<int> still_running;
    StepBatch decode;
    for (size_t k = 0; k < running.size(); ++k) {
      const int i = running[k];
      const int32_t token = samplers[i].sample(host_row(out.last_logits(k)));
      results[i].tokens.push_back(token);
      const bool eos = std::find(options.eos_ids.begin(), options.eos_ids.end(), token) != options.eos_ids.end();
      results[i].hit_eos = eos;
      const bool done = eos || static_cast<int>(results[i].tokens.size()) >= options.max_new_tokens ||
                        lengths[i] + 1 >= max_len || (options.should_stop && options.should_stop(i, results[i].tokens));
      if (done) continue;
      still_running.push_back(i);
      decode.chunks.push_back({.sequence = i, .start = lengths[i], .ids = {token}, .media_end = results[i].prompt_tokens});
      ++lengths[i];
    }
    running = std::move(still_running);
    if (running.empty()) break;
    PLM_RETURN_IF_ERROR(model.step(decode, *cache, out));
  }
  return results;
}

}  // namespace plm::model
