#include "distributed/watchdog.h"

#include <cstdlib>

namespace plm::distributed {

std::chrono::seconds CommWatchdog::timeout_from_env(std::chrono::seconds default_timeout) {
  const char* value = std::getenv("PLM_COMM_TIMEOUT_S");
  if (value == nullptr || *value == '\0') return default_timeout;
  const long seconds = std::strtol(value, nullptr, 10);
  return seconds > 0 ? std::chrono::seconds(seconds) : default_timeout;
}

CommWatchdog::CommWatchdog(std::chrono::seconds timeout, std::function<void(const std::string&)> abort_action)
    : timeout_(timeout), abort_action_(std::move(abort_action)), thread_([this] { run(); }) {}

CommWatchdog::~CommWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  thread_.join();
}

CommWatchdog::Scope::Scope(CommWatchdog& dog, std::string what) : dog_(dog) {
  std::lock_guard<std::mutex> lock(dog_.mutex_);
  dog_.busy_ = true;
  dog_.what_ = std::move(what);
  dog_.started_ = std::chrono::steady_clock::now();
}

CommWatchdog::Scope::~Scope() {
  std::lock_guard<std::mutex> lock(dog_.mutex_);
  dog_.busy_ = false;
}

void CommWatchdog::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; })) {
    if (!busy_ || std::chrono::steady_clock::now() - started_ < timeout_) continue;
    const std::string message = what_ + " did not complete within " + std::to_string(timeout_.count()) +
                                " s (a peer rank died, hangs, or runs a different sequence of collectives)";
    busy_ = false;
    lock.unlock();
    abort_action_(message);
    lock.lock();
  }
}

}  // namespace plm::distributed
