// The attention between a decoder layer's q/k/v projections and o_proj, as an interface: training
// attends within each packed sequence (PackedCausalAttention, which also has the backward); inference
// appends k/v to a KV cache and attends to it (KvCacheAttention).
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "model/text/kv_cache.h"

namespace plm::model {

class AttentionCore {
 public:
  virtual ~AttentionCore() = default;
  // q: (T, h, Dh), k/v: (T, k, Dh), after RoPE -> out: (T, h, Dh). lse: (T * h) f32 saved for backward,
  // or undefined.
  virtual void forward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, int layer, Stream s) const = 0;
};

// Causal attention over packed sequences that start at position 0 (a training micro-batch): sequence i
// is rows [offset_i, offset_i + lengths[i]) of T. lse of sequence i is the contiguous block
// (1, h, lengths[i]) at element offset_i * h.
class PackedCausalAttention final : public AttentionCore {
 public:
  explicit PackedCausalAttention(std::vector<int64_t> lengths) : lengths_(std::move(lengths)) {}
  const std::vector<int64_t>& lengths() const { return lengths_; }

  void forward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, int layer, Stream s) const override;
  // dq (=), dk, dv (=) from dout and the forward's q, k, v, out, lse.
  void backward(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out, Tensor lse,
                Stream s) const;

 private:
  std::vector<int64_t> lengths_;
};

// Inference: writes the step's k, v rows into the cache (its blocks, kv_cache.h), then attends each chunk's
// queries to its sequence's cached keys, causally. lse is not produced.
class KvCacheAttention final : public AttentionCore {
 public:
  KvCacheAttention(KvCache& cache, const KvStep& step) : cache_(cache), step_(step) {}

  void forward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, int layer, Stream s) const override;

 private:
  KvCache& cache_;
  const KvStep& step_;
};

}  // namespace plm::model
