// ModelParallel: this rank's place in a tensor- and pipeline-parallel model. TP splits attention heads,
// the MLP hidden dim and the vocabulary (Megatron: column-parallel q/k/v and gate/up, row-parallel o and
// down, vocab-parallel embedding and LM head); when TP exceeds the KV heads each KV head is replicated on
// tp / kv_heads ranks. PP gives each stage a contiguous range of decoder layers; the first stage also runs
// the vision tower, projector and embedding, the last the final norm and LM head. The vision tower splits
// its heads and MLP over the TP ranks when they divide evenly (else, or on request, it is replicated);
// the projector is replicated. Null communicators mean a size-1 axis.
#pragma once

#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "distributed/communicator.h"
#include "distributed/single_rank_communicator.h"
#include "model/config.h"

namespace plm::model {

// Which parts of the model a rank holds: all of them, or one role of disaggregated serving (serve/disagg/):
// the vision tower and projector alone (an encoder rank) or the language model alone (a decoder rank, which
// takes the media rows from elsewhere).
enum class ModelPart { kAll, kVision, kLanguage };

struct ModelParallel {
  distributed::Communicator* tp = nullptr;
  distributed::Communicator* pp = nullptr;
  // Decoder layers per stage, first stage first; empty: stage_layers()' even split.
  std::vector<int> stage_layer_counts = {};
  bool replicate_vision = false;  // keep every vision head on every TP rank
  ModelPart part = ModelPart::kAll;

  int tp_rank() const { return tp ? tp->rank() : 0; }
  int tp_size() const { return tp ? tp->size() : 1; }
  int pp_rank() const { return pp ? pp->rank() : 0; }
  int pp_size() const { return pp ? pp->size() : 1; }
  bool first_stage() const { return pp_rank() == 0; }
  bool last_stage() const { return pp_rank() == pp_size() - 1; }
  // The TP group to call the region functions on: a size-1 group without tensor parallelism.
  distributed::Communicator& tp_group() const { return tp ? *tp : distributed::single_rank_group(); }
  // The pipeline group (stage i is its rank i): a size-1 group without pipeline parallelism.
  distributed::Communicator& pp_group() const { return pp ? *pp : distributed::single_rank_group(); }
};

// Decoder layers [first, last) of `stage`: an even split, the first (num_layers % num_stages) stages
// taking one more.
std::pair<int, int> stage_layers(int num_layers, int stage, int num_stages);
// The same from explicit per-stage counts.
std::pair<int, int> stage_layers(const std::vector<int>& counts, int stage);

// What the first and last stage run besides their decoder layers, per prompt token, for the cost-aware split:
// `media_fraction` of the tokens are media placeholders (each tile of tokens_per_tile of them costs one pass of
// the vision tower + projector on the first stage); `head_fraction` of them reach the final norm, LM head and loss
// on the last stage (training: the labelled tokens; prefill: only the last token, so about 0).
struct StageWork {
  double media_fraction = 0.0;
  double head_fraction = 0.0;
};

// Decoder layers per stage that balance compute: the tower's and the head's FLOPs per token, in decoder-layer
// equivalents, count as work of the first and the last stage, which get fewer (possibly zero) layers. Each layer
// goes to the stage with the least work so far (the first of equals), which minimises the largest stage's work.
// For PLM-1B one placeholder token costs ~22 layers, one token through the head ~4.3 (its 128256-word vocabulary).
std::vector<int> cost_aware_stage_layers(const PlmConfig& config, int num_stages, const StageWork& work);

// Whether the vision tower splits over `tp` ranks (heads and MLP hidden divisible).
bool vision_splits(const VisionConfig& vision, int tp);

// Whether `config` splits into tp x pp; the error has the arithmetic.
absl::Status validate_parallel_layout(const PlmConfig& config, int tp, int pp);

}  // namespace plm::model
