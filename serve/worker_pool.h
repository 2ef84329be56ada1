// WorkerPool: a fixed set of threads running posted jobs in FIFO order, for the CPU work that must stay off the
// HTTP I/O threads and the engine thread (media decode, preprocessing, tokenization, hashing).
// Thread-safe. The destructor runs the jobs already posted, then joins.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace plm::serve {

class WorkerPool {
 public:
  explicit WorkerPool(int num_threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void post(std::function<void()> job);
  // Jobs posted and not yet finished.
  int num_pending() const;

 private:
  void work();

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  int num_running_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace plm::serve
