#include "bench/kernel_bench.h"

#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench/cpu_time.h"
#include "core/machine_peak.h"
#include "core/cuda/runtime.h"
#include "core/kernels/cpu/attention_reference.h"
#include "core/kernels/cpu/gemm_bf16_packed.h"
#include "core/kernels/ops.h"
#include "core/kernels/rope_tables.h"

namespace plm::bench {

namespace {

// One benchmarked call. flops or bytes (or both) give the achieved rates; the larger ratio to peak
// says which limit the kernel is up against.
struct BenchCase {
  std::string name;
  std::string shape;
  double flops = 0;
  double bytes = 0;
  std::function<void()> run;
  bool bf16_math = false;  // rated against the bf16 compute peak
};

// Keeps every tensor a case touches alive for the whole run.
class TensorPool {
 public:
  TensorPool(Device device, DType activation_dtype) : device_(device), dtype_(activation_dtype) {}

  // Activation-dtype tensor filled with a small constant.
  Tensor act(Shape shape, float value = 0.01f) { return make(shape, dtype_, value); }
  Tensor f32(Shape shape, float value = 0.01f) { return make(shape, DType::kF32, value); }
  // bf16 weights for the CPU inference layout (fill is f32-only on the CPU, so cast an f32 fill).
  Tensor bf16_weights(Shape shape, float value = 0.01f) {
    Tensor filled = f32(shape, value);
    owned_.emplace_back(shape, DType::kBF16, device_);
    cast(owned_.back(), filled);
    return owned_.back();
  }
  Tensor i32(Shape shape, int32_t modulo) {
    OwnedTensor host(shape, DType::kI32);
    for (int64_t i = 0; i < host.numel(); ++i) host.data_as<int32_t>()[i] = static_cast<int32_t>(i % modulo);
    owned_.push_back(to_device(host, device_));
    return owned_.back();
  }
  Tensor i32_values(Shape shape, const std::vector<int32_t>& values) {
    OwnedTensor host = host_i32(values);
    host.reshape(shape);
    owned_.push_back(to_device(host, device_));
    return owned_.back();
  }
    Tensor from_host(const std::vector<float>& values) {
    OwnedTensor host({static_cast<int64_t>(values.size())}, DType::kF32);
    std::copy(values.begin(), values.end(), host.data_as<float>());
    owned_.push_back(to_device(host, device_));
    return owned_.back();
  }
  DType dtype() const { return dtype_; }
  size_t act_bytes() const { return dtype_size(dtype_); }

 private:
  Tensor make(Shape shape, DType dtype, float value) {
    owned_.emplace_back(shape, dtype, device_);
    fill(owned_.back(), value);
    return owned_.back();
  }
  Device device_;
  DType dtype_;
  std::vector<OwnedTensor> owned_;
};

std::vector<BenchCase> make_cases(TensorPool& p, bool quick) {
  // PLM-1B shapes: text hidden 2048, MLP 8192, 32 q / 8 kv heads of 64; vision width 1024, MLP 4096,
  // 1025 tokens per tile, 16 heads of 64.
  const int64_t tokens = quick ? 128 : 512;
  const int64_t hidden = 2048, mlp = 8192, head_dim = 64, q_heads = 32, kv_heads = 8;
  const int64_t vis_tokens = 1025, vis_width = 1024, vis_heads = 16;
  const double a = static_cast<double>(p.act_bytes());
  std::vector<BenchCase> cases;

  {  // Prefill GEMM: x (tokens, hidden) · W_up^T (mlp, hidden).
    Tensor x = p.act({tokens, hidden}), w = p.act({mlp, hidden}), y = p.act({tokens, mlp});
    cases.push_back({"matmul", "prefill " + std::to_string(tokens) + "x2048 . (8192x2048)^T",
                     2.0 * tokens * hidden * mlp, a * (tokens * hidden + mlp * hidden + tokens * mlp),
                     [=] { matmul(y, x, w, {.trans_b = true}); }});
  }
  {  // Decode GEMV: memory-bound on the weight.
    Tensor x = p.act({1, hidden}), w = p.act({mlp, hidden}), y = p.act({1, mlp});
    cases.push_back({"matmul", "decode 1x2048 . (8192x2048)^T", 2.0 * hidden * mlp, a * mlp * hidden,
                     [=] { matmul(y, x, w, {.trans_b = true}); }});
  }
  if (p.dtype() == DType::kF32) {  // CPU inference: f32 activations, bf16 weights kept bf16 (nn.Linear layout)
    const double w_bytes = 2.0 * mlp * hidden;
    Tensor x = p.act({tokens, hidden}), w = p.bf16_weights({mlp, hidden}), y = p.act({tokens, mlp});
    cases.push_back({"matmul", "bf16-weights prefill " + std::to_string(tokens) + "x2048 . (8192x2048)^T",
                     2.0 * tokens * hidden * mlp, w_bytes + a * (tokens * hidden + tokens * mlp),
                     [=] { matmul(y, x, w, {.trans_b = true}); }});
    for (const int64_t rows : {int64_t{1}, int64_t{8}}) {
      Tensor xr = p.act({rows, hidden}), yr = p.act({rows, mlp});
      cases.push_back({"matmul", "bf16-weights decode " + std::to_string(rows) + "x2048 . (8192x2048)^T",
                       2.0 * rows * hidden * mlp, w_bytes + a * rows * (hidden + mlp),
                       [=] { matmul(yr, xr, w, {.trans_b = true}); }});
    }
    // The bf16 compute mode (activations rounded to bf16, vdpbf16ps where the CPU has it).
    for (const int64_t rows : {tokens, int64_t{64}, int64_t{8}, int64_t{1}}) {
      Tensor xr = p.act({rows, hidden}), yr = p.act({rows, mlp});
      cases.push_back({"matmul", "bf16-compute " + std::to_string(rows) + "x2048 . (8192x2048)^T",
                       2.0 * rows * hidden * mlp, w_bytes + a * rows * (hidden + mlp),
                       [=] { matmul(yr, xr, w, {.trans_b = true, .compute = DType::kBF16}); }, true});
    }
    // Training's bf16 compute mode (dtype: bf16): f32 master weights, both operands rounded (sgemm_bf16), in
    // the three layouts of Linear: y = x W^T, dx = dy W, dW += dy^T x.
    {
      Tensor wf = p.act({mlp, hidden}), dy = p.act({tokens, mlp}), dx = p.act({tokens, hidden});
      Tensor dw = p.act({mlp, hidden}), yf = p.act({tokens, mlp});
      const double flops = 2.0 * tokens * hidden * mlp;
      const double bytes = a * (tokens * hidden + mlp * hidden + tokens * mlp);
      cases.push_back({"matmul", "bf16-train y = x W^T " + std::to_string(tokens) + "x2048 . (8192x2048)^T", flops,
                       bytes, [=] { matmul(yf, x, wf, {.trans_b = true, .compute = DType::kBF16}); }, true});
      cases.push_back({"matmul", "bf16-train dx = dy W " + std::to_string(tokens) + "x8192 . 8192x2048", flops,
                       bytes, [=] { matmul(dx, dy, wf, {.compute = DType::kBF16}); }, true});
      cases.push_back({"matmul", "bf16-train dW += dy^T x (8192x" + std::to_string(tokens) + ") . x", flops, bytes,
                       [=] { matmul(dw, dy, x, {.trans_a = true, .beta = 1.0f, .compute = DType::kBF16}); }, true});
    }
    // One weight (32 or 64 MiB) stays in a large L3 between calls; a model's 2.5 GB cannot. Cycling through
    // enough weights makes every call read DRAM, as a decode step does.
    const int64_t num_weights = quick ? 4 : 24;
    for (const DType w_dtype : {DType::kBF16, DType::kF32}) {
      std::vector<Tensor> weights;
      for (int64_t i = 0; i < num_weights; ++i) {
        weights.push_back(w_dtype == DType::kBF16 ? p.bf16_weights({mlp, hidden}) : p.f32({mlp, hidden}));
      }
      auto next = std::make_shared<size_t>(0);
      Tensor x1 = p.act({1, hidden}), y1 = p.act({1, mlp});
      cases.push_back({"matmul",
                       std::string(dtype_name(w_dtype)) + "-w decode 1x2048 . (8192x2048)^T, " +
                           std::to_string(num_weights) + " cycled",
                       2.0 * hidden * mlp, static_cast<double>(dtype_size(w_dtype)) * mlp * hidden + a * (hidden + mlp),
                       [=] { matmul(y1, x1, weights[(*next)++ % weights.size()], {.trans_b = true}); }});
      if (w_dtype != DType::kBF16 || p.dtype() != DType::kF32 || !cpu::cpu_has_avx512_bf16()) continue;
      // CPU bf16 inference's decode: the dot tiles on row-major weights, and the packed tiles on the weight
      // panels inference packs at load (one panel stream per thread).
      const std::string shape = "decode 1x2048 . (8192x2048)^T, " + std::to_string(num_weights) + " cycled";
      const double bytes = 2.0 * mlp * hidden + a * (hidden + mlp);
      cases.push_back({"matmul", "bf16-compute " + shape, 2.0 * hidden * mlp, bytes, [=] {
                         matmul(y1, x1, weights[(*next)++ % weights.size()], {.trans_b = true, .compute = DType::kBF16});
                       }, true});
      std::vector<Tensor> panels;
      for (int64_t i = 0; i < num_weights; ++i) {
        panels.push_back(p.bf16_weights({mlp, hidden}));
        cpu::pack_weight_panels(panels.back().data_as<bf16>(), mlp, hidden);
      }
      cases.push_back({"matmul", "bf16-compute weight panels " + shape, 2.0 * hidden * mlp, bytes, [=] {
                         matmul(y1, x1, panels[(*next)++ % panels.size()],
                                {.trans_b = true, .compute = DType::kBF16, .b_panels = true});
                       }, true});
    }
  }
  {
    const int64_t s = quick ? 256 : 1024;
    Tensor q = p.act({1, s, q_heads, head_dim}), k = p.act({1, s, kv_heads, head_dim});
    Tensor v = p.act({1, s, kv_heads, head_dim}), o = p.act({1, s, q_heads, head_dim});
    Tensor lse = p.f32({1, q_heads, s});
    Tensor dq = p.act({1, s, q_heads, head_dim}), dk = p.act({1, s, kv_heads, head_dim});
    Tensor dv = p.act({1, s, kv_heads, head_dim});
    const double causal_flops = 4.0 * s * s * q_heads * head_dim / 2.0;
    const AttentionOptions causal{.causal = true};
    cases.push_back({"attention", "causal prefill S=" + std::to_string(s) + " 32q/8kv x 64", causal_flops, 0,
                     [=] { attention_forward(o, lse, q, k, v, causal); }});
    if (p.dtype() == DType::kF32) {  // CPU: the plain loop the blocked kernel is tested against
      cases.push_back({"attention reference", "causal prefill S=" + std::to_string(s) + " 32q/8kv x 64", causal_flops,
                       0, [=] { cpu::attention_forward_reference(o, lse, q, k, v, causal); }});
    }
    if (p.dtype() == DType::kF32) {  // CPU: the bf16 compute mode (attention_bf16.h)
      cases.push_back({"attention bf16", "causal prefill S=" + std::to_string(s) + " 32q/8kv x 64", causal_flops, 0,
                       [=] { attention_forward(o, lse, q, k, v, {.causal = true, .compute = DType::kBF16}); }, true});
    }
    cases.push_back({"attention_backward", "causal S=" + std::to_string(s) + " 32q/8kv x 64", 2.5 * causal_flops, 0,
                     [=] { attention_backward(dq, dk, dv, o, q, k, v, o, lse, causal); }});
    if (p.dtype() == DType::kF32) {  // CPU: the plain loop the blocked backward is tested against
      cases.push_back({"attention_backward reference", "causal S=" + std::to_string(s) + " 32q/8kv x 64",
                       2.5 * causal_flops, 0,
                       [=] { cpu::attention_backward_reference(dq, dk, dv, o, q, k, v, o, lse, causal); }});
    }
  }
  {
    const int64_t tiles = quick ? 1 : 2;
    Tensor q = p.act({tiles, vis_tokens, vis_heads, head_dim}), o = p.act({tiles, vis_tokens, vis_heads, head_dim});
    const std::string shape = "vision full S=1025 16 heads x 64, " + std::to_string(tiles) + " tiles";
    const double flops = 4.0 * tiles * vis_tokens * vis_tokens * vis_heads * head_dim;
    cases.push_back({"attention", shape, flops, 0, [=] { attention_forward(o, Tensor(), q, q, q, {}); }});
    if (p.dtype() == DType::kF32) {
      cases.push_back({"attention reference", shape, flops, 0,
                       [=] { cpu::attention_forward_reference(o, Tensor(), q, q, q, {}); }});
      cases.push_back({"attention bf16", shape, flops, 0,
                       [=] { attention_forward(o, Tensor(), q, q, q, {.compute = DType::kBF16}); }, true});
    }
    Tensor lse = p.f32({tiles, vis_heads, vis_tokens}), dq = p.act(q.shape()), dk = p.act(q.shape());
    Tensor dv = p.act(q.shape());
    cases.push_back({"attention_backward", shape, 2.5 * flops, 0,
                     [=] { attention_backward(dq, dk, dv, o, q, q, q, o, lse, {}); }});
  }
  // Decode over a KV cache of B sequences, dense (B, S, Hkv, Dh) against paged: blocks handed out round-robin
  // across the sequences (as decode steps fill a pool), so a sequence's blocks are B blocks apart.
  for (const int64_t batch : {int64_t{1}, int64_t{8}}) {
    const int64_t cache = quick ? 1024 : 4096;
    Tensor q = p.act({batch, 1, q_heads, head_dim}), o = p.act({batch, 1, q_heads, head_dim});
    Tensor k = p.act({batch, cache, kv_heads, head_dim});
    const std::string shape =
        "decode " + std::to_string(batch) + " x 1 query, " + std::to_string(cache) + " cached keys";
    const double flops = 4.0 * batch * cache * q_heads * head_dim;
    const double bytes = 2.0 * a * batch * cache * kv_heads * head_dim;
    cases.push_back({"attention dense cache", shape, flops, bytes,
                     [=] { attention_forward(o, Tensor(), q, k, k, {.causal = true}); }});
    if (p.dtype() == DType::kF32 && batch == 1) {
      cases.push_back({"attention reference", shape, flops, bytes,
                       [=] { cpu::attention_forward_reference(o, Tensor(), q, k, k, {.causal = true}); }});
    }
    for (const int64_t block : {int64_t{16}, int64_t{64}}) {
      const int64_t blocks_per_sequence = cache / block;
      Tensor k_blocks = p.act({batch * blocks_per_sequence, block, kv_heads, head_dim});
      std::vector<int32_t> tables, starts, lens;
      for (int64_t b = 0; b < batch; ++b) {
        for (int64_t j = 0; j < blocks_per_sequence; ++j) tables.push_back(static_cast<int32_t>(j * batch + b));
        starts.push_back(static_cast<int32_t>(b));
        lens.push_back(static_cast<int32_t>(cache));
      }
      starts.push_back(static_cast<int32_t>(batch));
      const PagedAttentionBatch paged{.block_tables = p.i32_values({batch, blocks_per_sequence}, tables),
                                      .query_starts = p.i32_values({batch + 1}, starts),
                                      .kv_lens = p.i32_values({batch}, lens),
                                      .max_query_len = 1};
      const Tensor q_packed = q.reshape({batch, q_heads, head_dim}), o_packed = o.reshape({batch, q_heads, head_dim});
      cases.push_back({"attention paged cache", shape + ", blocks of " + std::to_string(block), flops, bytes,
                       [=] { paged_attention_forward(o_packed, q_packed, k_blocks, k_blocks, paged); }});
      if (p.dtype() == DType::kF32 && block == 16) {  // CPU: the bf16 compute mode's bf16 cache
        const Tensor k_bf16 = p.bf16_weights(k_blocks.shape());
        PagedAttentionBatch paged_bf16 = paged;
        paged_bf16.compute = DType::kBF16;
        cases.push_back({"attention bf16 paged cache", shape + ", blocks of 16", flops, bytes / 2,
                         [=] { paged_attention_forward(o_packed, q_packed, k_bf16, k_bf16, paged_bf16); }});
      }
    }
  }
  {
    Tensor x = p.act({tokens, hidden}), y = p.act({tokens, hidden}), w = p.act({hidden}, 1.0f);
    Tensor rstd = p.f32({tokens});
    cases.push_back({"rmsnorm", std::to_string(tokens) + "x2048", 0, 2.0 * a * tokens * hidden,
                     [=] { rmsnorm_forward(y, rstd, x, w, 1e-5f); }});
    Tensor dx = p.act({tokens, hidden}), dw = p.act({hidden});
    cases.push_back({"rmsnorm_backward", std::to_string(tokens) + "x2048", 0, 3.0 * a * tokens * hidden,
                     [=] { rmsnorm_backward(dx, dw, y, x, w, rstd); }});
  }
  {
    Tensor x = p.act({vis_tokens, vis_width}), y = p.act({vis_tokens, vis_width});
    Tensor w = p.act({vis_width}, 1.0f), b = p.act({vis_width});
    Tensor mean = p.f32({vis_tokens}), rstd = p.f32({vis_tokens});
    cases.push_back({"layernorm", "1025x1024", 0, 2.0 * a * vis_tokens * vis_width,
                     [=] { layernorm_forward(y, mean, rstd, x, w, b, 1e-5f); }});
  }
  {
    Tensor x = p.act({vis_tokens, 4 * vis_width}), y = p.act({vis_tokens, 4 * vis_width});
    cases.push_back({"gelu", "1025x4096", 0, 2.0 * a * vis_tokens * 4 * vis_width, [=] { gelu_forward(y, x); }});
    Tensor g = p.act({tokens, mlp}), u = p.act({tokens, mlp}), o = p.act({tokens, mlp});
    cases.push_back({"swiglu", std::to_string(tokens) + "x8192", 0, 3.0 * a * tokens * mlp,
                     [=] { swiglu_forward(o, g, u); }});
    cases.push_back({"softmax", std::to_string(tokens) + "x8192", 0, 2.0 * a * tokens * mlp,
                     [=] { softmax_forward(o, g); }});
  }
  {
    Tensor x = p.act({tokens, q_heads, head_dim});
    Tensor pos = p.i32({tokens}, 100000);
    Tensor inv_freq = p.from_host(rope_inv_freq(head_dim, 500000.0, Llama3RopeScaling{32.0, 1.0, 4.0, 8192}));
    cases.push_back({"rope", std::to_string(tokens) + "x32x64 in place", 0, 2.0 * a * tokens * q_heads * head_dim,
                     [=] { rope_forward(x, x, pos, inv_freq); }});
  }
  {
    Tensor table = p.act({32000, hidden}), ids = p.i32({tokens}, 32000), out = p.act({tokens, hidden});
    cases.push_back({"embedding", std::to_string(tokens) + " rows of 2048", 0, 2.0 * a * tokens * hidden,
                     [=] { embedding_forward(out, ids, table); }});
  }
  {
    const int64_t chunk = 8192;
    Tensor logits = p.act({tokens, chunk}), targets = p.i32({tokens}, 128256);
    Tensor mx = p.f32({tokens}), sm = p.f32({tokens}), tl = p.f32({tokens});
    cases.push_back({"cross_entropy_chunk", std::to_string(tokens) + "x8192 logits", 0, a * tokens * chunk,
                     [=] { cross_entropy_chunk_forward(mx, sm, tl, logits, targets, 0); }});
  }
  {
    const int64_t n = quick ? (int64_t{1} << 20) : (int64_t{16} << 20);
    Tensor master = p.f32({n}), m = p.f32({n}), v = p.f32({n}), grad = p.f32({n}), out = p.act({n});
    cases.push_back({"adamw", std::to_string(n >> 20) + "Mi params", 0, (7.0 * 4 + a) * n,
                     [=] { adamw_step(master, m, v, grad, out, {.lr = 1e-5f}); }});
    Tensor x = p.act({n}), y = p.act({n}), s = p.f32({1});
    cases.push_back({"add", std::to_string(n >> 20) + "Mi", 0, 3.0 * a * n, [=] { add(y, x, x); }});
    cases.push_back({"sum_squares", std::to_string(n >> 20) + "Mi", 0, a * n, [=] { sum_squares(s, x); }});
  }
  {
    const int64_t tiles = quick ? 1 : 4;
    Tensor x = p.act({tiles, 1024, hidden}), y = p.act({tiles, 256, hidden});
    cases.push_back({"adaptive_avg_pool2d", std::to_string(tiles) + " tiles 32x32 -> 16x16 x 2048", 0,
                     1.25 * a * tiles * 1024 * hidden, [=] { adaptive_avg_pool2d_forward(y, x, 32, 16); }});
    Tensor images = p.act({tiles, 3, 448, 448}), patches = p.act({tiles * 1024, 588});
    cases.push_back({"im2col_patches", std::to_string(tiles) + " tiles 448x448, patch 14", 0,
                     2.0 * a * tiles * 3 * 448 * 448, [=] { im2col_patches(patches, images, 14); }});
  }
  return cases;
}

// Wall and process CPU seconds per call (the CPU time is the steadier number of a one-thread run on a shared
// machine): one warm-up call, then repeated calls until min_seconds of wall time have passed.
struct CaseTime {
  double wall_s, cpu_s;
};

CaseTime time_case(const BenchCase& c, bool on_cuda, double min_seconds) {
  const auto sync = [&] {
    if (on_cuda) cuda_synchronize_device();
  };
  c.run();
  sync();
  int reps = 0;
  const auto start = std::chrono::steady_clock::now();
  const double cpu_start = process_cpu_seconds();
  double elapsed = 0;
  do {
    c.run();
    ++reps;
    sync();
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } while (elapsed < min_seconds && reps < 10000);
  return {elapsed / reps, (process_cpu_seconds() - cpu_start) / reps};
}

}  // namespace

int run_kernel_bench(const KernelBenchOptions& options) {
  const bool on_cuda = options.device == "cuda";
  if (!on_cuda && options.device != "cpu") {
    std::fprintf(stderr, "plm bench kernels: --device must be cpu or cuda, got '%s'\n", options.device.c_str());
    return 2;
  }
  if (on_cuda && cuda_device_count() == 0) {
    std::fprintf(stderr, "plm bench kernels: %s\n", cuda_unavailable_reason().c_str());
    return 1;
  }
  const MachinePeak peak = on_cuda ? cuda_peak(0) : cpu_peak();
  std::printf("device: %s\npeak: %s\n", options.device.c_str(), peak.description.c_str());
  std::printf("%-22s %-48s %10s %10s %10s %9s %8s\n", "kernel", "shape", "time_ms", "cpu_ms", "GFLOP/s", "GB/s",
              "%peak");

  TensorPool pool(on_cuda ? Device::cuda(0) : Device::cpu(), on_cuda ? DType::kBF16 : DType::kF32);
  for (const BenchCase& c : make_cases(pool, options.quick)) {
    if (!options.filter.empty() && c.name.find(options.filter) == std::string::npos) continue;
    const CaseTime time = time_case(c, on_cuda, options.quick ? 0.02 : 0.3);
    const double seconds = time.wall_s;
    const double gflops = c.flops / seconds / 1e9, gbytes = c.bytes / seconds / 1e9;
    const double flops_peak = c.bf16_math ? peak.bf16_flops_per_s : peak.flops_per_s;
    const double ratio = std::max(c.flops / seconds / flops_peak, c.bytes / seconds / peak.bytes_per_s);
    std::printf("%-22s %-48s %10.3f %10.3f %10.1f %9.1f %7.1f%%\n", c.name.c_str(), c.shape.c_str(), seconds * 1e3,
                time.cpu_s * 1e3, gflops, gbytes, 100.0 * ratio);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace plm::bench
