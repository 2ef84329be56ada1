// The scheduler without a model: each test drives steps against a table of expected plans. A plan is written as
// its chunks in packing order, "id[start+length]" with "*" when the chunk samples, and "!id" for a preemption.
// A paged-like fake KV space (a token pool that refuses growth when full, with cached prefixes the test sets)
// exercises aging, preemption by recompute and admission after a cached prefix, which the dense space never needs.
#include "serve/scheduler.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace plm::serve {
namespace {

// num_slots slots drawing from one pool of capacity_tokens tokens, grown on demand.
class TokenPoolKv final : public KvSpace {
 public:
  TokenPoolKv(int num_slots, int64_t capacity_tokens) : lengths_(num_slots, -1), capacity_(capacity_tokens) {}
  // Tokens a sequence finds cached: what the test set for its id.
  int64_t cached_prefix(Sequence& seq) override {
    const auto it = cached_.find(seq.id);
    return it == cached_.end() ? 0 : it->second;
  }
  std::optional<int> admit(const Sequence&, int64_t, int64_t length) override {
    for (int s = 0; s < static_cast<int>(lengths_.size()); ++s) {
      if (lengths_[s] < 0) {
        lengths_[s] = 0;
        if (grow(s, length)) return s;
        lengths_[s] = -1;
        return std::nullopt;
      }
    }
    return std::nullopt;
  }
  void computed(int, Sequence&) override {}
  bool grow(int slot, int64_t length) override {
    const int64_t extra = std::max<int64_t>(0, length - lengths_[slot]);
    if (used_ + extra > capacity_) return false;
    used_ += extra;
    lengths_[slot] += extra;
    return true;
  }
  void release(int slot) override {
    used_ -= lengths_[slot];
    lengths_[slot] = -1;
  }
  KvUsage usage() const override {
    KvUsage u;
    u.capacity_tokens = capacity_;
    u.reserved_tokens = u.filled_tokens = used_;
    return u;
  }
  int64_t max_sequence_tokens() const override { return capacity_; }
  // The scheduler never touches the cache: a cache of no layers.
  model::KvCache& cache() override { return cache_; }
  void set_cached_prefix(const std::string& id, int64_t tokens) { cached_[id] = tokens; }

 private:
  std::map<std::string, int64_t> cached_;
  std::vector<int64_t> lengths_;
  int64_t capacity_, used_ = 0;
  model::DenseKvCache cache_{model::KvLayout{}, 1, 1, DType::kF32, Device::cpu()};
};

class SchedulerTest : public ::testing::Test {
 protected:
  void make(const SchedulerConfig& config, int slots, int64_t capacity) {
    kv_ = std::make_unique<TokenPoolKv>(slots, capacity);
    scheduler_ = std::make_unique<Scheduler>(config, *kv_, [this](const MediaKey& k) { return cached_.contains(k.hex()); });
  }

  // A text prompt of `prompt` tokens that will stop after `replies` generated tokens.
  Sequence& add(const std::string& id, int64_t prompt, int64_t replies) {
    auto seq = std::make_unique<Sequence>();
    seq->id = id;
    seq->arrival_order = next_arrival_++;
    seq->tokens.assign(prompt, 7);
    seq->num_prompt_tokens = prompt;
    seq->max_total_tokens = prompt + replies;
    replies_[id] = replies;
    Sequence& ref = *seq;
    sequences_[id] = std::move(seq);
    scheduler_->add(&ref);
    return ref;
  }

  // Gives seq `items` image items of `per_item` placeholders starting at prompt position `at`, keys "k0", "k1"...
  static void add_image_items(Sequence& seq, int64_t at, int items, int64_t per_item) {
    SequenceMedia& m = seq.media_of(MediaKind::kImage);
    m.tokens_per_item = per_item;
    for (int i = 0; i < items; ++i) {
      MediaKey key;
      key.digest[0] = static_cast<uint8_t>(i + 1);
      m.items.keys.push_back(key);
      for (int64_t t = 0; t < per_item; ++t) m.positions.push_back(at + i * per_item + t);
    }
  }

  // Plans one step, applies it as the engine would (sampling appends a token; a sequence with all its replies
  // leaves), and returns the plan's description.
  std::string step() {
    const StepPlan plan = scheduler_->schedule();
    std::vector<std::string> parts;
    for (const Sequence* s : plan.preempted) parts.push_back("!" + s->id);
    for (const ScheduledChunk& c : plan.chunks) {
      parts.push_back(absl::StrCat(c.seq->id, "[", c.start, "+", c.length, "]", c.samples ? "*" : ""));
    }
    scheduler_->complete(plan);
    for (const ScheduledChunk& c : plan.chunks) {
      if (!c.samples) continue;
      c.seq->tokens.push_back(9);
      if (c.seq->num_generated() >= replies_[c.seq->id]) scheduler_->remove(c.seq);
    }
    return absl::StrJoin(parts, " ");
  }

  void expect_steps(const std::vector<std::string>& expected) {
    for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(step(), expected[i]) << "step " << i;
  }

  std::unique_ptr<TokenPoolKv> kv_;
  std::unique_ptr<Scheduler> scheduler_;
  std::set<std::string> cached_;
  std::map<std::string, std::unique_ptr<Sequence>> sequences_;
  std::map<std::string, int64_t> replies_;
  uint64_t next_arrival_ = 0;
};

TEST_F(SchedulerTest, DecodesFirstThenChunkedPrefillOfWhatIsLeft) {
  make({.max_num_seqs = 4, .max_batch_tokens = 8, .max_media_items_per_step = 4, .max_bypass = 4}, 4, 1000);
  add("a", 3, 3);
  add("b", 4, 2);
  add("c", 12, 1);
  expect_steps({
      "a[0+3]* b[0+4]* c[0+1]",  // admission order, each prefill as long as the budget allows
      "a[3+1]* b[4+1]* c[1+6]",  // decodes first, then c's prefill continues with the 6 tokens left
      "a[4+1]* c[7+5]*",         // b is done; c's last chunk samples
      "",                        // a and c are done
  });
  EXPECT_FALSE(scheduler_->has_work());
}

TEST_F(SchedulerTest, MaxNumSeqsHoldsBackAdmissionUntilASequenceLeaves) {
  make({.max_num_seqs = 2, .max_batch_tokens = 16, .max_media_items_per_step = 4, .max_bypass = 4}, 4, 1000);
  add("a", 2, 1);
  add("b", 2, 2);
  add("c", 2, 1);
  expect_steps({"a[0+2]* b[0+2]*", "b[2+1]* c[0+2]*"});
  EXPECT_FALSE(scheduler_->has_work());
}

TEST_F(SchedulerTest, VisionBudgetStopsAChunkBeforeTheFirstItemItCannotAfford) {
  make({.max_num_seqs = 4, .max_batch_tokens = 64, .max_media_items_per_step = 1, .max_bypass = 4}, 4, 1000);
  // Prompt: 2 text tokens, 3 items of 4 placeholders (positions 2..13), 2 text tokens.
  Sequence& a = add("a", 16, 1);
  add_image_items(a, 2, 3, 4);
  expect_steps({
      "a[0+6]",   // item 0 encoded; the chunk ends before item 1's placeholders
      "a[6+4]",   // item 1
      "a[10+6]*",  // item 2 and the tail
  });
}

TEST_F(SchedulerTest, CachedItemsCostNoVisionBudgetAndDuplicatesCountOnce) {
  make({.max_num_seqs = 4, .max_batch_tokens = 64, .max_media_items_per_step = 1, .max_bypass = 4}, 4, 1000);
  Sequence& a = add("a", 16, 1);
  add_image_items(a, 2, 3, 4);
  cached_.insert(a.media_of(MediaKind::kImage).items.keys[0].hex());
  // b's item 0 has the key of a's item 1: encoded once for both in the same step.
  Sequence& b = add("b", 6, 1);
  add_image_items(b, 1, 1, 4);
  b.media_of(MediaKind::kImage).items.keys[0] = a.media_of(MediaKind::kImage).items.keys[1];
  expect_steps({"a[0+10] b[0+6]*", "a[10+6]*"});
}

TEST_F(SchedulerTest, AgedRequestBlocksThoseBehindIt) {
  // 10 tokens of KV: "big" (8 + 2) cannot start while "x" holds room; small ones overtake it twice, then it has
  // aged and nobody else gets in until it does.
  make({.max_num_seqs = 8, .max_batch_tokens = 16, .max_media_items_per_step = 4, .max_bypass = 2}, 8, 10);
  add("x", 3, 2);
  add("big", 8, 1);
  add("s1", 1, 1);
  add("s2", 1, 1);
  add("s3", 1, 1);
  expect_steps({
      "x[0+3]* s1[0+1]* s2[0+1]*",  // big does not fit (3 + 8 > 10); s1, s2 overtake it: aged
      "x[3+1]*",                     // s3 fits but may not pass big
      "big[0+8]* s3[0+1]*",          // x left: big gets in first, s3 behind it
  });
  EXPECT_FALSE(scheduler_->has_work());
}

TEST_F(SchedulerTest, PreemptsTheNewestSequenceAndItRecomputesItsTokensLater) {
  // 8 tokens of KV for two sequences of 3-token prompts that each want 3 replies: the pool runs out while both
  // decode, the newer one ("b") gives its room back and later recomputes prompt + its first reply (4 tokens).
  make({.max_num_seqs = 4, .max_batch_tokens = 16, .max_media_items_per_step = 4, .max_bypass = 4}, 4, 8);
  add("a", 3, 3);
  add("b", 3, 3);
  expect_steps({
      "a[0+3]* b[0+3]*",  // 6 of 8
      "a[3+1]* b[3+1]*",  // 8 of 8
      "!b a[4+1]*",       // a needs a 9th: b is preempted; a is done
      "b[0+5]*",          // b recomputes 3 prompt + 2 generated tokens and samples its third
  });
  EXPECT_EQ(scheduler_->num_preemptions(), 1);
  EXPECT_FALSE(scheduler_->has_work());
}

TEST_F(SchedulerTest, AdmissionStartsAfterTheCachedPrefixAndItsMediaCostNothing) {
  make({.max_num_seqs = 4, .max_batch_tokens = 64, .max_media_items_per_step = 1, .max_bypass = 4}, 4, 40);
  // Prompt: 2 text tokens, 3 items of 4 placeholders (positions 2..13), 2 text tokens; 8 tokens cached: item 0
  // is inside the prefix, item 1 straddles it.
  Sequence& a = add("a", 16, 1);
  add_image_items(a, 2, 3, 4);
  kv_->set_cached_prefix("a", 8);
  Sequence& b = add("b", 34, 1);
  kv_->set_cached_prefix("b", 4);
  EXPECT_EQ(step(), "a[8+2]");  // item 1's last placeholders take the vision budget; item 2 must wait
  // b found 4 tokens cached but no room (10 + 4 + 30 > 40): it waits, from nothing computed.
  EXPECT_EQ(b.num_computed, 0);
  EXPECT_EQ(b.slot, -1);
  expect_steps({
      "a[10+6]*",  // item 2 and the tail; a is done
      "b[4+30]*",  // b starts after its cached tokens
  });
  EXPECT_EQ(a.num_cached_prompt_tokens, 8);
  EXPECT_EQ(b.num_cached_prompt_tokens, 4);
  EXPECT_FALSE(scheduler_->has_work());
}

TEST(SchedulerConfig, ValidationNamesTheNumbers) {
  const absl::Status s = validate({.max_num_seqs = 64, .max_batch_tokens = 32, .max_media_items_per_step = 4, .max_bypass = 1});
  EXPECT_EQ(s.message(), "max_batch_tokens (32) < max_num_seqs (64): every running sequence decodes a token per step");
  EXPECT_FALSE(validate({.max_num_seqs = 4, .max_batch_tokens = 32, .max_media_items_per_step = 0, .max_bypass = 1}).ok());
}

}  // namespace
}  // namespace plm::serve
