#include "trainer/gradient_reducer.h"

#include <algorithm>

#include "core/check.h"
#include "core/kernels/ops.h"

namespace plm::trainer {

GradientReducer::GradientReducer(distributed::Communicator& dp, Tensor grads, std::vector<Range> shards,
                                 int zero_stage, int64_t bucket_elements, bool background)
    : dp_(dp), grads_(grads), shards_(std::move(shards)), zero_stage_(zero_stage), final_from_(grads.numel()) {
  PLM_CHECK_GT(bucket_elements, 0);
  PLM_CHECK(zero_stage < 2 || static_cast<int>(shards_.size()) == dp.size()) << "one shard per DP rank";
  for (int64_t end = grads.numel(); end > 0; end -= bucket_elements) {
    buckets_.push_back({std::max<int64_t>(0, end - bucket_elements), end});
  }
  if (background && dp.size() > 1) worker_ = std::thread([this] { run_worker(); });
}

GradientReducer::~GradientReducer() {
  if (worker_.joinable()) finish();
}

void GradientReducer::mark_final_from(int64_t offset) {
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    final_from_ = std::min(final_from_, offset);
  }
  ready_.notify_one();
}

void GradientReducer::reduce(const Range& bucket, Stream s) {
  const Tensor in = grads_.slice(0, bucket.begin, bucket.end);
  if (zero_stage_ < 2) {
    dp_.all_reduce(in, distributed::ReduceOp::kSum, s);
    return;
  }
  // Rank r receives the sum of the part of this bucket that lies in its shard (often nothing).
  std::vector<int64_t> counts;
  for (const Range& shard : shards_) {
    counts.push_back(std::max<int64_t>(0, std::min(bucket.end, shard.end) - std::max(bucket.begin, shard.begin)));
  }
  const Range& mine = shards_[static_cast<size_t>(dp_.rank())];
  const int64_t from = std::max(bucket.begin, mine.begin);
  OwnedTensor reduced({counts[static_cast<size_t>(dp_.rank())]}, grads_.dtype(), grads_.device());
  dp_.reduce_scatter(reduced.view(), in, counts, distributed::ReduceOp::kSum, s);
  if (reduced.numel() > 0) copy_tensor(grads_.slice(0, from, from + reduced.numel()), reduced.view(), s);
}

void GradientReducer::run_worker() {
  for (; next_bucket_ < buckets_.size(); ++next_bucket_) {
    const Range bucket = buckets_[next_bucket_];
    {
      std::unique_lock<std::mutex> lock(mutex_);
      ready_.wait(lock, [&] { return finishing_ || final_from_ <= bucket.begin; });
    }
    reduce(bucket, {});
  }
}

void GradientReducer::finish(Stream s) {
  if (worker_.joinable()) {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      finishing_ = true;
    }
    ready_.notify_one();
    worker_.join();
    return;
  }
  if (dp_.size() == 1) {
    next_bucket_ = buckets_.size();  // a group of one: the gradient is already the sum
    return;
  }
  for (; next_bucket_ < buckets_.size(); ++next_bucket_) reduce(buckets_[next_bucket_], s);
}

}  // namespace plm::trainer
