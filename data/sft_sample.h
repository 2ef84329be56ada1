// One supervised fine-tuning example from a conversation: the ids the checkpoint's chat template gives
// for the whole conversation (no generation prompt, placeholders expanded, as HF's processor), the media
// preprocessed exactly as at inference, and which tokens are trained on.
// Labels (issue 18): bit i of a mask means the logits at position i - 1 are trained to predict ids[i], so
// bit 0 is always clear (nothing predicts the first token).
//   assistant      each assistant turn's content tokens and its closing <|eot_id|>; not its
//                  "<|start_header_id|>assistant<|end_header_id|>\n\n" header, the system/user turns, BOS or
//                  media placeholders (PLM's own recipe; the default)
//   all_but_media  every token except <|image|>/<|video|> placeholders (the model card's LoRA example)
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "data/chat_template.h"
#include "data/multimodal_prompt.h"
#include "data/processor_config.h"
#include "data/tokenizer.h"

namespace plm::data {

enum class LabelMode { kAssistant, kAllButMedia };

// "assistant" | "all_but_media"; anything else is an error naming the accepted values.
absl::StatusOr<LabelMode> parse_label_mode(std::string_view name);
const char* label_mode_name(LabelMode mode);

struct SftDataConfig {
  LabelMode labels = LabelMode::kAssistant;
  std::optional<int64_t> max_tokens;  // a longer sample (after placeholder expansion) is an error
  MediaOptions media;                 // media.video_sampling.num_frames is data.num_frames
};

// A conversation turned into model inputs with both label masks (what a store keeps).
struct SftExample : MediaInputs {
  std::vector<int32_t> ids;                 // (S) placeholders expanded
  std::vector<uint8_t> assistant_mask;      // (S) 0/1
  std::vector<uint8_t> all_but_media_mask;  // (S) 0/1
};

// What training consumes: the example with the mask of one label mode.
struct SftSample : MediaInputs {
  std::vector<int32_t> ids;         // (S) placeholders expanded
  std::vector<uint8_t> label_mask;  // (S) 0/1; label_mask[0] == 0

  int64_t num_labelled() const;
  int64_t num_vision_tiles() const;  // image tiles + video frames: the vision tower's batch
};

SftSample select_labels(SftExample example, LabelMode mode);

// Roles must be system, user or assistant, at least one assistant turn must exist (else there is nothing to
// train on), and a leading system turn may hold no media (the template renders its text only).
absl::Status validate_sft_conversation(const std::vector<ChatMessage>& messages);

// The placeholders per image tile / video frame (HF's count); an error when the two differ, which one
// vision tower cannot serve.
absl::StatusOr<int> sft_tokens_per_tile(const ProcessorConfig& processor);

// Validates, loads the media (paths as media_file_path gives them, relative to the working directory),
// tokenizes turn by turn and checks max_tokens. Errors name the problem, not the source line.
absl::StatusOr<SftExample> build_sft_example(const std::vector<ChatMessage>& messages, const Tokenizer& tokenizer,
                                             const ProcessorConfig& processor, const SftDataConfig& config);

}  // namespace plm::data
