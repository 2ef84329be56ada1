// ChildProcess: a program the demo runs beside itself (`mpirun ... plm train`, `plm serve`), with stdout and
// stderr going to a log file. The child leads its own process group, so signal() reaches what it starts
// (mpirun's ranks); it is killed if the demo dies (PR_SET_PDEATHSIG) and, with its group, by the destructor
// if still running. Not thread-safe.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace plm::demo {

class ChildProcess {
 public:
  // argv[0] is a path (no PATH search). env: variables set on top of this process's environment.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> start(
      const std::vector<std::string>& argv, const std::vector<std::pair<std::string, std::string>>& env,
      const std::filesystem::path& log);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // The exit status once the child has exited (128 + N for signal N), else nullopt. Does not block.
  std::optional<int> poll();
  int wait();
  // Sends `signal` to the child alone (mpirun forwards SIGUSR1 to its ranks) or to its whole group.
  void signal(int signal);
  void signal_group(int signal);
  const std::filesystem::path& log() const { return log_; }

 private:
  ChildProcess(pid_t pid, std::filesystem::path log) : pid_(pid), log_(std::move(log)) {}

  pid_t pid_;
  std::optional<int> exit_status_;
  std::filesystem::path log_;
};

// The last `max_lines` lines of a log file (for an error message); empty when it cannot be read.
std::string log_tail(const std::filesystem::path& log, int max_lines = 20);

}  // namespace plm::demo
