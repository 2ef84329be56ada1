// How subcommands plug into the plm CLI: each cmd_<verb>.cc defines add_<verb>_command(), which adds its
// CLI11 subcommand with options and, when that subcommand is chosen, stores its entry point in *selected.
// Entry points return the process exit code and report errors on stderr (only apps/ exits).
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace plm::apps {

using CommandMain = std::function<int()>;

void add_bench_command(CLI::App& app, CommandMain* selected);
void add_caption_command(CLI::App& app, CommandMain* selected);
void add_convert_command(CLI::App& app, CommandMain* selected);
void add_data_command(CLI::App& app, CommandMain* selected);
void add_demo_command(CLI::App& app, CommandMain* selected);
void add_generate_command(CLI::App& app, CommandMain* selected);
void add_plot_command(CLI::App& app, CommandMain* selected);
void add_plan_command(CLI::App& app, CommandMain* selected);
void add_serve_command(CLI::App& app, CommandMain* selected);
void add_tokenize_command(CLI::App& app, CommandMain* selected);
void add_train_command(CLI::App& app, CommandMain* selected);

}  // namespace plm::apps
