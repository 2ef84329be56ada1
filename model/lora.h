// LoRA / DoRA fine-tuning of the decoder's projections (peft 0.21.2 semantics; the per-layer math is
// model/layers/lora.h): the spec, attaching adapters with their own storage to loaded decoder weights,
// and the names adapters go by.
// Names: for_each_parameter visits an adapter's tensors as "<HF module>.lora_A.weight", ".lora_B.weight" and
// ".lora_magnitude_vector" (DoRA), e.g. "model.language_model.layers.0.self_attn.q_proj.lora_A.weight";
// "base_model.model." + name is the key in PEFT's adapter_model.safetensors.
// Dropout masks are keyed per sample (lora_dropout_key) and per token position, so a resumed run and any
// micro-batch / data-parallel split of a step draw the same masks.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "model/text/llama_decoder.h"

namespace plm::model {

// The projections LoRA can adapt (the last part of their HF module names), in DecoderLayer order.
inline constexpr std::array<std::string_view, 7> kLoraTargets = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                                  "gate_proj", "up_proj", "down_proj"};
inline constexpr const char* kPeftKeyPrefix = "base_model.model.";

struct LoraSpec {
  int rank = 8;                      // r
  double alpha = 8.0;                // the adapter output is scaled by alpha / r
  double dropout = 0.0;              // on each adapter's input while training, in [0, 1)
  std::vector<std::string> targets;  // each one of kLoraTargets
  bool dora = false;                 // DoRA: + a magnitude vector per projection
  uint64_t init_seed = 0;            // lora_A's random init (not torch's stream: load peft's to match it)

  float scaling() const { return static_cast<float>(alpha / rank); }
};

// rank >= 1, alpha > 0, 0 <= dropout < 1, targets known, none twice, at least one.
absl::Status validate_lora_spec(const LoraSpec& spec);

// Adds an adapter to every targeted projection of `weights` (this rank's layers; tp = 1) and returns the
// storage its tensors live in (the caller keeps it as long as the views are used), initialised as peft's
// init_lora_weights=True: A kaiming-uniform (a = sqrt(5), i.e. U(-1/sqrt(in), 1/sqrt(in))) from the seed,
// B = 0, DoRA's m = the row norms of W (so the adapted model starts equal to the base). Tensors in `dtype`
// on the weights' device.
absl::StatusOr<std::vector<OwnedTensor>> attach_lora_adapters(DecoderWeights& weights, const LoraSpec& spec,
                                                               DType dtype);

// Whether a parameter name (as for_each_parameter gives it) is an adapter tensor: the trainable set of
// a LoRA run.
bool is_lora_parameter(const std::string& name);
// "…q_proj.lora_A.weight" -> "…q_proj.weight": the base weight an adapter tensor belongs to.
std::string lora_base_weight_name(const std::string& adapter_name);

// The dropout key of one sample: a function of the run's seed, the optimizer step and the sample's index
// among the step's samples (all ranks), so every split of the step and every resume draw the same masks.
uint64_t lora_dropout_key(uint64_t seed, int64_t step, int64_t sample);

}  // namespace plm::model
