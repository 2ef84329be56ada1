// PromptPreparer: from what a client sent to engine inputs, on a worker pool (never on the I/O or engine threads):
// a chat conversation's media are localized under the MediaPolicy, decoded and preprocessed exactly as
// `plm generate` does (data::build_prompt: chat template, tokenizer, thumb+tile, frame sampling, placeholder
// expansion), and every tile / frame gets its MediaKey; a completion prompt is tokenized with a BOS.
// Thread-safe; callbacks run on a pool thread.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/chat_template.h"
#include "data/multimodal_prompt.h"
#include "runtime/model_directory.h"
#include "serve/media_source.h"
#include "serve/request.h"
#include "serve/worker_pool.h"

namespace plm::serve {

// Synchronous forms (any thread). Media errors name the item as the client knows it, never a server path.
absl::StatusOr<PreparedPrompt> prepare_chat_prompt(std::vector<data::ChatMessage> messages,
                                                   const runtime::ModelDirectory& model, const MediaPolicy& policy,
                                                   const data::MediaOptions& media);
// The same for a conversation whose media are local files the caller trusts (no policy; `plm caption`).
// Errors name the files.
absl::StatusOr<PreparedPrompt> prepare_local_chat_prompt(const std::vector<data::ChatMessage>& messages,
                                                         const runtime::ModelDirectory& model,
                                                         const data::MediaOptions& media);
PreparedPrompt prepare_text_prompt(const std::string& prompt, const data::Tokenizer& tokenizer);

class PromptPreparer {
 public:
  using Done = std::function<void(absl::StatusOr<PreparedPrompt>)>;

  // `model` must outlive the preparer.
  PromptPreparer(const runtime::ModelDirectory& model, MediaPolicy policy, data::MediaOptions media, int num_threads);

  void prepare_chat(std::vector<data::ChatMessage> messages, Done done);
  void prepare_text(std::string prompt, Done done);
  int num_pending() const { return pool_.num_pending(); }

 private:
  const runtime::ModelDirectory& model_;
  const MediaPolicy policy_;
  const data::MediaOptions media_;
  WorkerPool pool_;  // last: its threads stop before the members above go
};

}  // namespace plm::serve
