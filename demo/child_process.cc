#include "demo/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace plm::demo {
namespace {

int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

}  // namespace

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::start(
    const std::vector<std::string>& argv, const std::vector<std::pair<std::string, std::string>>& env,
    const std::filesystem::path& log) {
  if (argv.empty()) return absl::InvalidArgumentError("no program to run");
  const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) return absl::InternalError(absl::StrCat(log.string(), ": cannot create: ", std::strerror(errno)));
  // Everything the child needs is built before fork(): after it only async-signal-safe calls are made.
  std::vector<std::string> args = argv;
  std::vector<char*> arg_pointers;
  for (std::string& a : args) arg_pointers.push_back(a.data());
  arg_pointers.push_back(nullptr);
  std::vector<std::string> environment;
  for (char** e = ::environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string key = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const auto& [name, value] : env) replaced |= name == key;
    if (!replaced) environment.push_back(entry);
  }
  for (const auto& [name, value] : env) environment.push_back(name + "=" + value);
  std::vector<char*> env_pointers;
  for (std::string& e : environment) env_pointers.push_back(e.data());
  env_pointers.push_back(nullptr);
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(out);
    return absl::InternalError(absl::StrCat("fork for ", argv[0], " failed: ", std::strerror(errno)));
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the demo died before prctl took effect
    ::dup2(out, STDOUT_FILENO);
    ::dup2(out, STDERR_FILENO);
    ::execve(arg_pointers[0], arg_pointers.data(), env_pointers.data());
    ::_exit(127);
  }
  ::close(out);
  ::setpgid(pid, pid);  // also here, so that signal_group() works before the child ran
  return std::unique_ptr<ChildProcess>(new ChildProcess(pid, log));
}

ChildProcess::~ChildProcess() {
  if (exit_status_) return;
  ::kill(-pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
}

std::optional<int> ChildProcess::poll() {
  if (exit_status_) return exit_status_;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) exit_status_ = exit_code(status);
  return exit_status_;
}

int ChildProcess::wait() {
  if (exit_status_) return *exit_status_;
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  exit_status_ = exit_code(status);
  return *exit_status_;
}

void ChildProcess::signal(int signal) {
  if (!exit_status_) ::kill(pid_, signal);
}

void ChildProcess::signal_group(int signal) {
  if (!exit_status_) ::kill(-pid_, signal);
}

std::string log_tail(const std::filesystem::path& log, int max_lines) {
  std::ifstream in(log);
  std::deque<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(line);
    if (static_cast<int>(lines.size()) > max_lines) lines.pop_front();
  }
  return absl::StrJoin(lines, "\n");
}

}  // namespace plm::demo
