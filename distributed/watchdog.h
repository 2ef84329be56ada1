// CommWatchdog: turns a hang in communication into a clear, job-wide failure. Each blocking operation
// is wrapped in a Scope; a background thread checks once a second and, when one has run longer than the
// timeout, prints which operation on which group and rank stalled and calls the abort action (for MPI,
// MPI_Abort, which takes every rank down). Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace plm::distributed {

class CommWatchdog {
 public:
  // timeout from PLM_COMM_TIMEOUT_S when set, else default_timeout.
  static std::chrono::seconds timeout_from_env(std::chrono::seconds default_timeout);

  CommWatchdog(std::chrono::seconds timeout, std::function<void(const std::string&)> abort_action);
  ~CommWatchdog();
  CommWatchdog(const CommWatchdog&) = delete;
  CommWatchdog& operator=(const CommWatchdog&) = delete;

  class Scope {
   public:
    Scope(CommWatchdog& dog, std::string what);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    CommWatchdog& dog_;
  };

 private:
  void run();

  const std::chrono::seconds timeout_;
  const std::function<void(const std::string&)> abort_action_;
  std::mutex mutex_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  bool busy_ = false;
  std::string what_;
  std::chrono::steady_clock::time_point started_;
  std::thread thread_;
};

}  // namespace plm::distributed
