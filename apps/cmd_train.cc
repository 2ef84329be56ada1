// `plm train --config FILE.yaml [key.sub=value ...]`: fine-tune PLM (trainer/train_run.h). One process per
// rank: by hand for one rank, under mpirun or srun for several (the world comes from the launch environment).
// SIGTERM / SIGUSR1 finish the current step, save a checkpoint and exit 0.
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "apps/command.h"
#include "core/status_macros.h"
#include "distributed/consistency.h"
#include "distributed/launch_env.h"
#include "distributed/mpi_communicator.h"
#include "distributed/single_rank_communicator.h"
#include "trainer/stop_signal.h"
#include "trainer/train_config.h"
#include "trainer/train_run.h"

namespace plm::apps {
namespace {

struct TrainCommandOptions {
  std::string config;
  std::vector<std::string> overrides;
};

absl::Status run_train(const TrainCommandOptions& o) {
  PLM_ASSIGN_OR_RETURN(const trainer::TrainConfig config, trainer::parse_train_config(o.config, o.overrides));
  std::unique_ptr<distributed::Communicator> world;
  if (distributed::read_launch_env().world_size > 1) {
    world = distributed::mpi_world();
    // Every rank must train the same run; a difference would diverge or hang later.
    PLM_RETURN_IF_ERROR(distributed::check_same_on_all_ranks(
        *world, "the plm train command line", absl::StrCat(o.config, " ", absl::StrJoin(o.overrides, " "))));
  } else {
    world = std::make_unique<distributed::SingleRankCommunicator>("world");
  }
  const trainer::StopSignal stop;
  PLM_ASSIGN_OR_RETURN(const trainer::TrainRunResult result,
                       trainer::run_training(config, *world,
                                             {.log = &std::cout, .stop_requested = [&stop] { return stop.requested(); }}));
  if (world->rank() == 0 && result.stopped) {
    std::cout << "resume with the same command (the latest checkpoint in " << config.output_dir.string()
              << " is picked up)\n";
  }
  return absl::OkStatus();
}

}  // namespace

void add_train_command(CLI::App& app, CommandMain* selected) {
  auto options = std::make_shared<TrainCommandOptions>();
  CLI::App* train = app.add_subcommand("train", "Fine-tune PLM on SFT conversations (keys: trainer/README.md)");
  train->add_option("--config", options->config, "the run's YAML file")->required();
  train->add_option("overrides", options->overrides, "key.sub=value overrides of the YAML file (later ones win)");
  train->callback([selected, options] {
    *selected = [options] {
      const absl::Status status = run_train(*options);
      if (status.ok()) return 0;
      std::fprintf(stderr, "plm train: %s\n", std::string(status.message()).c_str());
      return 1;
    };
  });
}

}  // namespace plm::apps
