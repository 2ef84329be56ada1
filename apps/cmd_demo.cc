// `plm demo [--out DIR] [--minutes M]`: generate coloured-shape pictures and clips, fine-tune a tiny PLM on them
// data-parallel over 2 ranks, serve it and ask it about held-out ones, caption the held-out clips
// (demo/demo_run.h). Runs from any working directory: it finds its files through the plm executable.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "apps/command.h"
#include "demo/demo_run.h"

namespace plm::apps {

void add_demo_command(CLI::App& app, CommandMain* selected) {
  auto o = std::make_shared<demo::DemoOptions>();
  auto out = std::make_shared<std::string>(o->out_dir.string());
  CLI::App* cmd = app.add_subcommand(
      "demo", "Fine-tune a tiny PLM on generated shapes on this CPU, serve it, caption with it and measure what it "
      "learned");
  cmd->add_option("--out", *out,
                  "folder for everything the demo writes (default plm-demo; an earlier demo's is replaced)");
  cmd->add_option("--minutes", o->minutes,
                  "wall-time budget on 2 idle cores (default 10; at least 1): sizes the data "
                  "and the training, which stops early on a slower machine")
      ->check(CLI::Range(1.0, 24 * 60.0));
  cmd->add_option("--seed", o->seed, "seed of the generated data (default 1)");
  cmd->add_flag(
      "--no-time-limit", [o](int64_t) { o->stop_at_budget = false; },
      "train every step --minutes plans for, however long this machine takes (a busy or slow machine "
      "then runs past the budget instead of stopping training early)");
  cmd->callback([selected, o, out] {
    *selected = [o, out] {
      o->out_dir = *out;
      std::error_code error;
      o->executable = std::filesystem::canonical("/proc/self/exe", error);  // a path mpirun's ranks can run too
      if (error) {
        std::fprintf(stderr, "plm demo: cannot find the running plm executable: %s\n", error.message().c_str());
        return 1;
      }
      const absl::Status status = demo::run_demo(*o);
      if (status.ok()) return 0;
      std::fprintf(stderr, "plm demo: %s\n", std::string(status.message()).c_str());
      return 1;
    };
  });
}

}  // namespace plm::apps
