// `plm demo`: the whole system on this CPU in a few minutes. It generates pictures and clips of coloured shapes
// (data/synthetic_dataset.h), writes a random-init tiny PLM (configs/demo: the real architecture at toy size,
// the Llama 3 tokenizer), fine-tunes it data-parallel over 2 ranks (`mpirun -n 2 plm train`,
// configs/train/demo.yaml), plots the training curves, serves the result (`plm serve` on a free loopback port)
// and asks it about the held-out pictures and clips through the OpenAI API, captions the held-out clips
// (`plm caption`), then prints the answers and captions next to the truth with the accuracy per attribute and
// the chance level. Everything lands under out_dir:
//
//   data/ (train/validation/test.jsonl, images/, videos/)   model-init/   train/ (metrics.jsonl, final-hf/)
//   plots/ (metrics.png, loss.png, ...)   logs/ (train.log, serve.log, caption.log)   predictions.jsonl
//   captions/ (inputs.jsonl, captions.jsonl)
//
// out_dir must be new, empty or an earlier demo's (which is replaced). Progress bars go to stdout.
#pragma once

#include <cstdint>
#include <filesystem>

#include "absl/status/status.h"

namespace plm::demo {

struct DemoOptions {
  std::filesystem::path out_dir = "plm-demo";
  double minutes = 10;               // wall-time budget (demo/demo_plan.h)
  bool stop_at_budget = true;        // false: train every planned step, however long this machine takes
  uint64_t seed = 1;                 // of the data; the model's init has its own fixed seed
  std::filesystem::path executable;  // the running plm: runs plm train / plm serve, finds the shipped files
};

absl::Status run_demo(const DemoOptions& options);

}  // namespace plm::demo
