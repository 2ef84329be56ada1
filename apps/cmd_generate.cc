// `plm generate`: one conversation (a prompt with optional images / a video, or an OpenAI-style messages
// file) through an HF PLM directory; prints the reply, or the generated ids with --output-ids.
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "apps/command.h"
#include "core/status_macros.h"
#include "data/multimodal_prompt.h"
#include "runtime/compute_dtype.h"
#include "runtime/local_device.h"
#include "runtime/model_directory.h"
#include "runtime/model_parallelism.h"
#include "model/generator.h"
#include "model/plm_model.h"

namespace plm::apps {

namespace {

struct GenerateOptions {
  std::string model_dir;
  std::vector<std::string> images;
  std::string video;
  int64_t num_frames = 0;  // 0: up to 32 (data::MediaOptions' default)
  double fps = 0.0;
  std::string prompt;
  std::string system;
  std::string messages_file;
  int max_new_tokens = 128;
  float temperature = 0.0f;
  float top_p = 1.0f;
  int top_k = 0;
  uint64_t seed = 0;
  std::vector<std::string> stop;
  std::string device = "cpu";
  std::string dtype;  // --dtype: "" is the device's default
  bool output_ids = false;
  int tp = 1;
  int pp = 1;
  std::vector<int> pp_layers;
  double pp_media_fraction = -1.0;
  bool replicate_vision = false;
};

// The conversation: the --messages file, or one user turn built from the flags.
absl::StatusOr<std::vector<data::ChatMessage>> conversation(const GenerateOptions& o) {
  if (o.messages_file.empty()) {
    std::vector<std::string> videos;
    if (!o.video.empty()) videos.push_back(o.video);
    return data::single_turn_conversation(o.prompt, o.images, videos, o.system);
  }
  std::ifstream in(o.messages_file, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(o.messages_file, ": cannot open the messages file"));
  std::stringstream text;
  text << in.rdbuf();
  return data::parse_chat_messages(text.str());
}

// This rank's part of the tp x pp layout, with generate's layout options.
absl::StatusOr<runtime::ModelParallelism> set_up_parallelism(const GenerateOptions& o, Device device,
                                                             const std::string& flags) {
  model::ModelParallel layout;
  layout.replicate_vision = o.replicate_vision;
  if (!o.pp_layers.empty()) {
    layout.stage_layer_counts = o.pp_layers;
  } else if (o.pp_media_fraction >= 0 && o.pp > 1) {
    PLM_ASSIGN_OR_RETURN(const model::PlmConfig config, model::load_plm_config(o.model_dir));
    layout.stage_layer_counts = model::cost_aware_stage_layers(
        config, o.pp, {.media_fraction = o.pp_media_fraction, .head_fraction = 0.0});  // prefill: the last token
  }
  return runtime::set_up_model_parallelism({.command = "plm generate", .flags = flags, .tp = o.tp, .pp = o.pp}, device,
                                           std::move(layout));
}

absl::Status run_generate(const GenerateOptions& o, const std::string& flags) {
  PLM_ASSIGN_OR_RETURN(const Device device,
                       runtime::local_device(o.device == "cuda" ? DeviceType::kCuda : DeviceType::kCpu));
  PLM_ASSIGN_OR_RETURN(const model::LoadOptions load_options, runtime::inference_load_options(o.dtype, device));
  PLM_ASSIGN_OR_RETURN(runtime::ModelParallelism parallel, set_up_parallelism(o, device, flags));
  PLM_ASSIGN_OR_RETURN(std::unique_ptr<model::PlmModel> model,
                       model::PlmModel::load(o.model_dir, device, parallel.layout, load_options));
  PLM_ASSIGN_OR_RETURN(const runtime::ModelDirectory model_dir, runtime::open_model_directory(o.model_dir));
  const data::Tokenizer& tokenizer = model_dir.tokenizer;
  const data::ProcessorConfig& processor = model_dir.processor;
  const model::PlmConfig& config = model->config();
  PLM_ASSIGN_OR_RETURN(const std::vector<data::ChatMessage> messages, conversation(o));
  data::MediaOptions media;
  media.video_sampling = data::video_sampling_from_flags(o.num_frames, o.fps);
  PLM_ASSIGN_OR_RETURN(data::PromptInputs inputs,
                       data::build_prompt(messages, /*add_generation_prompt=*/true, tokenizer, processor,
                                          config.tokens_per_tile(), media));

  model::GenerationRequest request;
  request.prompt_ids = inputs.ids;
  request.image_pixels = inputs.image_pixels;
  request.video_pixels = inputs.video_pixels;
  request.sampling = {.temperature = o.temperature, .top_k = o.top_k, .top_p = o.top_p, .seed = o.seed};
  model::GenerationOptions options;
  options.max_new_tokens = o.max_new_tokens;
  options.eos_ids = model_dir.eos_token_ids();
  if (!o.stop.empty()) {
    options.should_stop = [&](int, const std::vector<int32_t>& tokens) {
      const absl::StatusOr<std::string> text = tokenizer.decode(tokens, {.skip_special_tokens = true});
      if (!text.ok()) return false;
      for (const std::string& s : o.stop) {
        if (text->find(s) != std::string::npos) return true;
      }
      return false;
    };
  }
  PLM_ASSIGN_OR_RETURN(std::vector<model::GenerationResult> results, model::generate(*model, {request}, options));
  const model::GenerationResult& result = results[0];
  if (parallel.world_rank() != 0) return absl::OkStatus();
  if (o.output_ids) {
    std::string line;
    for (size_t i = 0; i < result.tokens.size(); ++i) line += (i ? " " : "") + std::to_string(result.tokens[i]);
    std::printf("%s\n", line.c_str());
    return absl::OkStatus();
  }
  PLM_ASSIGN_OR_RETURN(std::string reply, tokenizer.decode(result.tokens, {.skip_special_tokens = true}));
  for (const std::string& s : o.stop) {
    if (const size_t at = reply.find(s); at != std::string::npos) reply.resize(at);
  }
  std::printf("%s\n", reply.c_str());
  return absl::OkStatus();
}

}  // namespace

void add_generate_command(CLI::App& app, CommandMain* selected) {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "Answer one prompt (with images or a video) with a PLM model");
  cmd->add_option("--model", o->model_dir, "Hugging Face PLM directory")->required();
  CLI::Option* image = cmd->add_option("--image", o->images, "Image file (repeat for several)");
  CLI::Option* video = cmd->add_option("--video", o->video, "Video file");
  CLI::Option* num_frames = cmd->add_option("--num-frames", o->num_frames,
                                            "Frames sampled uniformly from the video (default: 32, or all of a shorter video)");
  cmd->add_option("--fps", o->fps, "Sample the video at this rate instead of a fixed frame count")->excludes(num_frames);
  CLI::Option* prompt = cmd->add_option("--prompt", o->prompt, "User text");
  CLI::Option* system = cmd->add_option("--system", o->system, "System message (default: PLM's)");
  // The messages file is the whole conversation: the options that build one from parts would be ignored.
  cmd->add_option("--messages", o->messages_file, "OpenAI-style messages JSON file instead of --prompt")
      ->excludes(prompt)
      ->excludes(system)
      ->excludes(image)
      ->excludes(video);
  cmd->add_option("--max-new-tokens", o->max_new_tokens, "Tokens to generate at most (default 128)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--temperature", o->temperature, "0 = greedy (default)");
  cmd->add_option("--top-p", o->top_p, "Nucleus sampling mass (default 1)");
  cmd->add_option("--top-k", o->top_k, "Sample among the k most likely tokens (0 = off)");
  cmd->add_option("--seed", o->seed, "Sampling seed");
  cmd->add_option("--stop", o->stop, "Stop when the reply contains this text (repeatable)");
  cmd->add_option("--device", o->device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--dtype", o->dtype, runtime::kDtypeFlagHelp)->check(CLI::IsMember({"f32", "bf16"}));
  cmd->add_flag("--output-ids", o->output_ids, "Print the generated token ids instead of text");
  cmd->add_option("--tp", o->tp, "Tensor-parallel ranks (launch tp * pp ranks with mpirun or srun)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--pp", o->pp, "Pipeline-parallel stages")->check(CLI::PositiveNumber);
  cmd->add_option("--pp-layers", o->pp_layers, "Decoder layers per stage, e.g. 6,10 (default: even split)")
      ->delimiter(',');
  cmd->add_flag("--replicate-vision", o->replicate_vision,
                "Run the whole vision tower on every TP rank instead of splitting its heads and MLP");
  cmd->add_option("--pp-media-fraction", o->pp_media_fraction,
                  "Split layers by cost, counting the vision tower on stage 0 for prompts with this share of media tokens");
  cmd->callback([selected, o, cmd] {
    *selected = [o, flags = cmd->config_to_str(true, false)] {
      if (o->prompt.empty() && o->messages_file.empty()) {
        std::fprintf(stderr, "plm generate: give --prompt or --messages\n");
        return 2;
      }
      const absl::Status status = run_generate(*o, flags);
      if (!status.ok()) {
        std::fprintf(stderr, "plm generate: %s\n", std::string(status.message()).c_str());
        return 1;
      }
      return 0;
    };
  });
}

}  // namespace plm::apps
