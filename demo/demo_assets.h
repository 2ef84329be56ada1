// Where the files `plm demo` ships with live, so that it runs from any working directory: configs/demo (the
// tiny PLM's config and processor files), configs/train/demo.yaml (how it is trained) and the Llama 3
// tokenizer with its license (tests/fixtures/models/tokenizer). They are looked up in the source tree the plm
// executable was built in (build/apps/plm is two folders below it), then in the source directory compiled into the
// binary.
#pragma once

#include <filesystem>

#include "absl/status/statusor.h"

namespace plm::demo {

struct DemoAssets {
  std::filesystem::path config_dir;     // config.json, generation/processor configs
  std::filesystem::path train_config;   // the plm train YAML
  std::filesystem::path tokenizer_dir;  // tokenizer.json, tokenizer_config.json, chat_template.jinja, license
};

// executable: the running plm binary (/proc/self/exe). The error lists the folders tried.
absl::StatusOr<DemoAssets> find_demo_assets(const std::filesystem::path& executable);

// The tokenizer files a model directory needs next to its weights (copied from tokenizer_dir).
inline constexpr const char* kTokenizerFiles[] = {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
                                                  "LICENSE-LLAMA3.txt"};

}  // namespace plm::demo
