// The --dtype flag (runtime/compute_dtype.h): the device default (CPU: bf16 with AVX512-BF16, else f32), and the
// errors.
#include "runtime/compute_dtype.h"

#include <gtest/gtest.h>

#include "core/kernels/cpu/gemm_bf16.h"

namespace plm::runtime {
namespace {

TEST(InferenceLoadOptions, PicksTheCpuComputeDtype) {
  const absl::StatusOr<model::LoadOptions> f32 = inference_load_options("f32", Device::cpu());
  ASSERT_TRUE(f32.ok());
  EXPECT_EQ(f32->cpu_compute, DType::kF32);
  // The default is the faster mode: bf16 where the CPU has AVX512-BF16.
  const absl::StatusOr<model::LoadOptions> fallback = inference_load_options("", Device::cpu());
  ASSERT_TRUE(fallback.ok());
  EXPECT_EQ(fallback->cpu_compute, cpu::cpu_has_avx512_bf16() ? DType::kBF16 : DType::kF32);
  const absl::StatusOr<model::LoadOptions> bf16 = inference_load_options("bf16", Device::cpu());
  ASSERT_TRUE(bf16.ok());
  EXPECT_EQ(bf16->cpu_compute, DType::kBF16);
  EXPECT_FALSE(bf16->for_training);
}

TEST(InferenceLoadOptions, CudaTakesOnlyBf16) {
  EXPECT_TRUE(inference_load_options("", Device::cuda(0)).ok());
  EXPECT_TRUE(inference_load_options("bf16", Device::cuda(0)).ok());
  const absl::Status f32 = inference_load_options("f32", Device::cuda(0)).status();
  EXPECT_EQ(f32.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(f32.message().find("--dtype f32"), std::string::npos) << f32.message();
}

TEST(InferenceLoadOptions, RejectsOtherNames) {
  const absl::Status status = inference_load_options("f16", Device::cpu()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("f16"), std::string::npos) << status.message();
}

}  // namespace
}  // namespace plm::runtime
