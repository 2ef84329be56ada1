// Shared pieces of the serve tests: the tiny cls_tied model and its directory (loaded once per process), chat
// messages over the committed inputs, the solo greedy reference (model::generate, what `plm generate` runs),
// and a collector for an engine request's updates.
#pragma once

#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/chat_template.h"
#include "data/multimodal_prompt.h"
#include "model/plm_model.h"
#include "runtime/model_directory.h"
#include "serve/media_source.h"
#include "serve/request.h"

namespace plm::serve::testing {

const std::filesystem::path& models_dir();  // tests/fixtures/models
const std::filesystem::path& inputs_dir();  // tests/fixtures/models/inputs

struct TinyModel {
  runtime::ModelDirectory dir;
  std::unique_ptr<model::PlmModel> model;
};
// cls_tied on the CPU, loaded on first use.
const TinyModel& tiny_model();

// One user turn: the media parts (urls as given), then the text.
std::vector<data::ChatMessage> user_turn(const std::string& text, const std::vector<std::string>& images = {},
                                         const std::vector<std::string>& videos = {});
// A data: URL carrying the file's bytes in base64.
std::string data_url(const std::filesystem::path& file, const std::string& media_type);

// Media under inputs_dir(), data: URLs written to a scratch directory of the running test.
MediaPolicy test_media_policy();

// `messages` prepared for the tiny model under test_media_policy() (pixels and keys, no embeddings).
PreparedPrompt prepare_turn(const std::vector<data::ChatMessage>& messages);

// Greedy (or seeded) tokens of `prompt` alone through model::generate with the model's EOS ids.
std::vector<int32_t> solo_tokens(const PreparedPrompt& prompt, const GenerationParams& params);

// Collects a request's updates; wait() blocks until the final one (or fails the test after a timeout).
class Collector {
 public:
  UpdateCallback callback();
  // The final update, after all others; nullopt on timeout.
  std::optional<RequestUpdate> wait(double timeout_s = 60);
  std::string text() const;
  std::vector<int32_t> tokens() const;
  int num_updates() const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable done_;
  std::string text_;
  std::vector<int32_t> tokens_;
  int num_updates_ = 0;
  std::optional<RequestUpdate> final_;
};

}  // namespace plm::serve::testing
