// plm: one binary, one subcommand per job. Dispatch only; each subcommand lives in cmd_<verb>.cc.
#include <cstdio>
#include <cstring>
#include <string>

#include <CLI/CLI.hpp>

int main(int argc, char** argv) {
  CLI::App app{"plm: fine-tune and serve Meta's Perception Language Model on CPUs and GPUs", "plm"};
  app.set_version_flag("--version", "plm 0.1.0");
  app.require_subcommand(1);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
