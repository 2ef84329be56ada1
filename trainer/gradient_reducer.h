// GradientReducer: sums a flat gradient buffer over the data-parallel group in fixed-size buckets, on a
// background thread, while the backward is still producing the rest (ZeRO-0/1: all-reduce in place; ZeRO-2:
// reduce-scatter, each rank keeping the sum over its optimizer shard's range). Buckets are counted from the
// end of the buffer because the backward finishes parameters in the reverse of their flat order (LM head and
// final norm, last layer ... first layer, embedding, projector, vision tower): the caller reports progress with
// mark_final_from(offset), and each bucket is reduced once everything in it is final. Every rank reduces the same
// buckets in the same order, whenever it gets there, so the collectives match.
// Threading: the communicator is used only by the worker thread between construction and finish(); the caller
// must not use it meanwhile. Host (CPU) buffers overlap; for device buffers pass background = false and the
// buckets are reduced in finish() on the caller's thread (the GPU path overlaps with streams instead).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "distributed/communicator.h"
#include "trainer/adamw_zero.h"

namespace plm::trainer {

class GradientReducer {
 public:
  // grads: the flat gradient buffer; shards: every rank's optimizer range (ZeRO-2 keeps rank r's sum in
  // grads[shards[r]]; ignored for ZeRO-0/1). bucket_elements >= 1.
  GradientReducer(distributed::Communicator& dp, Tensor grads, std::vector<Range> shards, int zero_stage,
                  int64_t bucket_elements, bool background);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // The backward writes nothing at offsets >= `offset` any more (offsets only decrease).
  void mark_final_from(int64_t offset);
  // Reduces every bucket not reduced yet and waits for all of them.
  void finish(Stream s = {});

  int64_t num_buckets() const { return static_cast<int64_t>(buckets_.size()); }

 private:
  void run_worker();
  void reduce(const Range& bucket, Stream s);

  distributed::Communicator& dp_;
  Tensor grads_;
  std::vector<Range> shards_;
  int zero_stage_;
  std::vector<Range> buckets_;  // in reduction order: from the end of the buffer
  std::mutex mutex_;
  std::condition_variable ready_;
  int64_t final_from_;     // guarded by mutex_
  bool finishing_ = false;  // guarded by mutex_
  size_t next_bucket_ = 0;  // the worker's, or finish()'s when not background
  std::thread worker_;
};

}  // namespace plm::trainer
