// `plm bench <suite>`: performance measurements (never timed tests). Suites: kernels.
#include "apps/command.h"
#include "bench/kernel_bench.h"

namespace plm::apps {

void add_bench_command(CLI::App& app, CommandMain* selected) {
  CLI::App* bench = app.add_subcommand("bench", "Run benchmarks and print rates against the machine's peak");
  bench->require_subcommand(1);

  auto options = std::make_shared<bench::KernelBenchOptions>();
  CLI::App* kernels = bench->add_subcommand("kernels", "Time every core kernel on PLM-1B-sized shapes");
  kernels->add_option("--device", options->device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  kernels->add_flag("--quick", options->quick, "Small shapes, short timing (smoke run)");
  kernels->add_option("--filter", options->filter, "Only kernels whose name contains this");
  kernels->callback([selected, options] { *selected = [options] { return bench::run_kernel_bench(*options); }; });
}

}  // namespace plm::apps
