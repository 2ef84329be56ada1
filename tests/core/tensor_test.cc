#include "core/tensor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/arena.h"
#include "core/dtype.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

void fill_iota(const OwnedTensor& t) {
  for (int64_t i = 0; i < t.numel(); ++i) t.data_as<float>()[i] = static_cast<float>(i);
}

TEST(DType, Bf16RoundsToNearestEven) {
  EXPECT_EQ(bf16(1.0f).bits, 0x3f80);
  // 1 + 2^-8 is exactly halfway between two bf16 values: ties go to the even mantissa (1.0).
  EXPECT_EQ(bf16(1.0f + 1.0f / 256).bits, 0x3f80);
  EXPECT_EQ(bf16(1.0f + 3.0f / 256).bits, 0x3f82);
  EXPECT_TRUE(std::isnan(static_cast<float>(bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(static_cast<float>(bf16(-2.5f)), -2.5f);
  EXPECT_TRUE(std::isinf(static_cast<float>(bf16(std::numeric_limits<float>::max()))));
}

TEST(DType, F16RoundTripsAndRounds) {
  for (float x : {0.0f, 1.0f, -2.0f, 65504.0f, 6.103515625e-05f /*min normal*/, 5.960464477539063e-08f}) {
    EXPECT_EQ(static_cast<float>(f16(x)), x) << x;
  }
  EXPECT_EQ(f16(1.0f + 1.0f / 2048).bits, 0x3c00);  // tie to even
  EXPECT_EQ(f16(1.0f + 3.0f / 2048).bits, 0x3c02);
  EXPECT_TRUE(std::isinf(static_cast<float>(f16(70000.0f))));
  EXPECT_TRUE(std::isnan(static_cast<float>(f16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(static_cast<float>(f16(3.0f * 5.960464477539063e-08f)), 3.0f * 5.960464477539063e-08f);
}

TEST(Tensor, ViewsShareStorage) {
  OwnedTensor t({2, 3, 4}, DType::kF32);
  fill_iota(t);
  Tensor s = t.view().slice(1, 1, 3);
  EXPECT_EQ(s.shape(), Shape({2, 2, 4}));
  EXPECT_FALSE(s.is_contiguous());
  EXPECT_EQ(s.data_as<float>()[0], 4.0f);
  Tensor row = t.view().select(0, 1);
  EXPECT_EQ(row.shape(), Shape({3, 4}));
  EXPECT_TRUE(row.is_contiguous());
  EXPECT_EQ(row.data_as<float>()[0], 12.0f);
  EXPECT_EQ(t.view().as_matrix().shape(), Shape({6, 4}));
  EXPECT_EQ(t.view().reshape({4, 6}).size(-1), 6);
}

TEST(Tensor, DescribeNamesDtypeShapeDevice) {
  OwnedTensor t({2, 3}, DType::kBF16);
  EXPECT_EQ(t.view().describe(), "bf16(2, 3) cpu");
}

TEST(TensorDeath, WrongDtypeAccessFailsWithMessage) {
  OwnedTensor t({2}, DType::kF32);
  EXPECT_DEATH(t.data_as<int32_t>(), "tensor holds f32, asked for i32");
}

TEST(Arena, AlignsMarksAndReleases) {
  Arena arena(1 << 16, Device::cpu());
  Tensor a = arena.alloc({3}, DType::kF32);
  Tensor b = arena.alloc({5}, DType::kBF16);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data()) % Arena::kAlignment, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % Arena::kAlignment, 0u);
  const size_t mark = arena.mark();
  arena.alloc({1000}, DType::kF32);
  EXPECT_GT(arena.bytes_used(), mark);
  arena.release_to(mark);
  EXPECT_EQ(arena.bytes_used(), mark);
  EXPECT_GE(arena.peak_bytes(), mark + 4000);
}

TEST(ArenaDeath, OverflowNamesTheSizes) {
  Arena arena(1024, Device::cpu());
  EXPECT_DEATH(arena.alloc({1000}, DType::kF32), "arena of 1024 bytes cannot hold 4000 more bytes");
}

TEST(CopyTensor, HostToHost) {
  OwnedTensor a = testing::random_tensor({7, 5}, 1);
  OwnedTensor b = to_device(a, Device::cpu());
  EXPECT_EQ(testing::max_abs_diff(a, b), 0.0f);
}

TEST(CudaAllocator, ReusesFreedBlocks) {
  PLM_SKIP_WITHOUT_CUDA();
  void* first = nullptr;
  {
    OwnedTensor t({1000}, DType::kF32, Device::cuda());
    first = t.view().data();
  }
  OwnedTensor again({1000}, DType::kF32, Device::cuda());
  EXPECT_EQ(again.view().data(), first);
  OwnedTensor host = testing::random_tensor({1000}, 3);
  copy_tensor(again, host);
  EXPECT_EQ(testing::max_abs_diff(again, host), 0.0f);
}

}  // namespace
}  // namespace plm

namespace plm {
namespace {

TEST(CopyTensor, IntoAndOutOfColumnBlocks) {
  OwnedTensor whole({3, 5}, DType::kF32);
  fill_iota(whole);
  OwnedTensor block({3, 2}, DType::kF32);
  copy_tensor(block, whole.view().slice(1, 2, 4));
  EXPECT_EQ(testing::to_vector(block), (std::vector<float>{2, 3, 7, 8, 12, 13}));
  OwnedTensor target({3, 5}, DType::kF32);
  std::fill(target.data_as<float>(), target.data_as<float>() + 15, -1.0f);
  copy_tensor(target.view().slice(1, 0, 2), block);
  EXPECT_EQ(testing::to_vector(target.view().select(0, 1)), (std::vector<float>{7, 8, -1, -1, -1}));
}

}  // namespace
}  // namespace plm
