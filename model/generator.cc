#include "model/generator.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace plm::model {

namespace {

std::vector<float> host_row(Tensor logits, int64_t row) {
  const OwnedTensor host = to_device(logits.slice(0, row, row + 1), Device::cpu());
  return std::vector<float>(host.data_as<float>(), host.data_as<float>() + host.numel());
}

}  // namespace

absl::StatusOr<std::vector<GenerationResult>> generate(const PlmModel& model,
                                                       const std::vector<GenerationRequest>& requests,
                                                       const GenerationOptions& options) {
  if (options.max_new_tokens < 0) {
    return absl::InvalidArgumentError(absl::StrCat("max_new_tokens is ", options.max_new_tokens, "; it must be >= 0"));
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
  std::unique_ptr<KvCache> cache = model.make_cache(n, max_len);

  // Prefill: every prompt packed into one forward, each in its own cache slot.
  std::vector<int32_t> ids;
  TokenBatch prefill;
  std::vector<OwnedTensor> image_rows, video_rows;
  for (int i = 0; i < n; ++i) {
    const GenerationRequest& r = requests[i];
    ids.insert(ids.end(), r.prompt_ids.begin(), r.prompt_ids.end());
    prefill.chunks.push_back({i, 0, static_cast<int64_t>(r.prompt_ids.size())});
  }
  // Media rows of all requests, concatenated in request order (the placeholders are in the same order).
  const auto encode_all = [&](auto pixels_of) -> OwnedTensor {
    std::vector<OwnedTensor> parts;
    int64_t rows = 0;
    for (const GenerationRequest& r : requests) {
      const Tensor pixels = pixels_of(r);
      if (!pixels.defined() || pixels.size(0) == 0) continue;
      OwnedTensor rows_of_item = model.encode_media(pixels);
      if (!rows_of_item.view().defined()) continue;  // a pipeline stage that does not see media
      rows += rows_of_item.size(0);
      parts.push_back(std::move(rows_of_item));
    }
    if (parts.empty()) return OwnedTensor();
    if (parts.size() == 1) return std::move(parts[0]);
    OwnedTensor all({rows, parts[0].size(1)}, parts[0].dtype(), parts[0].device());
    int64_t at = 0;
    for (const OwnedTensor& p : parts) {
      copy_tensor(all.view().slice(0, at, at + p.size(0)), p);
      at += p.size(0);
    }
    return all;
  };
  const OwnedTensor images = encode_all([](const GenerationRequest& r) { return r.image_pixels; });
  const OwnedTensor videos = encode_all([](const GenerationRequest& r) { return r.video_pixels; });
  PLM_ASSIGN_OR_RETURN(OwnedTensor logits,
                       model.forward(ids, prefill, {images.view(), videos.view()}, *cache, /*all_positions=*/false));

  std::vector<Sampler> samplers;
  for (const GenerationRequest& r : requests) samplers.emplace_back(r.sampling);
  std::vector<int64_t> lengths(n);
  std::vector<int> running;
  for (int i = 0; i < n; ++i) {
    lengths[i] = results[i].prompt_tokens;
    running.push_back(i);
  }
  // rows[k] of `logits` belongs to running[k].
  while (!running.empty()) {
    std::vector<int> still_running;
    std::vector<int32_t> next_ids;
    TokenBatch step;
    for (size_t k = 0; k < running.size(); ++k) {
      const int i = running[k];
      const std::vector<float> row = host_row(logits, static_cast<int64_t>(k));
      const int32_t token = samplers[i].sample(row);
      results[i].tokens.push_back(token);
      const bool eos = std::find(options.eos_ids.begin(), options.eos_ids.end(), token) != options.eos_ids.end();
      results[i].hit_eos = eos;
      const bool done = eos || static_cast<int>(results[i].tokens.size()) >= options.max_new_tokens ||
                        lengths[i] + 1 >= max_len || (options.should_stop && options.should_stop(i, results[i].tokens));
      if (done) continue;
      still_running.push_back(i);
      next_ids.push_back(token);
      step.chunks.push_back({i, lengths[i], 1});
      ++lengths[i];
    }
    running = std::move(still_running);
    if (running.empty()) break;
    PLM_ASSIGN_OR_RETURN(logits, model.forward(next_ids, step, {}, *cache, /*all_positions=*/false));
  }
  return results;
}

}  // namespace plm::model
