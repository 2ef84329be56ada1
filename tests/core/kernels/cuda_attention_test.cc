// CUDA attention (flash forward with and without the split over keys, the naive reference kernel, and the
// two-pass backward) against the CPU oracle in f32 and bf16: GQA, causal, kv_lens (chunked prefill and
// decode), packed segments, explicit scale, head dims 8..128 including ones that are not multiples of 32,
// and queries that see no key. Key/value slots past kv_len hold NaN, and outputs start as garbage, so
// the tests also check that masked slots are never read into results and that gradients are written (=).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/kernels/backends.h"
#include "core/kernels/cpu/attention_reference.h"
#include "core/kernels/cuda/attention_reference.h"
#include "tests/core/kernels/reference_check.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

using testing::random_tensor;
using testing::tensor_from;
using testing::to_vector;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct AttentionCase {
  std::string name;
  int64_t batch, q_len, kv_len, num_q_heads, num_kv_heads, head_dim;
  bool causal;
  std::vector<int32_t> kv_lens;      // empty: every sequence has kv_len keys
  std::vector<int32_t> segment_ids;  // empty: no packing; else (B, S)
  float scale = 0.0f;
};

void PrintTo(const AttentionCase& c, std::ostream* os) { *os << c.name; }  // gtest's listing: no raw bytes

// Segment ids (B, S) from run lengths, the same runs for every sequence.
std::vector<int32_t> segments(int64_t batch, const std::vector<int>& runs) {
  std::vector<int32_t> ids;
  for (int64_t b = 0; b < batch; ++b) {
    for (size_t r = 0; r < runs.size(); ++r) ids.insert(ids.end(), runs[r], static_cast<int32_t>(r));
  }
  return ids;
}

// The forward splits keys across blocks when its grid has fewer than two blocks per SM and Skv spans at
// least 8 tiles of 32 keys: on any GPU with >= 10 SMs the "split" cases take that path, the others not.
std::vector<AttentionCase> cases() {
  return {
      {"bidirectional_mha", 2, 37, 37, 2, 2, 64, false, {}, {}},
      {"causal_gqa2", 2, 45, 45, 4, 2, 64, true, {}, {}},
      {"causal_gqa4_dim128", 1, 70, 70, 8, 2, 128, true, {}, {}},
      {"causal_dim96_explicit_scale", 1, 33, 33, 3, 1, 96, true, {}, {}, 0.2f},
      {"bidirectional_dim72", 2, 19, 19, 2, 1, 72, false, {}, {}},
      {"causal_dim8", 1, 40, 40, 2, 2, 8, true, {}, {}},
      {"causal_dim40_gqa3", 2, 21, 21, 6, 2, 40, true, {}, {}},
      {"causal_prefill_split", 1, 300, 300, 2, 1, 64, true, {}, {}},
      {"bidirectional_prefill_split", 1, 260, 260, 2, 2, 32, false, {}, {}},
      {"chunked_prefill_kv_lens", 3, 5, 50, 4, 2, 64, true, {50, 23, 5}, {}},
      {"fewer_keys_than_queries", 2, 5, 9, 2, 1, 64, true, {3, 9}, {}},
      {"bidirectional_kv_lens_empty_sequence", 3, 7, 40, 2, 2, 64, false, {40, 11, 0}, {}},
      {"decode_gqa4_split", 3, 1, 300, 8, 2, 128, true, {300, 157, 1}, {}},
      {"decode_long_split_empty_sequence", 2, 1, 1000, 4, 4, 64, true, {1000, 0}, {}},
      {"decode_no_split", 2, 1, 100, 4, 1, 96, true, {100, 64}, {}},
      {"causal_segments", 2, 40, 40, 2, 2, 64, true, {}, segments(2, {13, 20, 7})},
      {"bidirectional_segments_gqa2", 1, 45, 45, 4, 2, 64, false, {}, segments(1, {1, 30, 14})},
      {"causal_segments_kv_lens", 2, 36, 36, 2, 1, 64, true, {36, 20}, segments(2, {10, 10, 16})},
  };
}

// Host inputs in the test's dtype; k and v hold NaN in every slot at or past kv_lens[b].
struct Inputs {
  OwnedTensor q, k, v, kv_lens, segment_ids;
  AttentionOptions options;
};

void poison_past_kv_len(OwnedTensor& t, const AttentionCase& c) {
  const int64_t row = c.num_kv_heads * c.head_dim;  // elements per key position
  for (int64_t b = 0; b < c.batch; ++b) {
    const int64_t valid = c.kv_lens.empty() ? c.kv_len : c.kv_lens[b];
    for (int64_t e = (b * c.kv_len + valid) * row; e < (b + 1) * c.kv_len * row; ++e) {
      if (t.dtype() == DType::kF32) {
        t.data_as<float>()[e] = kNaN;
      } else {
        t.data_as<bf16>()[e] = bf16(kNaN);
      }
    }
  }
}

Inputs make_inputs(const AttentionCase& c, DType dtype, uint64_t seed) {
  Inputs in{random_tensor({c.batch, c.q_len, c.num_q_heads, c.head_dim}, seed, -1.5f, 1.5f, dtype),
            random_tensor({c.batch, c.kv_len, c.num_kv_heads, c.head_dim}, seed + 1, -1.5f, 1.5f, dtype),
            random_tensor({c.batch, c.kv_len, c.num_kv_heads, c.head_dim}, seed + 2, -1.0f, 1.0f, dtype),
            {},
            {},
            {}};
  poison_past_kv_len(in.k, c);
  poison_past_kv_len(in.v, c);
  in.options.causal = c.causal;
  in.options.scale = c.scale;
  if (!c.kv_lens.empty()) {
    in.kv_lens = tensor_from({c.batch}, c.kv_lens);
    in.options.kv_lens = in.kv_lens;
  }
  if (!c.segment_ids.empty()) {
    in.segment_ids = tensor_from({c.batch, c.q_len}, c.segment_ids);
    in.options.segment_ids = in.segment_ids;
  }
  return in;
}

OwnedTensor as_f32(Tensor t) { return tensor_from(t.shape(), to_vector(t)); }

// The options with kv_lens and segment_ids copied to `device` (the copies are kept in `storage`).
AttentionOptions options_on(const Inputs& in, Device device, std::vector<OwnedTensor>& storage) {
  AttentionOptions options = in.options;
  if (in.options.kv_lens.defined()) options.kv_lens = storage.emplace_back(to_device(in.kv_lens, device));
  if (in.options.segment_ids.defined()) {
    options.segment_ids = storage.emplace_back(to_device(in.segment_ids, device));
  }
  return options;
}

float tolerance(DType dtype) { return dtype == DType::kF32 ? 1e-4f : 2e-2f; }

// |actual - expected| <= tol * (max |expected| + |expected|): relative to the tensor's scale, since
// gradients summed over many rows vary widely in size.
void expect_close(Tensor actual, Tensor expected, float tol, const std::string& label) {
  const std::vector<double> e = testing::to_doubles(expected);
  double scale = 1e-6;
  for (double x : e) scale = std::max(scale, std::abs(x));
  EXPECT_TRUE(testing::close_to_reference(actual, e, tol * scale, tol, label)) << label;
}

// lse rows that saw no key must be -inf in both; the others close.
void expect_lse_close(Tensor actual, Tensor expected, float tol, const std::string& label) {
  const std::vector<float> a = to_vector(actual);
  const std::vector<float> e = to_vector(expected);
  ASSERT_EQ(a.size(), e.size());
  for (size_t i = 0; i < e.size(); ++i) {
    if (e[i] == kNegInf) {
      EXPECT_EQ(a[i], kNegInf) << label << " row " << i;
    } else {
      EXPECT_NEAR(a[i], e[i], tol * (1.0f + std::abs(e[i]))) << label << " row " << i;
    }
  }
}

class CudaAttention : public ::testing::TestWithParam<std::tuple<AttentionCase, DType>> {};

TEST_P(CudaAttention, ForwardAndBackwardMatchCpu) {
  PLM_SKIP_WITHOUT_CUDA();
  const auto& [c, dtype] = GetParam();
  const float tol = tolerance(dtype);
  const std::string tag = c.name + "_" + std::string(dtype_name(dtype));
  const Inputs in = make_inputs(c, dtype, 17);
  const OwnedTensor dout = random_tensor(in.q.shape(), 29, -1.0f, 1.0f, dtype);
  const Shape lse_shape{c.batch, c.num_q_heads, c.q_len};

  // CPU oracle on the same values in f32.
  std::vector<OwnedTensor> cpu_storage;
  const AttentionOptions cpu_options = options_on(in, Device::cpu(), cpu_storage);
  const OwnedTensor q32 = as_f32(in.q), k32 = as_f32(in.k), v32 = as_f32(in.v), dout32 = as_f32(dout);
  OwnedTensor out32(in.q.shape(), DType::kF32), lse32(lse_shape, DType::kF32);
  cpu::attention_forward_reference(out32, lse32, q32, k32, v32, cpu_options);
  OwnedTensor dq32(in.q.shape(), DType::kF32), dk32(in.k.shape(), DType::kF32), dv32(in.k.shape(), DType::kF32);
  cpu::attention_backward(dq32, dk32, dv32, dout32, q32, k32, v32, out32, lse32, cpu_options);

  const Device gpu = Device::cuda(0);
  std::vector<OwnedTensor> gpu_storage;
  const AttentionOptions options = options_on(in, gpu, gpu_storage);
  const OwnedTensor q = to_device(in.q, gpu), k = to_device(in.k, gpu), v = to_device(in.v, gpu);
  // Outputs start as garbage: every element must be written.
  const OwnedTensor out = to_device(random_tensor(in.q.shape(), 41, 5.0f, 6.0f, dtype), gpu);
  const OwnedTensor lse = to_device(random_tensor(lse_shape, 43, 5.0f, 6.0f), gpu);
  cuda::attention_forward(out, lse, q, k, v, options);
  const OwnedTensor ref_out = to_device(random_tensor(in.q.shape(), 47, 5.0f, 6.0f, dtype), gpu);
  const OwnedTensor ref_lse = to_device(random_tensor(lse_shape, 53, 5.0f, 6.0f), gpu);
  cuda::attention_forward_reference(ref_out, ref_lse, q, k, v, options);
  cuda_synchronize_device();
  expect_close(out, out32, tol, "out_" + tag);
  expect_lse_close(lse, lse32, tol, "lse_" + tag);
  expect_close(ref_out, out32, tol, "reference_out_" + tag);
  expect_lse_close(ref_lse, lse32, tol, "reference_lse_" + tag);

  const OwnedTensor dout_gpu = to_device(dout, gpu);
  const OwnedTensor dq = to_device(random_tensor(in.q.shape(), 59, 5.0f, 6.0f, dtype), gpu);
  const OwnedTensor dk = to_device(random_tensor(in.k.shape(), 61, 5.0f, 6.0f, dtype), gpu);
  const OwnedTensor dv = to_device(random_tensor(in.k.shape(), 67, 5.0f, 6.0f, dtype), gpu);
  cuda::attention_backward(dq, dk, dv, dout_gpu, q, k, v, out, lse, options);
  cuda_synchronize_device();
  expect_close(dq, dq32, tol, "dq_" + tag);
  expect_close(dk, dk32, tol, "dk_" + tag);
  expect_close(dv, dv32, tol, "dv_" + tag);
}

TEST_P(CudaAttention, ForwardWithoutLseMatchesCpu) {
  PLM_SKIP_WITHOUT_CUDA();
  const auto& [c, dtype] = GetParam();
  const Inputs in = make_inputs(c, dtype, 71);
  std::vector<OwnedTensor> cpu_storage;
  OwnedTensor out32(in.q.shape(), DType::kF32);
  cpu::attention_forward_reference(out32, Tensor(), as_f32(in.q), as_f32(in.k), as_f32(in.v),
                                   options_on(in, Device::cpu(), cpu_storage));

  const Device gpu = Device::cuda(0);
  std::vector<OwnedTensor> gpu_storage;
  const OwnedTensor q = to_device(in.q, gpu), k = to_device(in.k, gpu), v = to_device(in.v, gpu);
  const OwnedTensor out(in.q.shape(), dtype, gpu);
  cuda::attention_forward(out, Tensor(), q, k, v, options_on(in, gpu, gpu_storage));
  cuda_synchronize_device();
  expect_close(out, out32, tolerance(dtype), "out_no_lse_" + c.name + "_" + std::string(dtype_name(dtype)));
}

std::string param_name(const ::testing::TestParamInfo<std::tuple<AttentionCase, DType>>& info) {
  return std::get<0>(info.param).name + "_" + std::string(dtype_name(std::get<1>(info.param)));
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaAttention,
                         ::testing::Combine(::testing::ValuesIn(cases()),
                                            ::testing::Values(DType::kF32, DType::kBF16)),
                         param_name);

TEST(CudaAttentionChecks, RejectsHeadDimNotAMultipleOf8) {
  // Checks run before any CUDA call, so this needs no GPU: the views point at no real memory.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  void* fake = reinterpret_cast<void*>(uintptr_t{1} << 20);
  const Device gpu = Device::cuda(0);
  const Tensor q(fake, {1, 4, 2, 12}, DType::kBF16, gpu), kv(fake, {1, 4, 1, 12}, DType::kBF16, gpu);
  EXPECT_DEATH(cuda::attention_forward(q, Tensor(), q, kv, kv, {}),
               "attention_forward: head_dim 12 must be a multiple of 8 in \\[8, 128\\]");
}

TEST(CudaAttentionChecks, RejectsHeadDimAbove128) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  void* fake = reinterpret_cast<void*>(uintptr_t{1} << 20);
  const Device gpu = Device::cuda(0);
  const Tensor q(fake, {1, 4, 2, 136}, DType::kF32, gpu), kv(fake, {1, 4, 2, 136}, DType::kF32, gpu);
  EXPECT_DEATH(cuda::attention_backward(q, kv, kv, q, q, kv, kv, q, Tensor(), {}),
               "head_dim 136 must be a multiple of 8");
}

TEST(CudaAttentionChecks, RejectsHeadsThatDoNotGroup) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  void* fake = reinterpret_cast<void*>(uintptr_t{1} << 20);
  const Device gpu = Device::cuda(0);
  const Tensor q(fake, {1, 4, 3, 64}, DType::kF32, gpu), kv(fake, {1, 4, 2, 64}, DType::kF32, gpu);
  EXPECT_DEATH(cuda::attention_forward(q, Tensor(), q, kv, kv, {}), "Hq \\(3\\) must be a multiple of Hkv \\(2\\)");
}

}  // namespace
}  // namespace plm
