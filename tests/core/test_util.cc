#include "tests/core/test_util.h"

#include <cmath>
#include <random>
#include <sstream>

#include "core/check.h"

namespace plm::testing {

OwnedTensor random_tensor(Shape shape, uint64_t seed, float lo, float hi, DType dtype) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  OwnedTensor t(shape, dtype);
  for (int64_t i = 0; i < t.numel(); ++i) {
    const float x = dist(rng);
    switch (dtype) {
      case DType::kF32: t.data_as<float>()[i] = x; break;
      case DType::kBF16: t.data_as<bf16>()[i] = bf16(x); break;
      case DType::kF16: t.data_as<f16>()[i] = f16(x); break;
      case DType::kI32:
      case DType::kI64:
      case DType::kU8: PLM_CHECK(false) << "random_tensor wants a float dtype"; break;
    }
  }
  return t;
}

OwnedTensor random_ids(Shape shape, uint64_t seed, int32_t lo, int32_t hi) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> dist(lo, hi - 1);
  OwnedTensor t(shape, DType::kI32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data_as<int32_t>()[i] = dist(rng);
  return t;
}

OwnedTensor tensor_from(Shape shape, const std::vector<float>& values) {
  PLM_CHECK_EQ(shape.numel(), static_cast<int64_t>(values.size()));
  OwnedTensor t(shape, DType::kF32);
  std::copy(values.begin(), values.end(), t.data_as<float>());
  return t;
}

OwnedTensor tensor_from(Shape shape, const std::vector<int32_t>& values) {
  PLM_CHECK_EQ(shape.numel(), static_cast<int64_t>(values.size()));
  OwnedTensor t(shape, DType::kI32);
  std::copy(values.begin(), values.end(), t.data_as<int32_t>());
  return t;
}

std::vector<float> to_vector(Tensor t) {
  OwnedTensor host = to_device(t, Device::cpu());
  std::vector<float> out(static_cast<size_t>(host.numel()));
  for (int64_t i = 0; i < host.numel(); ++i) {
    switch (host.dtype()) {
      case DType::kF32: out[i] = host.data_as<float>()[i]; break;
      case DType::kBF16: out[i] = static_cast<float>(host.data_as<bf16>()[i]); break;
      case DType::kF16: out[i] = static_cast<float>(host.data_as<f16>()[i]); break;
      case DType::kI32: out[i] = static_cast<float>(host.data_as<int32_t>()[i]); break;
      case DType::kI64: out[i] = static_cast<float>(host.data_as<int64_t>()[i]); break;
      case DType::kU8: out[i] = static_cast<float>(host.data_as<uint8_t>()[i]); break;
    }
  }
  return out;
}

::testing::AssertionResult all_close(Tensor actual, const std::vector<double>& expected, double atol,
                                     double rtol) {
  const std::vector<float> a = to_vector(actual);
  if (a.size() != expected.size()) {
    return ::testing::AssertionFailure() << "size " << a.size() << " vs expected " << expected.size();
  }
  int64_t worst = -1;
  double worst_excess = 0.0;
  int64_t num_bad = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double err = std::abs(static_cast<double>(a[i]) - expected[i]);
    const double allowed = atol + rtol * std::abs(expected[i]);
    if (!(err <= allowed)) {  // also catches NaN
      ++num_bad;
      const double excess = std::isnan(err) ? 1e300 : err - allowed;
      if (worst < 0 || excess > worst_excess) {
        worst = static_cast<int64_t>(i);
        worst_excess = excess;
      }
    }
  }
  if (num_bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << num_bad << " of " << a.size() << " elements differ; worst at flat index "
                                       << worst << ": " << a[worst] << " vs expected " << expected[worst]
                                       << " (atol " << atol << ", rtol " << rtol << ") in "
                                       << actual.describe();
}

::testing::AssertionResult all_close(Tensor actual, Tensor expected, float atol, float rtol) {
  const std::vector<float> e = to_vector(expected);
  return all_close(actual, std::vector<double>(e.begin(), e.end()), atol, rtol);
}

float max_abs_diff(Tensor a, Tensor b) {
  const std::vector<float> x = to_vector(a), y = to_vector(b);
  PLM_CHECK_EQ(x.size(), y.size());
  float worst = 0.0f;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(x[i] - y[i]));
  return worst;
}

std::vector<double> finite_difference(Tensor x, const std::function<double()>& loss, float h) {
  PLM_CHECK(x.dtype() == DType::kF32 && x.device().is_cpu() && x.is_contiguous());
  float* data = x.data_as<float>();
  std::vector<double> grad(static_cast<size_t>(x.numel()));
  for (int64_t i = 0; i < x.numel(); ++i) {
    const float saved = data[i];
    data[i] = saved + h;
    const double plus = loss();
    data[i] = saved - h;
    const double minus = loss();
    data[i] = saved;
    // Divide by the perturbation actually representable in float.
    const double step = static_cast<double>(saved + h) - static_cast<double>(saved - h);
    grad[i] = (plus - minus) / step;
  }
  return grad;
}

double dot(Tensor a, Tensor b) {
  PLM_CHECK_EQ(a.numel(), b.numel());
  const std::vector<float> x = to_vector(a), y = to_vector(b);
  double s = 0.0;
  for (size_t i = 0; i < x.size(); ++i) s += static_cast<double>(x[i]) * y[i];
  return s;
}

}  // namespace plm::testing
