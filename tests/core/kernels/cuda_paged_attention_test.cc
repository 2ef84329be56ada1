// paged_attention_forward and paged_kv_write on CUDA against the CPU bodies, f32 and bf16, over the mixed
// batches of paged_attention_cases.h: keys written into shuffled blocks of a NaN pool by the CUDA write, so a
// wrong slot or a wrong block-table read shows as NaN; rows of out that no sequence owns stay untouched.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "core/kernels/backends.h"
#include "tests/core/kernels/cuda_test_util.h"
#include "tests/core/kernels/paged_attention_cases.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

using testing::PagedCase;
using testing::PagedInputs;

class CudaPagedAttention : public ::testing::TestWithParam<std::tuple<PagedCase, DType>> {};

TEST_P(CudaPagedAttention, MatchesCpu) {
  PLM_SKIP_WITHOUT_CUDA();
  const auto& [c, dtype] = GetParam();
  const PagedInputs in = testing::make_paged_inputs(c, dtype, 73);
  OwnedTensor k_cpu = testing::nan_pool(c, in.num_blocks, DType::kF32);
  OwnedTensor v_cpu = testing::nan_pool(c, in.num_blocks, DType::kF32);
  cpu::paged_kv_write(k_cpu, v_cpu, in.k_new, in.v_new, in.slots);
  OwnedTensor out_cpu(in.q.shape(), DType::kF32);
  fill(out_cpu, 0.0f);
  cpu::paged_attention_forward(out_cpu, in.q, k_cpu, v_cpu, in.batch());

  OwnedTensor k_cuda = testing::to_cuda(testing::nan_pool(c, in.num_blocks, dtype));
  OwnedTensor v_cuda = testing::to_cuda(testing::nan_pool(c, in.num_blocks, dtype));
  const OwnedTensor slots = testing::to_cuda(in.slots);
  cuda::paged_kv_write(k_cuda, v_cuda, testing::to_cuda_as(in.k_new, dtype), testing::to_cuda_as(in.v_new, dtype),
                       slots);
  // The caches hold the same values (NaN where nothing was written) on both sides.
  const std::vector<float> k_got = testing::to_vector(k_cuda), k_want = testing::to_vector(k_cpu);
  ASSERT_EQ(k_got.size(), k_want.size());
  for (size_t i = 0; i < k_got.size(); ++i) {
    ASSERT_TRUE(k_got[i] == k_want[i] || (std::isnan(k_got[i]) && std::isnan(k_want[i]))) << "k_cache element " << i;
  }

  const OwnedTensor tables = testing::to_cuda(in.block_tables), starts = testing::to_cuda(in.query_starts);
  const OwnedTensor lens = testing::to_cuda(in.kv_lens);
  const OwnedTensor q = testing::to_cuda_as(in.q, dtype);
  OwnedTensor out(in.q.shape(), dtype, Device::cuda());
  cuda::fill(out, 0.0f);
  const PagedAttentionBatch batch{.block_tables = tables, .query_starts = starts, .kv_lens = lens,
                                  .max_query_len = in.max_query_len};
  cuda::paged_attention_forward(out, q, k_cuda, v_cuda, batch);
  const testing::Tolerance tol =
      dtype == DType::kF32 ? testing::Tolerance{1e-4f, 1e-4f} : testing::Tolerance{2e-2f, 2e-2f};
  EXPECT_TRUE(testing::matches_cpu(out, out_cpu, tol, testing::dtype_label(c.name, dtype)));
}

std::string case_name(const ::testing::TestParamInfo<std::tuple<PagedCase, DType>>& info) {
  return testing::dtype_label(std::get<0>(info.param).name, std::get<1>(info.param));
}

INSTANTIATE_TEST_SUITE_P(Cases, CudaPagedAttention,
                         ::testing::Combine(::testing::ValuesIn(testing::paged_cases()),
                                            ::testing::ValuesIn(testing::kCudaTestDTypes)),
                         case_name);

}  // namespace
}  // namespace plm
