#include "model/text/paged_kv_cache.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "core/check.h"

namespace plm::model {

namespace {

int64_t blocks_for_tokens(int64_t tokens, int64_t block_size) { return (tokens + block_size - 1) / block_size; }

}  // namespace

size_t PagedKvCache::block_bytes(const KvLayout& layout, int64_t block_size, DType dtype) {
  return 2 * static_cast<size_t>(layout.num_layers) * static_cast<size_t>(block_size * layout.num_kv_heads *
                                                                          layout.head_dim) * dtype_size(dtype);
}

int64_t PagedKvCache::blocks_for_bytes(const KvLayout& layout, int64_t block_size, DType dtype, size_t bytes) {
  return static_cast<int64_t>(bytes / block_bytes(layout, block_size, dtype));
}

PagedKvCache::PagedKvCache(const KvLayout& layout, const PagedKvCacheConfig& config, DType dtype, Device device)
    : KvCache(layout, config.num_blocks, config.block_size, dtype, device),
      max_sequence_len_(config.max_sequence_len),
      ref_counts_(static_cast<size_t>(config.num_blocks), 0),
      filled_(static_cast<size_t>(config.num_blocks), 0) {
  PLM_CHECK_GT(config.max_sequence_len, 0) << "paged KV cache: max_sequence_len";
  // Block 0 on top of the stack: a fresh pool hands blocks out in order.
  for (int64_t b = config.num_blocks; b-- > 0;) free_blocks_.push_back(static_cast<int32_t>(b));
}

absl::Status PagedKvCache::check(const TokenBatch& batch) const {
  absl::flat_hash_set<SequenceId> seen;
  int64_t new_blocks = 0;
  for (const SequenceChunk& c : batch.chunks) {
    const auto it = sequences_.find(c.sequence);
    if (it == sequences_.end()) {
      return absl::NotFoundError(absl::StrCat("no sequence ", c.sequence, " in the KV cache"));
    }
    if (!seen.insert(c.sequence).second) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", c.sequence, " has two chunks in one batch"));
    }
    if (c.length < 1 || c.start != it->second.length) {
      return absl::InvalidArgumentError(absl::StrCat("chunk of sequence ", c.sequence, " starts at ", c.start, " with ",
                                                     c.length, " tokens; the sequence has ", it->second.length,
                                                     " tokens cached"));
    }
    if (c.start + c.length > max_len()) {
      return absl::ResourceExhaustedError(absl::StrCat("sequence ", c.sequence, " of ", c.start + c.length,
                                                       " tokens exceeds the KV cache length ", max_len()));
    }
    new_blocks += blocks_needed(c.sequence, c.length);
  }
  if (new_blocks > num_free_blocks()) {
    return absl::ResourceExhaustedError(absl::StrCat("the batch needs ", new_blocks, " new KV blocks; ",
                                                     num_free_blocks(), " of ", num_blocks(), " are free"));
  }
  return absl::OkStatus();
}

void PagedKvCache::check_block(int32_t block) const {
  PLM_CHECK(block >= 0 && block < num_blocks()) << "KV block " << block << " outside the " << num_blocks() << " blocks";
}

int PagedKvCache::ref_count(int32_t block) const {
  check_block(block);
  return ref_counts_[block];
}

bool PagedKvCache::is_full(int32_t block) const {
  check_block(block);
  return filled_[block] == block_size();
}

void PagedKvCache::retain_block(int32_t block) {
  PLM_CHECK_GT(ref_count(block), 0) << "retain of free KV block " << block;
  ++ref_counts_[block];
}

void PagedKvCache::release_block(int32_t block) {
  PLM_CHECK_GT(ref_count(block), 0) << "release of free KV block " << block;
  if (--ref_counts_[block] == 0) {
    filled_[block] = 0;
    free_blocks_.push_back(block);
  }
}

int32_t PagedKvCache::allocate_block() {
  PLM_CHECK(!free_blocks_.empty()) << "no free KV block (check() first)";
  const int32_t block = free_blocks_.back();
  free_blocks_.pop_back();
  ref_counts_[block] = 1;
  return block;
}

absl::Status PagedKvCache::add_sequence(SequenceId id, std::span<const int32_t> prefix_blocks) {
  if (contains(id)) return absl::AlreadyExistsError(absl::StrCat("sequence ", id, " is already in the KV cache"));
  const int64_t length = static_cast<int64_t>(prefix_blocks.size()) * block_size();
  if (length > max_len()) {
    return absl::ResourceExhaustedError(absl::StrCat("a prefix of ", length, " tokens exceeds the KV cache length ",
                                                     max_len()));
  }
  for (const int32_t block : prefix_blocks) {
    if (block < 0 || block >= num_blocks() || ref_counts_[block] == 0 || filled_[block] != block_size()) {
      return absl::InvalidArgumentError(absl::StrCat("prefix block ", block, " of sequence ", id,
                                                     " is not a full block in use"));
    }
  }
  for (const int32_t block : prefix_blocks) ++ref_counts_[block];
  sequences_.emplace(id, Sequence{.blocks = {prefix_blocks.begin(), prefix_blocks.end()}, .length = length});
  return absl::OkStatus();
}

const PagedKvCache::Sequence& PagedKvCache::sequence(SequenceId id) const {
  const auto it = sequences_.find(id);
  PLM_CHECK(it != sequences_.end()) << "no sequence " << id << " in the KV cache";
  return it->second;
}

int64_t PagedKvCache::length(SequenceId id) const { return sequence(id).length; }

std::span<const int32_t> PagedKvCache::block_table(SequenceId id) const { return sequence(id).blocks; }

int64_t PagedKvCache::blocks_needed(SequenceId id, int64_t new_tokens) const {
  const Sequence& s = sequence(id);
  return blocks_for_tokens(s.length + new_tokens, block_size()) - static_cast<int64_t>(s.blocks.size());
}

int64_t PagedKvCache::blocks_needed(const TokenBatch& batch) const {
  int64_t total = 0;
  for (const SequenceChunk& c : batch.chunks) total += blocks_needed(c.sequence, c.length);
  return total;
}

absl::Status PagedKvCache::fork(SequenceId parent, SequenceId child, Stream s) {
  if (!contains(parent)) return absl::NotFoundError(absl::StrCat("no sequence ", parent, " in the KV cache"));
  if (contains(child)) return absl::AlreadyExistsError(absl::StrCat("sequence ", child, " is already in the KV cache"));
  const Sequence& from = sequence(parent);
  const int64_t full = from.length / block_size();
  const bool partial = from.length % block_size() != 0;
  if (partial && free_blocks_.empty()) {
    return absl::ResourceExhaustedError(absl::StrCat("forking sequence ", parent, " needs a free KV block"));
  }
  Sequence copy{.blocks = {from.blocks.begin(), from.blocks.begin() + full}, .length = from.length};
  for (const int32_t block : copy.blocks) ++ref_counts_[block];
  if (partial) {
    const int32_t source = from.blocks[full], block = allocate_block();
    for (int l = 0; l < layout().num_layers; ++l) {
      copy_tensor(keys(l).select(0, block), keys(l).select(0, source), s);
      copy_tensor(values(l).select(0, block), values(l).select(0, source), s);
    }
    filled_[block] = filled_[source];
    copy.blocks.push_back(block);
  }
  sequences_.emplace(child, std::move(copy));
  return absl::OkStatus();
}

void PagedKvCache::free_sequence(SequenceId id) {
  const auto it = sequences_.find(id);
  PLM_CHECK(it != sequences_.end()) << "free of unknown sequence " << id;
  for (const int32_t block : it->second.blocks) release_block(block);
  sequences_.erase(it);
}

std::vector<std::vector<int32_t>> PagedKvCache::tables_for(const TokenBatch& batch) const {
  std::vector<std::vector<int32_t>> tables;
  size_t free = free_blocks_.size();  // allocate_block() pops from the back
  for (const SequenceChunk& c : batch.chunks) {
    std::vector<int32_t>& table = tables.emplace_back(sequence(c.sequence).blocks);
    while (static_cast<int64_t>(table.size()) < blocks_for_tokens(c.start + c.length, block_size())) {
      PLM_CHECK_GT(free, 0u) << "the batch does not fit the free pool (check() first)";
      table.push_back(free_blocks_[--free]);
    }
  }
  return tables;
}

std::span<const int32_t> PagedKvCache::reserve(const SequenceChunk& chunk) {
  const auto it = sequences_.find(chunk.sequence);
  PLM_CHECK(it != sequences_.end()) << "no sequence " << chunk.sequence << " in the KV cache (check() first)";
  Sequence& s = it->second;
  PLM_CHECK_EQ(chunk.start, s.length) << "sequence " << chunk.sequence;
  const int64_t end = s.length + chunk.length;
  while (static_cast<int64_t>(s.blocks.size()) < blocks_for_tokens(end, block_size())) {
    s.blocks.push_back(allocate_block());
  }
  for (int64_t b = s.length / block_size(); b < blocks_for_tokens(end, block_size()); ++b) {
    filled_[s.blocks[b]] = std::min(block_size(), end - b * block_size());
  }
  s.length = end;
  return s.blocks;
}

}  // namespace plm::model
