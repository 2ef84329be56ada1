#include "model/text/attention_core.h"

#include "core/kernels/ops.h"

namespace plm::model {

namespace {

// Rows [row, row + length) of a (T, heads, Dh) tensor as one batch entry (1, length, heads, Dh).
Tensor sequence(Tensor t, int64_t row, int64_t length) {
  return t.slice(0, row, row + length).reshape({1, length, t.size(1), t.size(2)});
}

Tensor sequence_lse(Tensor lse, int64_t row, int64_t length, int64_t heads) {
  return lse.slice(0, row * heads, (row + length) * heads).reshape({1, heads, length});
}

}  // namespace

void PackedCausalAttention::forward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, int /*layer*/,
                                    Stream s) const {
  const int64_t heads = q.size(1);
  int64_t row = 0;
  for (const int64_t length : lengths_) {
    attention_forward(sequence(out, row, length), lse.defined() ? sequence_lse(lse, row, length, heads) : Tensor(),
                      sequence(q, row, length), sequence(k, row, length), sequence(v, row, length),
                      {.causal = true}, s);
    row += length;
  }
  PLM_CHECK_EQ(row, q.size(0)) << "packed sequence lengths do not cover the batch";
}

void PackedCausalAttention::backward(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v,
                                     Tensor out, Tensor lse, Stream s) const {
  const int64_t heads = q.size(1);
  int64_t row = 0;
  for (const int64_t length : lengths_) {
    attention_backward(sequence(dq, row, length), sequence(dk, row, length), sequence(dv, row, length),
                       sequence(dout, row, length), sequence(q, row, length), sequence(k, row, length),
                       sequence(v, row, length), sequence(out, row, length), sequence_lse(lse, row, length, heads),
                       {.causal = true}, s);
    row += length;
  }
}

void KvCacheAttention::forward(Tensor out, Tensor /*lse*/, Tensor q, Tensor k, Tensor v, int layer, Stream s) const {
  paged_kv_write(cache_.keys(layer), cache_.values(layer), k, v, step_.slots, s);
  PagedAttentionBatch batch = step_.batch();
  // A bf16 cache on CPU is the bf16 compute mode's (PlmModel::kv_dtype): attend in bf16 as its GEMMs compute.
  batch.compute = cache_.dtype();
  paged_attention_forward(out, q, cache_.keys(layer), cache_.values(layer), batch, s);
}

}  // namespace plm::model
