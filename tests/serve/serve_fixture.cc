#include "tests/serve/serve_fixture.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "core/check.h"
#include "model/generator.h"
#include "serve/prompt_preparer.h"
#include "tests/core/test_temp_dir.h"

namespace plm::serve::testing {

const std::filesystem::path& models_dir() {
  static const std::filesystem::path dir = std::filesystem::path(PLM_SOURCE_DIR) / "tests/fixtures/models";
  return dir;
}

const std::filesystem::path& inputs_dir() {
  static const std::filesystem::path dir = models_dir() / "inputs";
  return dir;
}

const TinyModel& tiny_model() {
  static const TinyModel* tiny = [] {
    absl::StatusOr<runtime::ModelDirectory> dir = runtime::open_model_directory(models_dir() / "cls_tied");
    PLM_CHECK(dir.ok()) << dir.status().message();
    absl::StatusOr<std::unique_ptr<model::PlmModel>> model =
        model::PlmModel::load((models_dir() / "cls_tied").string(), Device::cpu());
    PLM_CHECK(model.ok()) << model.status().message();
    return new TinyModel{.dir = std::move(*dir), .model = std::move(*model)};
  }();
  return *tiny;
}

std::vector<data::ChatMessage> user_turn(const std::string& text, const std::vector<std::string>& images,
                                         const std::vector<std::string>& videos) {
  data::ChatMessage m{.role = "user", .parts = {}};
  for (const std::string& url : images) m.parts.push_back({.type = data::ContentPart::Type::kImage, .text = {}, .url = url});
  for (const std::string& url : videos) m.parts.push_back({.type = data::ContentPart::Type::kVideo, .text = {}, .url = url});
  m.parts.push_back({.type = data::ContentPart::Type::kText, .text = text, .url = {}});
  return {m};
}

std::string data_url(const std::filesystem::path& file, const std::string& media_type) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return "data:" + media_type + ";base64," + absl::Base64Escape(bytes.str());
}

MediaPolicy test_media_policy() {
  return {.media_root = inputs_dir(), .scratch_dir = plm::testing::fresh_temp_dir("scratch"), .max_media_items = 8};
}

PreparedPrompt prepare_turn(const std::vector<data::ChatMessage>& messages) {
  absl::StatusOr<PreparedPrompt> p = prepare_chat_prompt(messages, tiny_model().dir, test_media_policy(), {});
  PLM_CHECK(p.ok()) << p.status().message();
  return std::move(*p);
}

std::vector<int32_t> solo_tokens(const PreparedPrompt& prompt, const GenerationParams& params) {
  const TinyModel& tiny = tiny_model();
  model::GenerationRequest request{.prompt_ids = prompt.ids,
                                   .image_pixels = prompt.images.pixels.view(),
                                   .video_pixels = prompt.videos.pixels.view(),
                                   .sampling = params.sampling};
  model::GenerationOptions options;
  options.max_new_tokens = static_cast<int>(params.max_tokens);
  options.eos_ids = tiny.dir.eos_token_ids();
  absl::StatusOr<std::vector<model::GenerationResult>> results = model::generate(*tiny.model, {request}, options);
  PLM_CHECK(results.ok()) << results.status().message();
  return (*results)[0].tokens;
}

UpdateCallback Collector::callback() {
  return [this](const RequestUpdate& u) {
    const std::lock_guard lock(mutex_);
    text_ += u.text;
    tokens_.insert(tokens_.end(), u.token_ids.begin(), u.token_ids.end());
    ++num_updates_;
    if (u.finish) {
      final_ = u;
      done_.notify_all();
    }
  };
}

std::optional<RequestUpdate> Collector::wait(double timeout_s) {
  std::unique_lock lock(mutex_);
  done_.wait_for(lock, std::chrono::duration<double>(timeout_s), [&] { return final_.has_value(); });
  return final_;
}

std::string Collector::text() const {
  const std::lock_guard lock(mutex_);
  return text_;
}

std::vector<int32_t> Collector::tokens() const {
  const std::lock_guard lock(mutex_);
  return tokens_;
}

int Collector::num_updates() const {
  const std::lock_guard lock(mutex_);
  return num_updates_;
}

}  // namespace plm::serve::testing
