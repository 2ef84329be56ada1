#include "serve/worker_pool.h"

#include "core/check.h"

namespace plm::serve {

WorkerPool::WorkerPool(int num_threads) {
  PLM_CHECK_GE(num_threads, 1);
  for (int i = 0; i < num_threads; ++i) threads_.emplace_back([this] { work(); });
}

WorkerPool::~WorkerPool() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void WorkerPool::post(std::function<void()> job) {
  {
    const std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(job));
  }
  wake_.notify_one();
}

int WorkerPool::num_pending() const {
  const std::lock_guard lock(mutex_);
  return static_cast<int>(jobs_.size()) + num_running_;
}

void WorkerPool::work() {
  std::unique_lock lock(mutex_);
  while (true) {
    wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
    if (jobs_.empty()) return;  // stopping, and every posted job has run
    std::function<void()> job = std::move(jobs_.front());
    jobs_.pop_front();
    ++num_running_;
    lock.unlock();
    job();
    lock.lock();
    --num_running_;
  }
}

}  // namespace plm::serve
