// Step mirroring: how the ranks of one model split by tensor parallelism run a single engine. Rank 0 of the
// model's ranks (the leader) runs the Engine; every model call is collective, so before each call its
// ModelRunner publishes what the other ranks (followers) need to make the same call: first the KV cache's
// geometry, then per step the tiles / frames the vision tower encodes (their pixels), then the step's batch
// (ids, chunk bounds, the logits each chunk asks for, the media rows of its placeholders, and each sequence's
// block table from KvCache::tables_for). Followers keep no engine state: follow_steps() runs the calls on a
// MirroredKvCache until the leader's stop. Followers do not cache embeddings: the leader sends the step's
// media rows (cached or just encoded), so the encoder cache lives on the leader alone.
// Host data goes over `control` (MPI); media rows, which live on the model's device, over `data` (NCCL on a
// GPU, the same MPI group on the CPU). Both are groups of the model's ranks with the leader as rank 0.
#pragma once

#include <array>

#include "absl/status/status.h"
#include "core/tensor.h"
#include "distributed/communicator.h"
#include "model/plm_model.h"
#include "model/step.h"
#include "model/text/kv_cache.h"

namespace plm::serve {

struct MirrorChannel {
  distributed::Communicator* control = nullptr;  // host tensors
  distributed::Communicator* data = nullptr;     // tensors on the model's device
};

// The leader's end. Engine thread only (after start, before stop).
class StepPublisher {
 public:
  explicit StepPublisher(MirrorChannel channel);

  // Once, before the first step.
  void publish_cache(const model::KvCache& cache);
  // pixels[kind]: f32 (n, 3, h, w) host tiles / frames the vision tower is about to encode, undefined for none.
  void publish_encode(const std::array<Tensor, 2>& pixels);
  // The batch the model is about to step, with its chunks' block tables (the cache's tables_for).
  void publish_step(const model::StepBatch& batch, const std::vector<std::vector<int32_t>>& tables);
  // The followers return from follow_steps(). Last call; also when the leader failed before publish_cache.
  void publish_stop();

 private:
  MirrorChannel channel_;
  OwnedTensor rows_[2];  // the step's media rows per kind, gathered for the broadcast; reused
};

// A follower's loop: OK when the leader stops; an error only when the leader stopped before publishing its
// cache (it failed to start). Errors of single steps are returned to the leader too (the model agrees on them)
// and do not end the loop.
absl::Status follow_steps(const model::PlmModel& model, MirrorChannel channel);

}  // namespace plm::serve
