#include "trainer/stop_signal.h"

#include <atomic>
#include <cerrno>
#include <cstring>

#include "core/check.h"

namespace plm::trainer {
namespace {

std::atomic<int> g_stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free atomic");
std::atomic<bool> g_installed{false};

extern "C" void on_stop_signal(int signal_number) {
  int none = 0;
  g_stop_signal.compare_exchange_strong(none, signal_number, std::memory_order_relaxed);
}

void install(int signal_number, struct sigaction* previous) {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART | SA_RESETHAND;
  PLM_CHECK(::sigaction(signal_number, &action, previous) == 0) << "sigaction: " << std::strerror(errno);
}

}  // namespace

StopSignal::StopSignal() {
  PLM_CHECK(!g_installed.exchange(true)) << "only one StopSignal may exist at a time";
  g_stop_signal.store(0, std::memory_order_relaxed);
  install(SIGTERM, &previous_term_);
  install(SIGUSR1, &previous_usr1_);
}

StopSignal::~StopSignal() {
  ::sigaction(SIGTERM, &previous_term_, nullptr);
  ::sigaction(SIGUSR1, &previous_usr1_, nullptr);
  g_installed.store(false);
}

int StopSignal::requested() const { return g_stop_signal.load(std::memory_order_relaxed); }

}  // namespace plm::trainer
