// `plm bench <suite>`: performance measurements (never timed tests). Suites: kernels, generate, train, tokenizer,
// preprocess, sft-data, serve (a load generator for a running server), and make-random-model, which writes the
// random-weight checkpoints the generate and train suites run on.
#include "apps/command.h"
#include "bench/data_bench.h"
#include "bench/generate_bench.h"
#include "bench/kernel_bench.h"
#include "bench/random_checkpoint.h"
#include "bench/train_bench.h"
#include "runtime/compute_dtype.h"
#include "bench/serve_bench.h"

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

  auto gen = std::make_shared<bench::GenerateBenchOptions>();
  CLI::App* generate = bench->add_subcommand(
      "generate", "Time load, vision encode, prefill and greedy decode of a model on synthetic prompts");
  generate->add_option("--model", gen->model_dir, "HF model directory")->required()->check(CLI::ExistingDirectory);
  generate->add_option("--device", gen->device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  generate->add_option("--dtype", gen->dtype, runtime::kDtypeFlagHelp)->check(CLI::IsMember({"f32", "bf16"}));
  generate->add_option("--prompt-tokens", gen->prompt_tokens, "Text tokens per prompt")->check(CLI::PositiveNumber);
  generate->add_option("--new-tokens", gen->new_tokens, "Greedy tokens per prompt (EOS ignored)")
      ->check(CLI::Range(2, 1 << 20));
  generate->add_option("--batch", gen->batch, "Prompts generated together")->check(CLI::PositiveNumber);
  generate->add_option("--image-tiles", gen->image_tiles, "Image tiles per prompt")->check(CLI::NonNegativeNumber);
  generate->add_option("--seed", gen->seed, "Seed of the synthetic token ids and pixels");
  generate->add_option("--repeats", gen->repeats,
                       "Times each stage runs (vision, prefill, generate); the fastest of each is reported")
      ->check(CLI::Range(1, 100));
  generate->callback([selected, gen] { *selected = [gen] { return bench::run_generate_bench(*gen); }; });

  auto tr = std::make_shared<bench::TrainBenchOptions>();
  CLI::App* train = bench->add_subcommand(
      "train", "Time full training steps (forward, backward, AdamW) on synthetic sequences; peak memory vs estimate");
  train->add_option("--model", tr->model_dir, "HF model directory")->required()->check(CLI::ExistingDirectory);
  train->add_option("--batch", tr->batch, "Sequences per step (one packed micro-batch)")->check(CLI::PositiveNumber);
  train->add_option("--seq-len", tr->seq_len, "Tokens per sequence, image placeholders included")
      ->check(CLI::Range(2, 1 << 20));
  train->add_option("--image-tiles", tr->image_tiles, "Image tiles per sequence")->check(CLI::NonNegativeNumber);
  train->add_option("--steps", tr->steps, "Timed steps after one warm-up step")->check(CLI::PositiveNumber);
  train->add_option("--recompute", tr->recompute, "Activation recomputation per block")
      ->check(CLI::IsMember({"none", "selective", "full"}));
  train->add_option("--dtype", tr->dtype,
                    "CPU compute dtype: f32, or bf16 (GEMMs on bf16-rounded operands, f32 master weights; the "
                    "training config's dtype key)")
      ->check(CLI::IsMember({"f32", "bf16"}));
  train->add_option("--seed", tr->seed, "Seed of the synthetic token ids and pixels");
  train->add_option("--tp", tr->tp, "Tensor-parallel ranks (run under mpirun -n TP)")->check(CLI::PositiveNumber);
  train->add_option("--pp", tr->pp, "Pipeline stages (run under mpirun -n TP*PP); 1F1B over --micro micro-batches")
      ->check(CLI::PositiveNumber);
  train->add_option("--micro", tr->micro, "Micro-batches per step, each of --batch sequences")
      ->check(CLI::PositiveNumber);
  train->add_option("--media-micro", tr->media_micro,
                    "Micro-batches that carry the --image-tiles (the first ones; the others are text only of the same "
                    "length); default: all")
      ->check(CLI::NonNegativeNumber);
  train->add_option("--pp-layers", tr->pp_layers, "Decoder layers per stage, e.g. 1,1 (default: the cost-aware split)")
      ->delimiter(',');
  train->callback([selected, tr] { *selected = [tr] { return bench::run_train_bench(*tr); }; });

  auto tok = std::make_shared<bench::TokenizerBenchOptions>();
  CLI::App* tokenizer = bench->add_subcommand("tokenizer", "Encode throughput of the tokenizer on one thread");
  tokenizer->add_option("--tokenizer", tok->tokenizer, "tokenizer.model, tokenizer.json or a model directory")
      ->required();
  tokenizer->add_option("--text", tok->text_file, "Text file to encode (repeated to --mb)")->required();
  tokenizer->add_option("--mb", tok->repeat_mb, "Megabytes of text per run")->check(CLI::PositiveNumber);
  tokenizer->add_option("--runs", tok->runs, "Runs; the fastest counts")->check(CLI::PositiveNumber);
  tokenizer->callback([selected, tok] { *selected = [tok] { return bench::run_tokenizer_bench(*tok); }; });

  auto pre = std::make_shared<bench::PreprocessBenchOptions>();
  CLI::App* preprocess = bench->add_subcommand("preprocess", "Image thumb+tile and video frame preprocessing times");
  preprocess->add_option("--image", pre->image, "Image file");
  preprocess->add_option("--video", pre->video, "Video file");
  preprocess->add_option("--num-frames", pre->num_frames, "Frames sampled from the video (at most its length)")
      ->check(CLI::PositiveNumber);
  preprocess->add_option("--tile-size", pre->tile_size, "Tile / frame size")->check(CLI::PositiveNumber);
  preprocess->add_option("--max-num-tiles", pre->max_num_tiles, "Most tiles per image")->check(CLI::PositiveNumber);
  preprocess->add_option("--runs", pre->runs, "Runs; the fastest counts")->check(CLI::PositiveNumber);
  preprocess->callback([selected, pre] { *selected = [pre] { return bench::run_preprocess_bench(*pre); }; });

  auto sft = std::make_shared<bench::SftDataBenchOptions>();
  CLI::App* sft_data = bench->add_subcommand("sft-data", "Read every training sample of an SFT .jsonl or .h5 store once");
  sft_data->add_option("--data", sft->data, "SFT JSONL file or plm data pack store")->required();
  sft_data->add_option("--model", sft->model_dir, "HF PLM directory: tokenizer and processor settings")->required();
  sft_data->add_option("--num-frames", sft->num_frames, "Frames per video, exactly (default: up to 32)")
      ->check(CLI::PositiveNumber);
  sft_data->add_option("--threads", sft->threads, "Samples read concurrently")->check(CLI::PositiveNumber);
  sft_data->callback([selected, sft] { *selected = [sft] { return bench::run_sft_data_bench(*sft); }; });

  auto load = std::make_shared<bench::ServeBenchOptions>();
  CLI::App* serve = bench->add_subcommand("serve", "Load-test an OpenAI-compatible server: requests/s, tokens/s, TTFT, TPOT");
  serve->add_option("--url", load->url, "Server, e.g. http://127.0.0.1:8000")->required();
  serve->add_option("--concurrency", load->concurrency, "Requests in flight at once (default 1)")->check(CLI::PositiveNumber);
  serve->add_option("--requests", load->requests, "Requests in all (default 64)")->check(CLI::PositiveNumber);
  serve->add_option("--image", load->image, "Image file sent with every request (as a data: URL)")->check(CLI::ExistingFile);
  serve->add_option("--video", load->video, "Video file sent with every request (as a data: URL)")->check(CLI::ExistingFile);
  serve->add_option("--mix", load->mix,
                    "Request kinds in turn, e.g. image,video,text (default: every request has --image and --video)")
      ->delimiter(',')
      ->check(CLI::IsMember({"image", "video", "text"}));
  serve->add_option("--prompt", load->prompt, "User text");
  serve->add_option("--max-tokens", load->max_tokens, "Tokens per reply at most (default 64)")->check(CLI::PositiveNumber);
  serve->add_option("--api-key", load->api_key, "Bearer key (default: $PLM_API_KEY)")->envname("PLM_API_KEY");
  serve->add_option("--model", load->model, "Model id (default: the first /v1/models lists)");
  serve->callback([selected, load] { *selected = [load] { return bench::run_serve_bench(*load); }; });

  auto random = std::make_shared<bench::RandomCheckpointOptions>();
  auto max_shard_mb = std::make_shared<int64_t>(random->max_shard_bytes / 1'000'000);
  CLI::App* make_random = bench->add_subcommand(
      "make-random-model", "Write an HF model directory with random bf16 weights for a config folder");
  make_random->add_option("--config", random->config_dir, "Folder holding config.json (e.g. configs/plm-1b)")
      ->required()->check(CLI::ExistingDirectory);
  make_random->add_option("--out", random->out_dir, "Model directory to write")->required();
  make_random->add_option("--seed", random->seed, "Seed of the weights");
  make_random->add_option("--max-shard-mb", *max_shard_mb, "Largest safetensors file, in MB (1e6 bytes)")
      ->check(CLI::PositiveNumber);
  make_random->add_option("--text-layers", random->text_layers, "Decoder layers (default: the config's)")
      ->check(CLI::PositiveNumber);
  make_random->add_option("--vision-layers", random->vision_layers, "Vision blocks (default: the config's)")
      ->check(CLI::PositiveNumber);
  make_random->callback([selected, random, max_shard_mb] {
    random->max_shard_bytes = *max_shard_mb * 1'000'000;
    *selected = [random] { return bench::run_make_random_model(*random); };
  });
}

}  // namespace plm::apps
