// plm: one binary, one subcommand per job. Dispatch only; each subcommand lives in cmd_<verb>.cc.
#include <cstdio>
#include <set>
#include <string>

#include "apps/command.h"
#include "runtime/cpu_threads.h"

namespace {

constexpr int kUsageError = 2;

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"plm: fine-tune and serve Meta's Perception Language Model on CPUs and GPUs", "plm"};
  app.set_version_flag("--version", std::string("plm ") + PLM_VERSION);
  app.require_subcommand(1);

  plm::apps::CommandMain selected;
  plm::apps::add_bench_command(app, &selected);
  plm::apps::add_caption_command(app, &selected);
  plm::apps::add_convert_command(app, &selected);
  plm::apps::add_data_command(app, &selected);
  plm::apps::add_demo_command(app, &selected);
  plm::apps::add_generate_command(app, &selected);
  plm::apps::add_plot_command(app, &selected);
  plm::apps::add_plan_command(app, &selected);
  plm::apps::add_serve_command(app, &selected);
  plm::apps::add_tokenize_command(app, &selected);
  plm::apps::add_train_command(app, &selected);

  // CLI11 reports an unknown subcommand as a stray positional; name it plainly instead.
  if (argc > 1 && argv[1][0] != '-') {
    std::set<std::string> known;
    for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) known.insert(sub->get_name());
    if (!known.count(argv[1])) {
      std::fprintf(stderr, "plm: unknown subcommand '%s' (run 'plm --help' for the list)\n", argv[1]);
      return kUsageError;
    }
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kUsageError;
  }
  plm::runtime::set_cpu_threads_for_launch();  // several ranks on a node share its cores
  return selected ? selected() : kUsageError;
}
