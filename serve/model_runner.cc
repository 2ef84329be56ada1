#include "serve/model_runner.h"

#include <array>
#include <chrono>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "core/check.h"
#include "core/cuda/runtime.h"
#include "core/status_macros.h"

namespace plm::serve {

namespace {

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// The step's embeddings by item key. A null entry is an item waiting to be encoded.
using Resolved = absl::flat_hash_map<MediaKey, EncoderCache::Entry>;

struct ToEncode {
  MediaKey key;
  Tensor pixels;  // (3, h, w) row of its sequence's media
};

// An item counted for the first time by a sequence that pools its media embeddings.
struct ToPool {
  Sequence* seq;
  MediaKey key;
};

// Looks up every item the chunks touch, counting each sequence's new items as cached or encoded (and listing
// them in `to_pool` for a sequence that pools); returns the items that must be encoded, per kind.
std::array<std::vector<ToEncode>, 2> resolve_items(const StepPlan& plan, EncoderCache& cache, Resolved& resolved,
                                                   std::vector<ToPool>& to_pool) {
  std::array<std::vector<ToEncode>, 2> to_encode;
  for (const ScheduledChunk& c : plan.chunks) {
    for (MediaKind kind : kMediaKinds) {
      SequenceMedia& m = c.seq->media_of(kind);
      // Items wholly before the chunk that were never counted: their keys and values came from the prefix cache.
      const int64_t before = m.placeholders_in(0, c.start).second / m.tokens_per_item;
      if (before > m.num_counted) {
        c.seq->num_media_cached += before - m.num_counted;
        m.num_counted = before;
      }
      const auto [first, last] = m.items_in(c.start, c.start + c.length);
      for (int64_t item = first; item < last; ++item) {
        const MediaKey& key = m.items.keys[item];
        const bool counted = item < m.num_counted;
        if (!counted && c.seq->pooled_media) to_pool.push_back({c.seq, key});
        if (item == m.pinned_item) {
          resolved.try_emplace(key, m.pinned);
          continue;
        }
        if (const auto it = resolved.find(key); it != resolved.end()) {
          if (!counted) (it->second ? c.seq->num_media_cached : c.seq->num_media_encoded) += 1;
          continue;
        }
        EncoderCache::Entry entry = cache.find(key);
        if (!counted) (entry ? c.seq->num_media_cached : c.seq->num_media_encoded) += 1;
        if (!entry) to_encode[static_cast<int>(kind)].push_back({key, m.items.pixels.view().select(0, item)});
        resolved.emplace(key, std::move(entry));
      }
      m.num_counted = std::max(m.num_counted, last);
    }
  }
  return to_encode;
}

// The pixels of `items` as one batch (n, 3, h, w); undefined for none.
OwnedTensor stack_pixels(const std::vector<ToEncode>& items) {
  if (items.empty()) return {};
  const Tensor first = items[0].pixels;
  const int64_t n = static_cast<int64_t>(items.size());
  OwnedTensor pixels({n, first.size(0), first.size(1), first.size(2)}, first.dtype());
  for (int64_t i = 0; i < n; ++i) copy_tensor(pixels.view().select(0, i), items[i].pixels);
  return pixels;
}

// Runs the vision tower over `items` (their `pixels`) in one batch and stores each item's rows in the cache and
// in `resolved`.
void encode_items(const model::PlmModel& model, const std::vector<ToEncode>& items, Tensor pixels,
                  EncoderCache& cache, Resolved& resolved) {
  if (items.empty()) return;
  const int64_t n = static_cast<int64_t>(items.size());
  const OwnedTensor rows = model.encode_media(pixels);  // (n * tokens_per_tile, H)
  const int64_t per_item = rows.size(0) / n;
  for (int64_t i = 0; i < n; ++i) {
    auto entry = std::make_shared<OwnedTensor>(Shape{per_item, rows.size(1)}, rows.dtype(), rows.device());
    copy_tensor(entry->view(), rows.view().slice(0, i * per_item, (i + 1) * per_item));
    cache.insert(items[i].key, entry);
    resolved[items[i].key] = std::move(entry);
  }
}

}  // namespace

ModelRunner::ModelRunner(const model::PlmModel& model, model::KvCache& cache, EncoderCache& encoder_cache,
                         StepPublisher* publisher)
    : model_(model), cache_(cache), encoder_cache_(encoder_cache), publisher_(publisher) {
  if (publisher_) publisher_->publish_cache(cache_);
}

absl::StatusOr<StepResult> ModelRunner::run(const StepPlan& plan) {
  StepResult out;
  const Clock::time_point vision_start = Clock::now();
  Resolved resolved;
  std::vector<ToPool> to_pool;
  const std::array<std::vector<ToEncode>, 2> to_encode = resolve_items(plan, encoder_cache_, resolved, to_pool);
  const std::array<OwnedTensor, 2> pixels = {stack_pixels(to_encode[0]), stack_pixels(to_encode[1])};
  if (publisher_ && (pixels[0].view().defined() || pixels[1].view().defined())) {
    publisher_->publish_encode({pixels[0].view(), pixels[1].view()});
  }
  for (int kind = 0; kind < 2; ++kind) {
    encode_items(model_, to_encode[kind], pixels[kind], encoder_cache_, resolved);
    out.num_media_encoded += static_cast<int>(to_encode[kind].size());
  }
  for (const ToPool& p : to_pool) p.seq->pooled_media->add(resolved.at(p.key)->view());

  // One chunk per scheduled chunk, with the rows of its placeholders as segments of the resolved items.
  model::StepBatch batch;
  for (const ScheduledChunk& c : plan.chunks) {
    model::StepChunk& chunk = batch.chunks.emplace_back();
    chunk.sequence = c.seq->slot;
    chunk.start = c.start;
    chunk.ids.assign(c.seq->tokens.begin() + c.start, c.seq->tokens.begin() + c.start + c.length);
    chunk.logits = c.samples ? model::ChunkLogits::kLast : model::ChunkLogits::kNone;
    chunk.media_end = c.seq->num_prompt_tokens;
    for (MediaKind kind : kMediaKinds) {
      SequenceMedia& m = c.seq->media_of(kind);
      std::vector<Tensor>& segments = kind == MediaKind::kImage ? chunk.media.image : chunk.media.video;
      const auto [first, last] = m.placeholders_in(c.start, c.start + c.length);
      for (int64_t p = first; p < last;) {
        const int64_t item = p / m.tokens_per_item, offset = p % m.tokens_per_item;
        const int64_t n = std::min(last - p, m.tokens_per_item - offset);
        const EncoderCache::Entry& entry = resolved.at(m.items.keys[item]);
        PLM_CHECK(entry != nullptr) << "item " << item << " of " << c.seq->id << " was not encoded";
        segments.push_back(entry->view().slice(0, offset, offset + n));
        p += n;
      }
      // The next chunk continues inside the last item when this one ended part-way through it.
      if (first < last) {
        const int64_t last_item = (last - 1) / m.tokens_per_item;
        const bool partial = last % m.tokens_per_item != 0;
        m.pinned_item = partial ? last_item : -1;
        m.pinned = partial ? resolved.at(m.items.keys[last_item]) : nullptr;
      }
    }
  }
  out.vision_s = seconds_since(vision_start);

  const Clock::time_point forward_start = Clock::now();
  if (publisher_) {
    // The leader's cache must take the batch before the followers are told its tables (and start the step).
    model::TokenBatch tokens;
    for (const model::StepChunk& c : batch.chunks) {
      tokens.chunks.push_back({c.sequence, c.start, static_cast<int64_t>(c.ids.size())});
    }
    PLM_RETURN_IF_ERROR(cache_.check(tokens));
    publisher_->publish_step(batch, cache_.tables_for(tokens));
  }
  PLM_RETURN_IF_ERROR(model_.step(batch, cache_, output_));
  out.logits = output_.logits;
  if (out.logits.defined() && !out.logits.device().is_cpu()) {
    const int64_t rows = out.logits.size(0);
    if (!host_logits_.view().defined() || host_logits_.size(0) < rows) {
      host_logits_ = OwnedTensor({rows, out.logits.size(1)}, DType::kF32);
    }
    out.logits = host_logits_.view().slice(0, 0, rows);
    copy_tensor(out.logits, output_.logits);
    cuda_stream_synchronize(Stream{});
  }
  out.forward_s = seconds_since(forward_start);
  return out;
}

}  // namespace plm::serve
