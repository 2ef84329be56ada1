// Scheduler: decides what one engine step runs; it never runs the model (the engine passes the plan to the
// model runner and reports back with complete()). Policy, in order:
//   1. decode first: every running sequence that has one token left to compute gets it;
//   2. running sequences still prefilling continue, oldest first, in chunks that fill the step's token budget;
//   3. waiting sequences are admitted oldest first while there is a free sequence place, KV room and budget;
//      a sequence starts after the tokens the KV space's prefix cache holds for it.
// Each step also has a vision budget: at most max_media_items_per_step tiles / frames that are neither in the
// encoder cache nor pinned by their sequence; a chunk stops before the first item it cannot afford (so one long
// video does not stall every decoding stream). Fairness is FCFS with aging: a waiting sequence may be overtaken
// by later ones that fit when it does not, but once overtaken max_bypass times it blocks admission behind it
// until it gets in. When KvSpace::grow refuses room, the most recently admitted running sequence is preempted:
// it gives its room back and waits again, to recompute its cache from scratch (its tokens are kept).
// Not thread-safe (engine thread only).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "serve/kv_space.h"
#include "serve/sequence.h"

namespace plm::serve {

struct SchedulerConfig {
  int max_num_seqs = 64;               // sequences holding KV room at once
  int64_t max_batch_tokens = 2048;     // tokens per step: one per decoding sequence, plus prefill chunks
  int max_media_items_per_step = 16;   // tiles / frames the vision tower may encode per step
  int max_bypass = 16;                 // aging: overtaken this often, a waiting sequence blocks those behind it
};

// The arithmetic of a bad configuration in the message.
absl::Status validate(const SchedulerConfig& config);

struct ScheduledChunk {
  Sequence* seq = nullptr;
  int64_t start = 0;     // = seq->num_computed
  int64_t length = 0;    // tokens seq->tokens[start, start + length)
  bool samples = false;  // the chunk ends at the newest token: its logits give the next token
};

struct StepPlan {
  std::vector<ScheduledChunk> chunks;  // the forward's packing order: decodes, then prefill chunks
  std::vector<Sequence*> preempted;    // lost their KV room this step; waiting again
  int num_media_to_encode = 0;         // distinct uncached tiles / frames the chunks need
  int64_t num_tokens() const;
};

class Scheduler {
 public:
  // is_cached(key): whether the encoder cache holds the item (it costs no vision budget).
  Scheduler(const SchedulerConfig& config, KvSpace& kv, std::function<bool(const MediaKey&)> is_cached);
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // A new sequence waits (after every sequence that arrived before it).
  void add(Sequence* seq);
  // A finished or cancelled sequence leaves; its KV room is released.
  void remove(Sequence* seq);
  StepPlan schedule();
  // The plan ran: its chunks are in the cache now.
  void complete(const StepPlan& plan);

  int num_waiting() const { return static_cast<int>(waiting_.size()); }
  int num_running() const { return static_cast<int>(running_.size()); }
  bool has_work() const { return !waiting_.empty() || !running_.empty(); }
  int64_t num_preemptions() const { return num_preemptions_; }

 private:
  // The longest chunk of `seq` from num_computed that fits `*tokens` and `*media` (both reduced by it).
  int64_t chunk_length(const Sequence& seq, int64_t* tokens, int* media);
  // Room for `seq` to hold `length` tokens, preempting the newest running sequences as needed; false when
  // `seq` itself was preempted.
  bool make_room(Sequence* seq, int64_t length, StepPlan& plan);
  void preempt(Sequence* victim, StepPlan& plan);
  void insert_waiting(Sequence* seq);

  SchedulerConfig config_;
  KvSpace& kv_;
  std::function<bool(const MediaKey&)> is_cached_;
  std::deque<Sequence*> waiting_;   // arrival order
  std::vector<Sequence*> running_;  // admission order
  std::vector<MediaKey> step_keys_;  // uncached items already counted in this step's vision budget
  int64_t num_preemptions_ = 0;
};

}  // namespace plm::serve
