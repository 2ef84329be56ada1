// paged_attention_forward and paged_kv_write on the CPU: a mixed batch (decode tokens, prefill chunks, whole
// prompts; GQA; block sizes 1, 7, 16) whose keys sit in shuffled blocks of a NaN-filled pool, against the dense
// oracle per sequence: the plain reference loop within float tolerance, and the blocked dense forward bit for
// bit (the property that makes a paged and a dense KV cache give the same logits).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/kernels/backends.h"
#include "core/kernels/cpu/attention_reference.h"
#include "tests/core/kernels/paged_attention_cases.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

using testing::PagedCase;
using testing::PagedInputs;

class PagedAttention : public ::testing::TestWithParam<PagedCase> {};

TEST_P(PagedAttention, MatchesTheDenseForwardPerSequence) {
  const PagedCase& c = GetParam();
  const PagedInputs in = testing::make_paged_inputs(c, DType::kF32, 41);
  OwnedTensor k_cache = testing::nan_pool(c, in.num_blocks, DType::kF32);
  OwnedTensor v_cache = testing::nan_pool(c, in.num_blocks, DType::kF32);
  cpu::paged_kv_write(k_cache, v_cache, in.k_new, in.v_new, in.slots);
  constexpr float kUntouched = 7.0f;
  OwnedTensor out(in.q.shape(), DType::kF32);
  fill(out, kUntouched);
  cpu::paged_attention_forward(out, in.q, k_cache, v_cache, in.batch());

  const int64_t q_row = c.num_q_heads * c.head_dim;
  int64_t row = 0;
  for (size_t b = 0; b < c.sequences.size(); ++b) {
    const int64_t q_len = c.sequences[b].q_len;
    if (q_len == 0) continue;
    const Tensor got = out.view().slice(0, row, row + q_len).reshape({1, q_len, c.num_q_heads, c.head_dim});
    OwnedTensor reference(in.queries[b].shape(), DType::kF32), dense(in.queries[b].shape(), DType::kF32);
    const AttentionOptions causal{.causal = true};
    cpu::attention_forward_reference(reference, Tensor(), in.queries[b], in.keys[b], in.values[b], causal);
    cpu::attention_forward(dense, Tensor(), in.queries[b], in.keys[b], in.values[b], causal);
    EXPECT_TRUE(testing::all_close(got, reference, 2e-6f, 1e-5f)) << "sequence " << b << " vs the reference loop";
    EXPECT_EQ(testing::to_vector(got), testing::to_vector(dense)) << "sequence " << b << " vs attention_forward";
    row += q_len;
  }
  // The two rows past every sequence's run are left alone.
  for (const float x : testing::to_vector(out.view().slice(0, row, row + 2))) ASSERT_EQ(x, kUntouched);
  ASSERT_EQ(row * q_row + 2 * q_row, out.numel());
}

// A bf16 cache (the bf16 compute mode's): paged_kv_write rounds k and v to nearest even, and the forward gives the
// dense forward on those rounded keys and values (up to the order the compiler sums a widened row in: 1 ulp).
TEST_P(PagedAttention, Bf16CacheEqualsTheDenseForwardOnRoundedKeys) {
  const PagedCase& c = GetParam();
  const PagedInputs in = testing::make_paged_inputs(c, DType::kF32, 43);
  OwnedTensor k_cache = testing::nan_pool(c, in.num_blocks, DType::kBF16);
  OwnedTensor v_cache = testing::nan_pool(c, in.num_blocks, DType::kBF16);
  cpu::paged_kv_write(k_cache, v_cache, in.k_new, in.v_new, in.slots);
  OwnedTensor out(in.q.shape(), DType::kF32);
  cpu::paged_attention_forward(out, in.q, k_cache, v_cache, in.batch());
  const auto rounded = [](Tensor x) {
    OwnedTensor narrow(x.shape(), DType::kBF16), wide(x.shape(), DType::kF32);
    cpu::cast(narrow, x);
    cpu::cast(wide, narrow);
    return wide;
  };
  int64_t row = 0;
  for (size_t b = 0; b < c.sequences.size(); ++b) {
    const int64_t q_len = c.sequences[b].q_len;
    if (q_len == 0) continue;
    const Tensor got = out.view().slice(0, row, row + q_len).reshape({1, q_len, c.num_q_heads, c.head_dim});
    OwnedTensor dense(in.queries[b].shape(), DType::kF32);
    cpu::attention_forward(dense, Tensor(), in.queries[b], rounded(in.keys[b]), rounded(in.values[b]),
                           {.causal = true});
    EXPECT_TRUE(testing::all_close(got, dense, 1e-7f, 1e-6f)) << "sequence " << b;
    row += q_len;
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, PagedAttention, ::testing::ValuesIn(testing::paged_cases()),
                         [](const ::testing::TestParamInfo<PagedCase>& info) { return info.param.name; });

TEST(PagedKvWrite, CopiesRowsToTheirSlotsOnly) {
  const PagedCase c{"write", 4, 2, 2, 8, {{6, 6}}};
  const PagedInputs in = testing::make_paged_inputs(c, DType::kF32, 5);
  OwnedTensor k_cache = testing::nan_pool(c, in.num_blocks, DType::kF32);
  OwnedTensor v_cache = testing::nan_pool(c, in.num_blocks, DType::kF32);
  cpu::paged_kv_write(k_cache, v_cache, in.k_new, in.v_new, in.slots);
  const int64_t row = c.num_kv_heads * c.head_dim;
  const std::vector<float> k = testing::to_vector(k_cache), v = testing::to_vector(v_cache);
  std::vector<bool> written(static_cast<size_t>(in.num_blocks * c.block_size), false);
  for (int64_t t = 0; t < in.slots.numel(); ++t) {
    const int32_t slot = in.slots.data_as<int32_t>()[t];
    written[slot] = true;
    for (int64_t e = 0; e < row; ++e) {
      EXPECT_EQ(k[slot * row + e], in.k_new.data_as<float>()[t * row + e]);
      EXPECT_EQ(v[slot * row + e], in.v_new.data_as<float>()[t * row + e]);
    }
  }
  for (size_t slot = 0; slot < written.size(); ++slot) {
    if (!written[slot]) {
      EXPECT_TRUE(std::isnan(k[slot * row]) && std::isnan(v[slot * row])) << "slot " << slot;
    }
  }
}

TEST(PagedAttentionChecks, RejectsABlockOutsideThePool) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const PagedCase c{"bad_block", 4, 2, 2, 8, {{6, 2}}};
  PagedInputs in = testing::make_paged_inputs(c, DType::kF32, 5);
  OwnedTensor k_cache = testing::nan_pool(c, in.num_blocks, DType::kF32);
  in.block_tables.data_as<int32_t>()[1] = static_cast<int32_t>(in.num_blocks);
  OwnedTensor out(in.q.shape(), DType::kF32);
  EXPECT_DEATH(cpu::paged_attention_forward(out, in.q, k_cache, k_cache, in.batch()),
               "block_tables\\[0, 1\\] = 5 outside the 5 blocks");
}

}  // namespace
}  // namespace plm
