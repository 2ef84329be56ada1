#include "model/text/mirrored_kv_cache.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/check.h"

namespace plm::model {

MirroredKvCache::MirroredKvCache(const KvLayout& layout, int64_t num_blocks, int64_t block_size, int64_t max_len,
                                 DType dtype, Device device)
    : KvCache(layout, num_blocks, block_size, dtype, device), max_len_(max_len) {}

void MirroredKvCache::set_tables(const TokenBatch& batch, std::vector<std::vector<int32_t>> tables) {
  PLM_CHECK_EQ(tables.size(), batch.chunks.size());
  tables_.clear();
  for (size_t i = 0; i < tables.size(); ++i) tables_[batch.chunks[i].sequence] = std::move(tables[i]);
}

absl::Status MirroredKvCache::check(const TokenBatch& batch) const {
  for (const SequenceChunk& c : batch.chunks) {
    const auto it = tables_.find(c.sequence);
    if (it == tables_.end()) return absl::NotFoundError(absl::StrCat("no block table for sequence ", c.sequence));
    const int64_t end = c.start + c.length;
    if (end > max_len_) {
      return absl::ResourceExhaustedError(
          absl::StrCat("sequence ", c.sequence, " would hold ", end, " tokens, past ", max_len_));
    }
    if (static_cast<int64_t>(it->second.size()) * block_size() < end) {
      return absl::InvalidArgumentError(absl::StrCat("the block table of sequence ", c.sequence, " holds ",
                                                     it->second.size(), " blocks, short of ", end, " tokens"));
    }
    for (const int32_t block : it->second) {
      if (block < 0 || block >= num_blocks()) {
        return absl::InvalidArgumentError(
            absl::StrCat("block ", block, " of sequence ", c.sequence, " outside the pool of ", num_blocks()));
      }
    }
  }
  return absl::OkStatus();
}

std::vector<std::vector<int32_t>> MirroredKvCache::tables_for(const TokenBatch& batch) const {
  std::vector<std::vector<int32_t>> tables;
  for (const SequenceChunk& c : batch.chunks) tables.push_back(tables_.at(c.sequence));
  return tables;
}

std::span<const int32_t> MirroredKvCache::reserve(const SequenceChunk& chunk) {
  const auto it = tables_.find(chunk.sequence);
  PLM_CHECK(it != tables_.end()) << "no block table for sequence " << chunk.sequence << " (check() first)";
  return it->second;
}

}  // namespace plm::model
