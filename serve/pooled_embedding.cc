#include "serve/pooled_embedding.h"

#include "core/check.h"
#include "core/dtype.h"

namespace plm::serve {

namespace {

template <typename T>
void add_rows(const T* data, int64_t rows, int64_t cols, std::vector<double>& sum) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) sum[c] += static_cast<double>(static_cast<float>(data[r * cols + c]));
  }
}

}  // namespace

void PooledEmbedding::add(Tensor rows) {
  PLM_CHECK_EQ(rows.shape().rank(), 2) << "pooled rows must be (n, H)";
  const OwnedTensor host = to_device(rows, Device::cpu());
  const int64_t n = host.size(0), h = host.size(1);
  if (sum_.empty()) sum_.assign(h, 0.0);
  PLM_CHECK_EQ(static_cast<int64_t>(sum_.size()), h) << "rows of another width";
  switch (host.dtype()) {
    case DType::kF32: add_rows(host.data_as<float>(), n, h, sum_); break;
    case DType::kBF16: add_rows(host.data_as<bf16>(), n, h, sum_); break;
    case DType::kF16: add_rows(host.data_as<f16>(), n, h, sum_); break;
    case DType::kI32:
    case DType::kI64:
    case DType::kU8: PLM_CHECK(false) << "pooled rows must be floating point, not " << dtype_name(host.dtype());
  }
  num_rows_ += n;
}

std::vector<float> PooledEmbedding::mean() const {
  std::vector<float> out(sum_.size());
  for (size_t i = 0; i < sum_.size(); ++i) out[i] = static_cast<float>(sum_[i] / static_cast<double>(num_rows_));
  return out;
}

}  // namespace plm::serve
