// `plm convert --checkpoint DIR --to-hf OUT`: a training checkpoint (or a run's output_dir: its latest complete
// checkpoint) as a Hugging Face model directory that transformers and `plm generate` load.
#include <cstdio>
#include <memory>
#include <string>

#include "apps/command.h"
#include "trainer/checkpoint_export.h"

namespace plm::apps {
namespace {

struct ConvertCommandOptions {
  std::string checkpoint;
  std::string to_hf;
  std::string base_model;
  std::string dtype;
};

absl::Status run_convert(const ConvertCommandOptions& o) {
  trainer::ConvertOptions options;
  if (!o.base_model.empty()) options.base_model = o.base_model;
  if (o.dtype == "bf16") options.dtype = DType::kBF16;
  if (o.dtype == "f32") options.dtype = DType::kF32;
  if (o.dtype == "f16") options.dtype = DType::kF16;
  return trainer::convert_checkpoint_to_hf(o.checkpoint, o.to_hf, options);
}

}  // namespace

void add_convert_command(CLI::App& app, CommandMain* selected) {
  auto options = std::make_shared<ConvertCommandOptions>();
  CLI::App* convert = app.add_subcommand("convert", "Convert a training checkpoint to a Hugging Face model directory");
  convert->add_option("--checkpoint", options->checkpoint, "checkpoints/step-XXXXXXXX, or a run's output_dir (latest)")
      ->required();
  convert->add_option("--to-hf", options->to_hf, "the HF directory to write (replaced atomically)")->required();
  convert->add_option("--model", options->base_model, "the base model directory (default: the one the run trained)");
  convert->add_option("--dtype", options->dtype, "weights' dtype (default: the base checkpoint's)")
      ->check(CLI::IsMember({"bf16", "f16", "f32"}));
  convert->callback([selected, options] {
    *selected = [options] {
      const absl::Status status = run_convert(*options);
      if (status.ok()) {
        std::printf("wrote %s\n", options->to_hf.c_str());
        return 0;
      }
      std::fprintf(stderr, "plm convert: %s\n", std::string(status.message()).c_str());
      return 1;
    };
  });
}

}  // namespace plm::apps
