#include "model/layers/lora.h"

#include "core/kernels/ops.h"
#include "model/layers/linear.h"

namespace plm::model {

namespace {

// The temporaries of one adapted projection for `rows` input rows; the backward's set contains the
// forward's. alloc: an Arena or an ArenaSizer.
struct LoraScratch {
  Tensor dropped;   // (rows, in) D(x), with dropout only; the forward turns it into x − D(x) for DoRA
  Tensor u;         // (rows, r) D(x) Aᵀ
  Tensor du;        // (rows, r) backward: s · dz B
  Tensor merged;    // (out, in) W + s·B·A, DoRA only
  Tensor norm;      // (out) ‖W + s·B·A‖ per row, DoRA only
  Tensor g;         // (out) m / norm, DoRA only
  Tensor dm;        // (out) backward: this call's magnitude gradient, DoRA only
  Tensor z;         // (rows, out) DoRA with dropout (forward), DoRA (backward): D(x) Wᵀ + s u Bᵀ
  Tensor dz;        // (rows, out) backward, DoRA only: g ⊙ dy
  Tensor ddropped;  // (rows, in) backward with dropout: the gradient w.r.t. D(x)

  template <typename Alloc>
  static LoraScratch allocate(Alloc& alloc, const Linear& layer, int64_t rows, bool dropout, bool backward) {
    const LoraAdapter& lora = layer.lora;
    const int64_t in = layer.in_features(), out = layer.out_features();
    const DType dtype = layer.weight.dtype();
    LoraScratch t;
    if (dropout) t.dropped = alloc.alloc({rows, in}, dtype);
    t.u = alloc.alloc({rows, lora.rank}, dtype);
    if (backward) t.du = alloc.alloc({rows, lora.rank}, dtype);
    if (lora.dora) {
      t.merged = alloc.alloc({out, in}, dtype);
      t.norm = alloc.alloc({out}, dtype);
      t.g = alloc.alloc({out}, dtype);
      if (backward) t.dm = alloc.alloc({out}, dtype);
      if (dropout || backward) t.z = alloc.alloc({rows, out}, dtype);
      if (backward) t.dz = alloc.alloc({rows, out}, dtype);
    }
    if (dropout && backward) t.ddropped = alloc.alloc({rows, in}, dtype);
    return t;
  }
};

bool dropout_active(const Linear& layer, const LoraPass& pass, int64_t rows) {
  if (layer.lora.dropout <= 0.0f || !pass.row_keys.defined()) return false;
  PLM_CHECK_EQ(pass.row_keys.size(0), rows) << "one dropout key per input row";
  return true;
}

// norm = ‖W + s·B·A‖ per output row (merged holds W + s·B·A) and g = m / norm.
void dora_scale(const Linear& layer, const LoraScratch& t, Stream s) {
  const LoraAdapter& lora = layer.lora;
  copy_tensor(t.merged, layer.weight, s);
  matmul(t.merged, lora.b, lora.a, {.alpha = lora.scaling, .beta = 1.0f}, s);
  row_norms(t.norm, t.merged, s);
  divide(t.g, lora.magnitude, t.norm, s);
}

// The adapter's input: D(x) into t.dropped, or x itself.
Tensor adapter_input(const Linear& layer, const LoraScratch& t, Tensor x, bool dropout, const LoraPass& pass,
                     Stream s) {
  if (!dropout) return x;
  dropout_forward(t.dropped, x, pass.row_keys, layer.lora.site, layer.lora.dropout, s);
  return t.dropped;
}

}  // namespace

void lora_forward(const Linear& layer, Tensor y, Tensor x, const LoraPass& pass, Stream s) {
  const LoraAdapter& lora = layer.lora;
  PLM_CHECK(pass.scratch != nullptr) << "an adapted projection needs scratch memory";
  PLM_CHECK(!lora.dora || !layer.bias.defined()) << "DoRA on a projection with a bias";
  const int64_t in = layer.in_features(), out = layer.out_features(), rows = x.numel() / in;
  const Tensor xr = x.reshape({rows, in}), yr = y.reshape({rows, out});
  const bool dropout = dropout_active(layer, pass, rows);
  Arena& arena = *pass.scratch;
  const size_t mark = arena.mark();
  const LoraScratch t = LoraScratch::allocate(arena, layer, rows, dropout, /*backward=*/false);
  const Tensor input = adapter_input(layer, t, xr, dropout, pass, s);
  matmul(t.u, input, lora.a, {.trans_b = true, .compute = layer.compute}, s);
  if (!lora.dora) {
    matmul(yr, xr, layer.weight, {.trans_b = true, .bias = layer.bias, .compute = layer.compute}, s);
    matmul(yr, t.u, lora.b, {.trans_b = true, .alpha = lora.scaling, .beta = 1.0f, .compute = layer.compute}, s);
  } else if (!dropout) {
    // peft reuses the base output: y = x Wᵀ + (g − 1) ⊙ x Wᵀ + g ⊙ s u Bᵀ = g ⊙ (x Wᵀ + s u Bᵀ).
    dora_scale(layer, t, s);
    matmul(yr, xr, layer.weight, {.trans_b = true, .compute = layer.compute}, s);
    matmul(yr, t.u, lora.b, {.trans_b = true, .alpha = lora.scaling, .beta = 1.0f, .compute = layer.compute}, s);
    mul_rowwise(yr, yr, t.g, s);
  } else {
    // y = (x − D(x)) Wᵀ + g ⊙ (D(x) Wᵀ + s u Bᵀ).
    dora_scale(layer, t, s);
    matmul(t.z, t.dropped, layer.weight, {.trans_b = true, .compute = layer.compute}, s);
    matmul(t.z, t.u, lora.b, {.trans_b = true, .alpha = lora.scaling, .beta = 1.0f, .compute = layer.compute}, s);
    mul_rowwise(t.z, t.z, t.g, s);
    scale(t.dropped, t.dropped, -1.0f, s);
    add(t.dropped, xr, t.dropped, s);
    matmul(yr, t.dropped, layer.weight, {.trans_b = true, .compute = layer.compute}, s);
    add(yr, yr, t.z, s);
  }
  arena.release_to(mark);
}

void lora_backward(const Linear& layer, Tensor dx, const Linear& grad, Tensor dy, Tensor x,
                   const LinearBackwardOptions& options, const LoraPass& pass, Stream s) {
  const LoraAdapter& lora = layer.lora;
  const LoraAdapter& dlora = grad.lora;
  PLM_CHECK(pass.scratch != nullptr) << "an adapted projection needs scratch memory";
  PLM_CHECK(!grad.weight.defined()) << "the base weight of an adapted projection is frozen";
  const int64_t in = layer.in_features(), out = layer.out_features(), rows = x.numel() / in;
  const Tensor xr = x.reshape({rows, in}), dyr = dy.reshape({rows, out});
  const bool dropout = dropout_active(layer, pass, rows);
  Arena& arena = *pass.scratch;
  const size_t mark = arena.mark();
  const LoraScratch t = LoraScratch::allocate(arena, layer, rows, dropout, /*backward=*/true);
  const Tensor input = adapter_input(layer, t, xr, dropout, pass, s);
  matmul(t.u, input, lora.a, {.trans_b = true, .compute = layer.compute}, s);

  // dz: the gradient w.r.t. the adapter branch's pre-scale output (DoRA: g ⊙ dy; LoRA: dy).
  Tensor dz = dyr;
  if (lora.dora) {
    dora_scale(layer, t, s);
    if (dlora.magnitude.defined()) {
      // dm = Σ_rows dy ⊙ (D(x) Wᵀ + s u Bᵀ) / norm: the norm is a constant (detached).
      matmul(t.z, input, layer.weight, {.trans_b = true, .compute = layer.compute}, s);
      matmul(t.z, t.u, lora.b, {.trans_b = true, .alpha = lora.scaling, .beta = 1.0f, .compute = layer.compute}, s);
      mul(t.z, t.z, dyr, s);
      sum_rows(t.dm, t.z, /*accumulate=*/false, s);
      divide(t.dm, t.dm, t.norm, s);
      add(dlora.magnitude, dlora.magnitude, t.dm, s);
    }
    mul_rowwise(t.dz, dyr, t.g, s);
    dz = t.dz;
  }
  if (dlora.b.defined()) {
    matmul(dlora.b, dz, t.u, {.trans_a = true, .alpha = lora.scaling, .beta = 1.0f, .compute = layer.compute}, s);
  }
  matmul(t.du, dz, lora.b, {.alpha = lora.scaling, .compute = layer.compute}, s);
  if (dlora.a.defined()) matmul(dlora.a, t.du, input, {.trans_a = true, .beta = 1.0f, .compute = layer.compute}, s);
  if (grad.bias.defined()) sum_rows(grad.bias, dyr, /*accumulate=*/true, s);

  if (dx.defined()) {
    const Tensor dxr = dx.reshape({rows, in});
    const float beta = options.accumulate_dx ? 1.0f : 0.0f;
    if (!dropout) {
      // Both branches read x: dx = dz W + du A (DoRA's base output is inside the scaled branch).
      matmul(dxr, dz, layer.weight, {.beta = beta, .compute = layer.compute}, s);
      matmul(dxr, t.du, lora.a, {.beta = 1.0f, .compute = layer.compute}, s);
    } else {
      // x Wᵀ reads x; the adapter branch (and DoRA's −D(x) Wᵀ + g ⊙ D(x) Wᵀ) reads D(x).
      matmul(dxr, dyr, layer.weight, {.beta = beta, .compute = layer.compute}, s);
      matmul(t.ddropped, t.du, lora.a, {.compute = layer.compute}, s);
      if (lora.dora) {
        matmul(t.ddropped, dz, layer.weight, {.beta = 1.0f, .compute = layer.compute}, s);
        matmul(t.ddropped, dyr, layer.weight, {.alpha = -1.0f, .beta = 1.0f, .compute = layer.compute}, s);
      }
      dropout_forward(t.ddropped, t.ddropped, pass.row_keys, lora.site, lora.dropout, s);
      add(dxr, dxr, t.ddropped, s);
    }
  }
  arena.release_to(mark);
}

size_t lora_scratch_bytes(const Linear& layer, int64_t rows) {
  if (!layer.lora.attached()) return 0;
  ArenaSizer sizer;
  LoraScratch::allocate(sizer, layer, rows, layer.lora.dropout > 0.0f, /*backward=*/true);
  return sizer.bytes();
}

void lora_merged_weight(Tensor out, const Linear& layer, Stream s) {
  const LoraAdapter& lora = layer.lora;
  PLM_CHECK(lora.attached()) << "merging a projection without an adapter";
  copy_tensor(out, layer.weight, s);
  matmul(out, lora.b, lora.a, {.alpha = lora.scaling, .beta = 1.0f}, s);
  if (!lora.dora) return;
  // Row o scaled by g[o] = m[o] / ‖row o‖: an element-wise product with the outer product g 1ᵀ.
  const int64_t rows = out.size(0), cols = out.size(1);
  const OwnedTensor norm({rows}, out.dtype(), out.device()), g({rows, 1}, out.dtype(), out.device());
  const OwnedTensor ones({1, cols}, out.dtype(), out.device()), factor({rows, cols}, out.dtype(), out.device());
  row_norms(norm, out, s);
  divide(g.view().reshape({rows}), lora.magnitude, norm, s);
  fill(ones, 1.0f, s);
  matmul(factor, g, ones, {}, s);
  mul(out, out, factor, s);
}

}  // namespace plm::model
