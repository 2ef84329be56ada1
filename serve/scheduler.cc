#include "serve/scheduler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/check.h"

namespace plm::serve {

absl::Status validate(const SchedulerConfig& c) {
  if (c.max_num_seqs < 1) return absl::InvalidArgumentError(absl::StrCat("max_num_seqs is ", c.max_num_seqs, "; it must be >= 1"));
  if (c.max_batch_tokens < c.max_num_seqs) {
    return absl::InvalidArgumentError(absl::StrCat("max_batch_tokens (", c.max_batch_tokens, ") < max_num_seqs (",
                                                   c.max_num_seqs, "): every running sequence decodes a token per step"));
  }
  if (c.max_media_items_per_step < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_media_items_per_step is ", c.max_media_items_per_step, "; it must be >= 1"));
  }
  if (c.max_bypass < 0) return absl::InvalidArgumentError(absl::StrCat("max_bypass is ", c.max_bypass, "; it must be >= 0"));
  return absl::OkStatus();
}

int64_t StepPlan::num_tokens() const {
  int64_t n = 0;
  for (const ScheduledChunk& c : chunks) n += c.length;
  return n;
}

Scheduler::Scheduler(const SchedulerConfig& config, KvSpace& kv, std::function<bool(const MediaKey&)> is_cached)
    : config_(config), kv_(kv), is_cached_(std::move(is_cached)) {
  PLM_CHECK(validate(config).ok()) << validate(config).message();
}

void Scheduler::add(Sequence* seq) {
  PLM_CHECK_EQ(seq->slot, -1);
  insert_waiting(seq);
}

void Scheduler::insert_waiting(Sequence* seq) {
  const auto at = std::upper_bound(waiting_.begin(), waiting_.end(), seq, [](const Sequence* a, const Sequence* b) {
    return a->arrival_order < b->arrival_order;
  });
  waiting_.insert(at, seq);
}

void Scheduler::remove(Sequence* seq) {
  if (seq->slot >= 0) {
    kv_.release(seq->slot);
    seq->slot = -1;
    std::erase(running_, seq);
  } else {
    std::erase(waiting_, seq);
  }
}

int64_t Scheduler::chunk_length(const Sequence& seq, int64_t* tokens, int* media) {
  const int64_t start = seq.num_computed;
  int64_t end = std::min(seq.num_tokens(), start + *tokens);
  // The items this chunk would make the vision tower encode, in prompt order.
  struct Need {
    int64_t position;
    const MediaKey* key;
  };
  std::vector<Need> needs;
  for (MediaKind kind : kMediaKinds) {
    const SequenceMedia& m = seq.media_of(kind);
    if (m.items.has_embeddings()) continue;  // encoded on an encoder rank: no vision budget here
    const auto [first, last] = m.items_in(start, end);
    for (int64_t item = first; item < last; ++item) {
      const MediaKey& key = m.items.keys[item];
      if (item == m.pinned_item || is_cached_(key)) continue;
      needs.push_back({std::max(start, m.first_position(item)), &key});
    }
  }
  std::sort(needs.begin(), needs.end(), [](const Need& a, const Need& b) { return a.position < b.position; });
  for (const Need& need : needs) {
    if (std::find(step_keys_.begin(), step_keys_.end(), *need.key) != step_keys_.end()) continue;
    if (*media == 0) {
      end = need.position;
      break;
    }
    --*media;
    step_keys_.push_back(*need.key);
  }
  *tokens -= end - start;
  return end - start;
}

bool Scheduler::make_room(Sequence* seq, int64_t length, StepPlan& plan) {
  const auto in_plan = [&](const Sequence* s) {
    return std::any_of(plan.chunks.begin(), plan.chunks.end(), [&](const ScheduledChunk& c) { return c.seq == s; });
  };
  while (!kv_.grow(seq->slot, length)) {
    // The newest running sequence after seq that is not in the step yet, else seq itself. Victims come after
    // seq in running_, so the callers' index of seq stays valid.
    Sequence* victim = seq;
    for (auto it = running_.rbegin(); *it != seq; ++it) {
      if (!in_plan(*it)) {
        victim = *it;
        break;
      }
    }
    preempt(victim, plan);
    if (victim == seq) return false;
  }
  return true;
}

void Scheduler::preempt(Sequence* victim, StepPlan& plan) {
  kv_.release(victim->slot);
  victim->slot = -1;
  victim->num_computed = 0;
  for (SequenceMedia& m : victim->media) {
    m.pinned_item = -1;
    m.pinned.reset();
  }
  std::erase(running_, victim);
  insert_waiting(victim);
  plan.preempted.push_back(victim);
  ++num_preemptions_;
}

StepPlan Scheduler::schedule() {
  StepPlan plan;
  step_keys_.clear();
  int64_t tokens = config_.max_batch_tokens;
  int media = config_.max_media_items_per_step;

  // 1. Decodes. make_room only takes victims after index i (or seq itself, which ends the loop).
  for (size_t i = 0; i < running_.size() && tokens > 0; ++i) {
    Sequence* seq = running_[i];
    if (!seq->is_decoding()) continue;
    if (!make_room(seq, seq->num_computed + 1, plan)) break;
    plan.chunks.push_back({.seq = seq, .start = seq->num_computed, .length = 1, .samples = true});
    --tokens;
  }
  // 2. Running sequences still prefilling, oldest first.
  for (size_t i = 0; i < running_.size() && tokens > 0; ++i) {
    Sequence* seq = running_[i];
    if (seq->is_decoding()) continue;
    int64_t t = tokens;
    int m = media;
    const size_t keys_before = step_keys_.size();
    const int64_t length = chunk_length(*seq, &t, &m);
    if (length == 0) continue;
    if (!make_room(seq, seq->num_computed + length, plan)) {
      step_keys_.resize(keys_before);
      break;
    }
    tokens = t;
    media = m;
    plan.chunks.push_back({.seq = seq,
                           .start = seq->num_computed,
                           .length = length,
                           .samples = seq->num_computed + length == seq->num_tokens()});
  }
  // 3. Admission, oldest first; sequences that do not fit now may be overtaken until they have aged.
  std::vector<Sequence*> overtaken;
  for (auto it = waiting_.begin();
       it != waiting_.end() && tokens > 0 && static_cast<int>(running_.size()) < config_.max_num_seqs;) {
    Sequence* seq = *it;
    int64_t t = tokens;
    int m = media;
    const size_t keys_before = step_keys_.size();
    // Tokens in the prefix cache are not computed again; media wholly inside them cost no vision budget.
    seq->num_computed = kv_.cached_prefix(*seq);
    const int64_t length = chunk_length(*seq, &t, &m);
    const std::optional<int> slot =
        length > 0 ? kv_.admit(*seq, seq->num_computed, seq->num_computed + length) : std::nullopt;
    if (!slot) {
      seq->num_computed = 0;
      step_keys_.resize(keys_before);
      if (seq->num_bypassed >= config_.max_bypass) break;  // aged: nobody may pass it
      overtaken.push_back(seq);
      ++it;
      continue;
    }
    tokens = t;
    media = m;
    seq->slot = *slot;
    running_.push_back(seq);
    it = waiting_.erase(it);
    if (seq->num_generated() == 0) seq->num_cached_prompt_tokens = seq->num_computed;
    plan.chunks.push_back({.seq = seq,
                           .start = seq->num_computed,
                           .length = length,
                           .samples = seq->num_computed + length == seq->num_tokens()});
    bool aged = false;
    for (Sequence* o : overtaken) aged |= ++o->num_bypassed >= config_.max_bypass;
    if (aged) break;  // an overtaken sequence has aged: nobody else passes it this step
  }
  plan.num_media_to_encode = static_cast<int>(step_keys_.size());
  return plan;
}

void Scheduler::complete(const StepPlan& plan) {
  for (const ScheduledChunk& c : plan.chunks) {
    PLM_CHECK_EQ(c.start, c.seq->num_computed) << c.seq->id;
    c.seq->num_computed += c.length;
    kv_.computed(c.seq->slot, *c.seq);
  }
}

}  // namespace plm::serve
