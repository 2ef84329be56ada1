// The Llama decoder of PLM (spec/plm_spec.md §2.7): token embedding, layers of
// x += o(attn(rope(q, k), v)) over RMSNorm, x += down(silu(gate) * up) over RMSNorm, final RMSNorm and the
// (tied or untied) LM head. Works on packed tokens of several sequences (TokenBatch) with a preallocated
// KV cache. Holds this rank's share under tensor/pipeline parallelism (model/parallel.h): its TP slice of
// every projection and of the vocabulary, and its stage's layers. Forward-only.
#pragma once

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "model/config.h"
#include "model/layers/linear.h"
#include "model/layers/norms.h"
#include "model/parallel.h"
#include "model/text/kv_cache.h"
#include "model/text/token_batch.h"
#include "model/trace.h"
#include "model/weights/weight_loader.h"

namespace plm::model {

// Shapes per TP rank: h = heads / tp, k = max(1, kv_heads / tp), f = F / tp.
struct DecoderLayer {
  RmsNorm input_norm, post_attention_norm;  // (H), replicated
  Linear q_proj;     // (h * head_dim, H)   column-parallel
  Linear k_proj;     // (k * head_dim, H)   column-parallel (replicated when tp > kv_heads)
  Linear v_proj;     // (k * head_dim, H)   column-parallel (replicated when tp > kv_heads)
  Linear o_proj;     // (H, h * head_dim)   row-parallel: partial sums, all-reduced over TP
  Linear gate_proj;  // (f, H)              column-parallel
  Linear up_proj;    // (f, H)              column-parallel
  Linear down_proj;  // (H, f)              row-parallel
};

class LlamaDecoder {
 public:
  // lm_head_name: the tensor holding the output projection (hf_names.h lm_head_tensor_name).
  static absl::StatusOr<LlamaDecoder> load(const TextConfig& config, const WeightLoader& loader,
                                           const std::string& lm_head_name, const ModelParallel& parallel);

  const TextConfig& config() const { return config_; }
  // The layers [first_layer(), last_layer()) this rank holds.
  int first_layer() const { return first_layer_; }
  int last_layer() const { return first_layer_ + static_cast<int>(layers_.size()); }
  // The KV cache this rank needs: its layers and KV heads.
  std::unique_ptr<KvCache> make_cache(int num_slots, int64_t max_len, DType dtype, Device device) const;

  // First stage. ids: (T) i32 on the model's device -> out: (T, H) (vocab-parallel lookup + all-reduce).
  void embed(Tensor out, Tensor ids, Stream s = {}) const;
  // Runs this rank's layers over hidden (T, H) in place, reading and extending the cache for the batch's
  // chunks. positions: (T) i32 on the device (start + i for each chunk's tokens).
  void forward_layers(Tensor hidden, Tensor positions, const TokenBatch& batch, KvCache& cache, Tracer* tracer,
                      Stream s = {}) const;
  // Last stage. hidden rows (R, H) -> final RMSNorm -> normed (R, H) and full logits (R, V), gathered over
  // TP (logits may be undefined).
  void head(Tensor logits, Tensor normed, Tensor hidden, Stream s = {}) const;

 private:
  // kv_lens: (chunks) i32 on the device, each chunk's visible keys after this step.
  void layer_forward(int index, Tensor x, Tensor positions, Tensor kv_lens, const TokenBatch& batch, KvCache& cache,
                     Stream s) const;
  void attend(Tensor out, Tensor q, Tensor k, Tensor v, Tensor kv_lens, int layer, const TokenBatch& batch,
              KvCache& cache, Stream s) const;

  TextConfig config_;
  distributed::Communicator* tp_ = nullptr;  // null: no tensor parallelism
  int local_heads_ = 0, local_kv_heads_ = 0, local_ffn_ = 0;
  int first_layer_ = 0;
  int64_t vocab_start_ = 0;   // first vocabulary id of this rank's shard
  OwnedTensor embed_tokens_;  // (V / tp, H), first stage only
  OwnedTensor lm_head_;       // (V / tp, H), last stage only (a copy of the embedding shard when tied)
  std::vector<DecoderLayer> layers_;
  RmsNorm norm_;
  OwnedTensor inv_freq_;      // (head_dim / 2) f32
};

}  // namespace plm::model
