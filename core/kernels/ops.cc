// Dispatch: every op checks that its defined tensors share one device, then runs that backend.
#include "core/kernels/ops.h"

#include <initializer_list>

#include "core/kernels/backends.h"

namespace plm {

namespace {

// Returns true when the call runs on CUDA.
bool on_cuda(const char* op, std::initializer_list<Tensor> tensors) {
  const Tensor* first = nullptr;
  for (const Tensor& t : tensors) {
    if (!t.defined()) continue;
    if (first == nullptr) {
      first = &t;
      continue;
    }
    PLM_CHECK(t.device() == first->device())
        << op << ": tensors on different devices (" << first->describe() << " and " << t.describe() << ")";
  }
  PLM_CHECK(first != nullptr) << op << ": no tensor given";
  return first->is_cuda();
}

}  // namespace

#define PLM_DISPATCH(op, tensors, ...)              \
  if (on_cuda(#op, tensors)) {                      \
    cuda::op(__VA_ARGS__);                          \
  } else {                                          \
    cpu::op(__VA_ARGS__);                           \
  }

// Brace lists cannot pass through a macro argument unparenthesised.
#define PLM_TENSORS(...) std::initializer_list<Tensor>{__VA_ARGS__}

void matmul(Tensor c, Tensor a, Tensor b, const MatmulOptions& o, Stream s) {
  PLM_DISPATCH(matmul, PLM_TENSORS(c, a, b, o.bias), c, a, b, o, s)
}

void embedding_forward(Tensor out, Tensor ids, Tensor table, int64_t vocab_start, Stream s) {
  PLM_DISPATCH(embedding_forward, PLM_TENSORS(out, ids, table), out, ids, table, vocab_start, s)
}
void embedding_backward(Tensor dtable, Tensor ids, Tensor dout, int64_t vocab_start, Stream s) {
  PLM_DISPATCH(embedding_backward, PLM_TENSORS(dtable, ids, dout), dtable, ids, dout, vocab_start, s)
}

void rmsnorm_forward(Tensor y, Tensor rstd, Tensor x, Tensor w, float eps, Stream s) {
  PLM_DISPATCH(rmsnorm_forward, PLM_TENSORS(y, rstd, x, w), y, rstd, x, w, eps, s)
}
void rmsnorm_backward(Tensor dx, Tensor dw, Tensor dy, Tensor x, Tensor w, Tensor rstd, Stream s) {
  PLM_DISPATCH(rmsnorm_backward, PLM_TENSORS(dx, dw, dy, x, w, rstd), dx, dw, dy, x, w, rstd, s)
}
void layernorm_forward(Tensor y, Tensor mean, Tensor rstd, Tensor x, Tensor w, Tensor b, float eps, Stream s) {
  PLM_DISPATCH(layernorm_forward, PLM_TENSORS(y, mean, rstd, x, w, b), y, mean, rstd, x, w, b, eps, s)
}
void layernorm_backward(Tensor dx, Tensor dw, Tensor db, Tensor dy, Tensor x, Tensor w, Tensor mean,
                        Tensor rstd, Stream s) {
  PLM_DISPATCH(layernorm_backward, PLM_TENSORS(dx, dw, db, dy, x, w, mean, rstd), dx, dw, db, dy, x, w, mean,
               rstd, s)
}

void rope_forward(Tensor y, Tensor x, Tensor positions, Tensor inv_freq, Stream s) {
  PLM_DISPATCH(rope_forward, PLM_TENSORS(y, x, positions, inv_freq), y, x, positions, inv_freq, s)
}
void rope_backward(Tensor dx, Tensor dy, Tensor positions, Tensor inv_freq, Stream s) {
  PLM_DISPATCH(rope_backward, PLM_TENSORS(dx, dy, positions, inv_freq), dx, dy, positions, inv_freq, s)
}
void vision_rope_forward(Tensor y, Tensor x, Tensor cos, Tensor sin, int num_prefix_tokens, Stream s) {
  PLM_DISPATCH(vision_rope_forward, PLM_TENSORS(y, x, cos, sin), y, x, cos, sin, num_prefix_tokens, s)
}
void vision_rope_backward(Tensor dx, Tensor dy, Tensor cos, Tensor sin, int num_prefix_tokens, Stream s) {
  PLM_DISPATCH(vision_rope_backward, PLM_TENSORS(dx, dy, cos, sin), dx, dy, cos, sin, num_prefix_tokens, s)
}

void attention_forward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, const AttentionOptions& o,
                       Stream s) {
  PLM_DISPATCH(attention_forward, PLM_TENSORS(out, lse, q, k, v, o.kv_lens, o.segment_ids), out, lse, q, k, v,
               o, s)
}
void attention_backward(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out,
                        Tensor lse, const AttentionOptions& o, Stream s) {
  PLM_DISPATCH(attention_backward, PLM_TENSORS(dq, dk, dv, dout, q, k, v, out, lse, o.kv_lens, o.segment_ids),
               dq, dk, dv, dout, q, k, v, out, lse, o, s)
}

void paged_attention_forward(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache, const PagedAttentionBatch& b,
                             Stream s) {
  PLM_DISPATCH(paged_attention_forward,
               PLM_TENSORS(out, q, k_cache, v_cache, b.block_tables, b.query_starts, b.kv_lens), out, q, k_cache,
               v_cache, b, s)
}
void paged_kv_write(Tensor k_cache, Tensor v_cache, Tensor k, Tensor v, Tensor slots, Stream s) {
  PLM_DISPATCH(paged_kv_write, PLM_TENSORS(k_cache, v_cache, k, v, slots), k_cache, v_cache, k, v, slots, s)
}

void swiglu_forward(Tensor out, Tensor gate, Tensor up, Stream s) {
  PLM_DISPATCH(swiglu_forward, PLM_TENSORS(out, gate, up), out, gate, up, s)
}
void swiglu_backward(Tensor dgate, Tensor dup, Tensor dout, Tensor gate, Tensor up, Stream s) {
  PLM_DISPATCH(swiglu_backward, PLM_TENSORS(dgate, dup, dout, gate, up), dgate, dup, dout, gate, up, s)
}
void gelu_forward(Tensor y, Tensor x, Stream s) { PLM_DISPATCH(gelu_forward, PLM_TENSORS(y, x), y, x, s) }
void gelu_backward(Tensor dx, Tensor dy, Tensor x, Stream s) {
  PLM_DISPATCH(gelu_backward, PLM_TENSORS(dx, dy, x), dx, dy, x, s)
}
void softmax_forward(Tensor y, Tensor x, Stream s) { PLM_DISPATCH(softmax_forward, PLM_TENSORS(y, x), y, x, s) }
void softmax_backward(Tensor dx, Tensor dy, Tensor y, Stream s) {
  PLM_DISPATCH(softmax_backward, PLM_TENSORS(dx, dy, y), dx, dy, y, s)
}

void cross_entropy_chunk_forward(Tensor running_max, Tensor running_sum, Tensor target_logit, Tensor logits,
                                 Tensor targets, int64_t chunk_start, Stream s) {
  PLM_DISPATCH(cross_entropy_chunk_forward, PLM_TENSORS(running_max, running_sum, target_logit, logits, targets),
               running_max, running_sum, target_logit, logits, targets, chunk_start, s)
}
void cross_entropy_finalize(Tensor loss, Tensor lse, Tensor running_max, Tensor running_sum, Tensor target_logit,
                            Tensor targets, int32_t ignore_index, Stream s) {
  PLM_DISPATCH(cross_entropy_finalize, PLM_TENSORS(loss, lse, running_max, running_sum, target_logit, targets),
               loss, lse, running_max, running_sum, target_logit, targets, ignore_index, s)
}
void cross_entropy_chunk_backward(Tensor dlogits, Tensor logits, Tensor lse, Tensor targets, Tensor dloss,
                                  int64_t chunk_start, int32_t ignore_index, Stream s) {
  PLM_DISPATCH(cross_entropy_chunk_backward, PLM_TENSORS(dlogits, logits, lse, targets, dloss), dlogits, logits,
               lse, targets, dloss, chunk_start, ignore_index, s)
}

void adamw_step(Tensor master, Tensor m, Tensor v, Tensor grad, Tensor param_out, const AdamWOptions& o,
                Stream s) {
  PLM_DISPATCH(adamw_step, PLM_TENSORS(master, m, v, grad, param_out), master, m, v, grad, param_out, o, s)
}

void adaptive_avg_pool2d_forward(Tensor out, Tensor x, int grid, int out_grid, Stream s) {
  PLM_DISPATCH(adaptive_avg_pool2d_forward, PLM_TENSORS(out, x), out, x, grid, out_grid, s)
}
void adaptive_avg_pool2d_backward(Tensor dx, Tensor dout, int grid, int out_grid, Stream s) {
  PLM_DISPATCH(adaptive_avg_pool2d_backward, PLM_TENSORS(dx, dout), dx, dout, grid, out_grid, s)
}
void im2col_patches(Tensor patches, Tensor images, int patch_size, Stream s) {
  PLM_DISPATCH(im2col_patches, PLM_TENSORS(patches, images), patches, images, patch_size, s)
}

void add(Tensor out, Tensor a, Tensor b, Stream s) { PLM_DISPATCH(add, PLM_TENSORS(out, a, b), out, a, b, s) }
void mul(Tensor out, Tensor a, Tensor b, Stream s) { PLM_DISPATCH(mul, PLM_TENSORS(out, a, b), out, a, b, s) }
void divide(Tensor out, Tensor a, Tensor b, Stream s) { PLM_DISPATCH(divide, PLM_TENSORS(out, a, b), out, a, b, s) }
void scale(Tensor out, Tensor x, float alpha, Stream s) {
  PLM_DISPATCH(scale, PLM_TENSORS(out, x), out, x, alpha, s)
}
void mul_rowwise(Tensor out, Tensor x, Tensor w, Stream s) {
  PLM_DISPATCH(mul_rowwise, PLM_TENSORS(out, x, w), out, x, w, s)
}
void fill(Tensor out, float value, Stream s) { PLM_DISPATCH(fill, PLM_TENSORS(out), out, value, s) }
void cast(Tensor out, Tensor x, Stream s) { PLM_DISPATCH(cast, PLM_TENSORS(out, x), out, x, s) }
void sum_rows(Tensor out, Tensor x, bool accumulate, Stream s) {
  PLM_DISPATCH(sum_rows, PLM_TENSORS(out, x), out, x, accumulate, s)
}
void sum(Tensor out, Tensor x, Stream s) { PLM_DISPATCH(sum, PLM_TENSORS(out, x), out, x, s) }
void sum_squares(Tensor out, Tensor x, Stream s) { PLM_DISPATCH(sum_squares, PLM_TENSORS(out, x), out, x, s) }
void row_norms(Tensor out, Tensor x, Stream s) { PLM_DISPATCH(row_norms, PLM_TENSORS(out, x), out, x, s) }

void dropout_forward(Tensor y, Tensor x, Tensor row_keys, uint64_t salt, float p, Stream s) {
  PLM_DISPATCH(dropout_forward, PLM_TENSORS(y, x, row_keys), y, x, row_keys, salt, p, s)
}

}  // namespace plm
