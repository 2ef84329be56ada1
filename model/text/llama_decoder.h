// The Llama decoder of PLM (spec/plm_spec.md §2.7): token embedding, layers of
// x += o(attn(rope(q, k), v)) over RMSNorm, x += down(silu(gate) * up) over RMSNorm, final RMSNorm and the
// (tied or untied) LM head. Works on packed tokens of several sequences (TokenBatch) with a preallocated
// KV cache; layer ranges [first, last) are the entry points pipeline stages use. Forward-only.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "model/config.h"
#include "model/layers/linear.h"
#include "model/layers/norms.h"
#include "model/text/kv_cache.h"
#include "model/text/token_batch.h"
#include "model/trace.h"
#include "model/weights/weight_loader.h"

namespace plm::model {

struct DecoderLayer {
  RmsNorm input_norm, post_attention_norm;  // (H)
  Linear q_proj;     // (heads * head_dim, H)
  Linear k_proj;     // (kv_heads * head_dim, H)
  Linear v_proj;     // (kv_heads * head_dim, H)
  Linear o_proj;     // (H, heads * head_dim)
  Linear gate_proj;  // (F, H)
  Linear up_proj;    // (F, H)
  Linear down_proj;  // (H, F)
};

class LlamaDecoder {
 public:
  // lm_head_name: the tensor holding the output projection (hf_names.h lm_head_tensor_name).
  static absl::StatusOr<LlamaDecoder> load(const TextConfig& config, const WeightLoader& loader,
                                           const std::string& lm_head_name);

  const TextConfig& config() const { return config_; }
  int num_layers() const { return static_cast<int>(layers_.size()); }

  // ids: (T) i32 on the model's device -> out: (T, H).
  void embed(Tensor out, Tensor ids, Stream s = {}) const;
  // Runs layers [first, last) over hidden (T, H) in place, reading and extending the cache for the
  // batch's chunks. positions: (T) i32 on the device (start + i for each chunk's tokens).
  void forward_layers(Tensor hidden, Tensor positions, const TokenBatch& batch, KvCache& cache, int first,
                      int last, Tracer* tracer, Stream s = {}) const;
  // hidden rows (R, H) -> final RMSNorm -> normed (R, H) and logits (R, V) (logits may be undefined).
  void head(Tensor logits, Tensor normed, Tensor hidden, Stream s = {}) const;

 private:
  void layer_forward(int index, Tensor x, Tensor positions, const TokenBatch& batch, KvCache& cache,
                     Stream s) const;
  void attend(Tensor out, Tensor q, Tensor k, Tensor v, int layer, const TokenBatch& batch, KvCache& cache,
              Stream s) const;

  TextConfig config_;
  OwnedTensor embed_tokens_;  // (V, H)
  OwnedTensor lm_head_;       // (V, H); empty when tied to embed_tokens_
  std::vector<DecoderLayer> layers_;
  RmsNorm norm_;
  OwnedTensor inv_freq_;      // (head_dim / 2) f32
};

}  // namespace plm::model
