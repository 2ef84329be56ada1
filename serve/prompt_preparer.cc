#include "serve/prompt_preparer.h"

#include "core/status_macros.h"

namespace plm::serve {

absl::StatusOr<PreparedPrompt> prepare_chat_prompt(std::vector<data::ChatMessage> messages,
                                                   const runtime::ModelDirectory& model, const MediaPolicy& policy,
                                                   const data::MediaOptions& media) {
  PLM_ASSIGN_OR_RETURN(const LocalMedia local, LocalMedia::localize(messages, policy));
  absl::StatusOr<PreparedPrompt> prompt = prepare_local_chat_prompt(messages, model, media);
  if (!prompt.ok()) return absl::Status(prompt.status().code(), local.client_message(std::string(prompt.status().message())));
  return prompt;
}

absl::StatusOr<PreparedPrompt> prepare_local_chat_prompt(const std::vector<data::ChatMessage>& messages,
                                                         const runtime::ModelDirectory& model,
                                                         const data::MediaOptions& media) {
  PLM_ASSIGN_OR_RETURN(data::PromptInputs inputs,
                       data::build_prompt(messages, /*add_generation_prompt=*/true, model.tokenizer, model.processor,
                                          model.config.tokens_per_tile(), media));
  PreparedPrompt prompt;
  prompt.ids = std::move(inputs.ids);
  prompt.images.keys = media_keys(inputs.image_pixels);
  prompt.images.pixels = std::move(inputs.image_pixels);
  prompt.videos.keys = media_keys(inputs.video_pixels);
  prompt.videos.pixels = std::move(inputs.video_pixels);
  return prompt;
}

PreparedPrompt prepare_text_prompt(const std::string& prompt, const data::Tokenizer& tokenizer) {
  PreparedPrompt out;
  out.ids = tokenizer.encode(prompt, {.allow_special = true, .add_bos = true});
  return out;
}

PromptPreparer::PromptPreparer(const runtime::ModelDirectory& model, MediaPolicy policy, data::MediaOptions media,
                               int num_threads)
    : model_(model), policy_(std::move(policy)), media_(std::move(media)), pool_(num_threads) {}

void PromptPreparer::prepare_chat(std::vector<data::ChatMessage> messages, Done done) {
  pool_.post([this, messages = std::move(messages), done = std::move(done)]() mutable {
    done(prepare_chat_prompt(std::move(messages), model_, policy_, media_));
  });
}

void PromptPreparer::prepare_text(std::string prompt, Done done) {
  pool_.post([this, prompt = std::move(prompt), done = std::move(done)] { done(prepare_text_prompt(prompt, model_.tokenizer)); });
}

}  // namespace plm::serve
