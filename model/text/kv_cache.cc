#include "model/text/kv_cache.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "core/check.h"

namespace plm::model {

KvCache::KvCache(const KvLayout& layout, int64_t num_blocks, int64_t block_size, DType dtype, Device device)
    : layout_(layout), num_blocks_(num_blocks), block_size_(block_size), dtype_(dtype), device_(device) {
  PLM_CHECK(num_blocks >= 0 && block_size > 0) << "KV cache of " << num_blocks << " blocks of " << block_size
                                               << " tokens";
  const Shape shape{num_blocks, block_size, layout.num_kv_heads, layout.head_dim};
  for (int l = 0; l < layout.num_layers; ++l) {
    keys_.emplace_back(shape, dtype, device);
    values_.emplace_back(shape, dtype, device);
  }
}

size_t KvCache::nbytes() const {
  size_t total = 0;
  for (size_t l = 0; l < keys_.size(); ++l) total += keys_[l].view().nbytes() + values_[l].view().nbytes();
  return total;
}

KvStep KvCache::append(const TokenBatch& batch) {
  const int64_t num_chunks = static_cast<int64_t>(batch.chunks.size());
  std::vector<std::vector<int32_t>> tables;
  std::vector<int32_t> slots, starts{0}, lens;
  int64_t max_blocks = 1, max_query_len = 0;
  for (const SequenceChunk& c : batch.chunks) {
    const std::span<const int32_t> blocks = reserve(c);
    const int64_t end = c.start + c.length;
    PLM_CHECK_GE(static_cast<int64_t>(blocks.size()) * block_size_, end) << "sequence " << c.sequence;
    for (int64_t p = c.start; p < end; ++p) {
      slots.push_back(static_cast<int32_t>(blocks[p / block_size_] * block_size_ + p % block_size_));
    }
    const int64_t used = (end + block_size_ - 1) / block_size_;
    tables.emplace_back(blocks.begin(), blocks.begin() + used);
    max_blocks = std::max(max_blocks, used);
    max_query_len = std::max(max_query_len, c.length);
    starts.push_back(starts.back() + static_cast<int32_t>(c.length));
    lens.push_back(static_cast<int32_t>(end));
  }
  std::vector<int32_t> flat_tables(static_cast<size_t>(num_chunks * max_blocks), -1);
  for (int64_t i = 0; i < num_chunks; ++i) {
    std::copy(tables[i].begin(), tables[i].end(), flat_tables.begin() + i * max_blocks);
  }
  OwnedTensor host_tables = host_i32(flat_tables);
  host_tables.reshape({num_chunks, max_blocks});
  return {.slots = to_device(host_i32(slots), device_),
          .block_tables = to_device(host_tables, device_),
          .query_starts = to_device(host_i32(starts), device_),
          .kv_lens = to_device(host_i32(lens), device_),
          .max_query_len = max_query_len};
}

DenseKvCache::DenseKvCache(const KvLayout& layout, int num_slots, int64_t max_len, DType dtype, Device device)
    : KvCache(layout, num_slots, max_len, dtype, device), slot_blocks_(static_cast<size_t>(num_slots)) {
  std::iota(slot_blocks_.begin(), slot_blocks_.end(), 0);
}

absl::Status DenseKvCache::check(const TokenBatch& batch) const {
  for (const SequenceChunk& c : batch.chunks) {
    if (c.sequence < 0 || c.sequence >= num_slots()) {
      return absl::InvalidArgumentError(absl::StrCat("cache slot ", c.sequence, " outside the ", num_slots(), " slots"));
    }
    if (c.start < 0 || c.length < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("chunk of slot ", c.sequence, " starts at ", c.start, " with ", c.length, " tokens"));
    }
    if (c.start + c.length > max_len()) {
      return absl::ResourceExhaustedError(absl::StrCat("sequence of ", c.start + c.length,
                                                       " tokens exceeds the KV cache length ", max_len()));
    }
  }
  return absl::OkStatus();
}

std::vector<std::vector<int32_t>> DenseKvCache::tables_for(const TokenBatch& batch) const {
  std::vector<std::vector<int32_t>> tables;
  for (const SequenceChunk& c : batch.chunks) tables.push_back({static_cast<int32_t>(c.sequence)});
  return tables;
}

std::span<const int32_t> DenseKvCache::reserve(const SequenceChunk& chunk) {
  return std::span<const int32_t>(slot_blocks_).subspan(static_cast<size_t>(chunk.sequence), 1);
}

}  // namespace plm::model
