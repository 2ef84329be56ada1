// matmul on CUDA through cuBLASLt: a, b, c (and bias) all f32 or all bf16, f32 compute without TF32 so
// the f32 result matches the CPU oracle. cuBLASLt is column-major: the row-major product c = op(a) op(b)
// is run as c^T = op(b)^T op(a)^T, which reads each row-major buffer as the transposed column-major one.
// Thread-safety: one handle and one workspace per device, shared by every stream of the process, so two
// streams must not run matmuls on one device concurrently (plm computes on one stream per device).
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <vector>

#include "core/cuda/caching_allocator.h"
#include "core/cuda/cuda_check.h"
#include "core/kernels/backends.h"

#define PLM_CUBLAS_CHECK(expr)                                                                   \
  do {                                                                                           \
    const cublasStatus_t plm_cublas_status_ = (expr);                                            \
    PLM_CHECK(plm_cublas_status_ == CUBLAS_STATUS_SUCCESS)                                       \
        << #expr << ": " << cublasLtGetStatusName(plm_cublas_status_) << " ("                   \
        << cublasLtGetStatusString(plm_cublas_status_) << ")";                                   \
  } while (0)

namespace plm::cuda {
namespace {

constexpr size_t kWorkspaceBytes = size_t{32} << 20;
// cuBLASLt assumes 256-byte aligned operands unless told less; we tell it the truth, capped there.
constexpr uint64_t kMaxAlignmentBytes = 256;

// Everything the heuristic's choice depends on, after batch folding (dims in the row-major sense).
struct MatmulKey {
  int64_t m, n, k, batch;
  int64_t stride_a, stride_b, stride_c;  // batch strides, elements (0: shared)
  DType dtype;
  bool trans_a, trans_b, has_bias;
  uint64_t align_a, align_b, align_c, align_bias;  // bytes
  auto operator<=>(const MatmulKey&) const = default;
};

// One cuBLASLt handle, workspace and algorithm cache per device, created on first use. Contexts live for
// the process: destroying them at exit would race the static teardown of the allocator and of CUDA.
class CublasLtContext {
 public:
  static CublasLtContext& for_device(int device) {
    static std::mutex registry_mutex;
    static std::vector<CublasLtContext*> registry;
    std::lock_guard<std::mutex> lock(registry_mutex);
    PLM_CHECK_GE(device, 0);
    if (static_cast<size_t>(device) >= registry.size()) registry.resize(device + 1, nullptr);
    if (registry[device] == nullptr) registry[device] = new CublasLtContext(device);
    return *registry[device];
  }

  CublasLtContext(const CublasLtContext&) = delete;
  CublasLtContext& operator=(const CublasLtContext&) = delete;

  cublasLtHandle_t handle() const { return handle_; }
  void* workspace() const { return workspace_; }

  // The cached algorithm for key, or else the heuristic's first choice for these descriptors (which
  // must describe key exactly), cached.
  cublasLtMatmulAlgo_t algorithm(const MatmulKey& key, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t a,
                                 cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c,
                                 cublasLtMatmulPreference_t preference) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto it = algorithms_.find(key);
    if (it != algorithms_.end()) return it->second;
    cublasLtMatmulHeuristicResult_t result{};
    int num_results = 0;
    const cublasStatus_t status =
        cublasLtMatmulAlgoGetHeuristic(handle_, desc, a, b, c, c, preference, 1, &result, &num_results);
    PLM_CHECK(status == CUBLAS_STATUS_SUCCESS && num_results > 0)
        << "matmul: cuBLASLt has no algorithm for M=" << key.m << " N=" << key.n << " K=" << key.k
        << " batch=" << key.batch << " " << dtype_name(key.dtype) << " trans_a=" << key.trans_a
        << " trans_b=" << key.trans_b << " bias=" << key.has_bias << " (" << cublasLtGetStatusName(status)
        << ")";
    algorithms_.emplace(key, result.algo);
    return result.algo;
  }

 private:
  explicit CublasLtContext(int device) {
    int previous = 0;
    PLM_CUDA_CHECK(cudaGetDevice(&previous));
    PLM_CUDA_CHECK(cudaSetDevice(device));
    PLM_CUBLAS_CHECK(cublasLtCreate(&handle_));
    PLM_CUDA_CHECK(cudaSetDevice(previous));
    workspace_ = CachingAllocator::for_device(device).allocate(kWorkspaceBytes);
  }

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  std::mutex mutex_;
  std::map<MatmulKey, cublasLtMatmulAlgo_t> algorithms_;
};

// RAII owners of the three cuBLASLt descriptor kinds.
class MatmulDesc {
 public:
  MatmulDesc() { PLM_CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc_, CUBLAS_COMPUTE_32F, CUDA_R_32F)); }
  ~MatmulDesc() { cublasLtMatmulDescDestroy(desc_); }
  MatmulDesc(const MatmulDesc&) = delete;
  MatmulDesc& operator=(const MatmulDesc&) = delete;
  template <typename V>
  void set(cublasLtMatmulDescAttributes_t attribute, const V& value) {
    PLM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, attribute, &value, sizeof(value)));
  }
  cublasLtMatmulDesc_t get() const { return desc_; }

 private:
  cublasLtMatmulDesc_t desc_ = nullptr;
};

class MatrixLayout {
 public:
  // A column-major (rows, cols) matrix with leading dimension ld, repeated batch times every stride elements.
  MatrixLayout(cudaDataType type, int64_t rows, int64_t cols, int64_t ld, int64_t batch, int64_t stride) {
    PLM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&layout_, type, static_cast<uint64_t>(rows),
                                                static_cast<uint64_t>(cols), ld));
    const int32_t batch_count = static_cast<int32_t>(batch);
    PLM_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(layout_, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch_count,
                                                      sizeof(batch_count)));
    PLM_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(layout_, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                      &stride, sizeof(stride)));
  }
  ~MatrixLayout() { cublasLtMatrixLayoutDestroy(layout_); }
  MatrixLayout(const MatrixLayout&) = delete;
  MatrixLayout& operator=(const MatrixLayout&) = delete;
  cublasLtMatrixLayout_t get() const { return layout_; }

 private:
  cublasLtMatrixLayout_t layout_ = nullptr;
};

class MatmulPreference {
 public:
  explicit MatmulPreference(const MatmulKey& key) {
    PLM_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&preference_));
    const uint64_t workspace_bytes = kWorkspaceBytes;
    set(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, workspace_bytes);
    set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, static_cast<uint32_t>(key.align_b));  // cuBLASLt's A is our b
    set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, static_cast<uint32_t>(key.align_a));
    set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, static_cast<uint32_t>(key.align_c));
    set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, static_cast<uint32_t>(key.align_c));
  }
  ~MatmulPreference() { cublasLtMatmulPreferenceDestroy(preference_); }
  MatmulPreference(const MatmulPreference&) = delete;
  MatmulPreference& operator=(const MatmulPreference&) = delete;
  cublasLtMatmulPreference_t get() const { return preference_; }

 private:
  template <typename V>
  void set(cublasLtMatmulPreferenceAttributes_t attribute, const V& value) {
    PLM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference_, attribute, &value, sizeof(value)));
  }
  cublasLtMatmulPreference_t preference_ = nullptr;
};

// The largest power of two (<= 256) dividing the address of every batch entry.
uint64_t alignment_bytes(const void* ptr, int64_t batch_stride_bytes) {
  const uint64_t bits =
      static_cast<uint64_t>(reinterpret_cast<uintptr_t>(ptr)) | static_cast<uint64_t>(batch_stride_bytes) |
      kMaxAlignmentBytes;
  return bits & (~bits + 1);
}

cudaDataType cuda_data_type(DType dtype) {
  return dtype == DType::kF32 ? CUDA_R_32F : CUDA_R_16BF;
}

// K == 0: the product is empty, so c (rows, n) = beta * c + bias. beta == 0 does not read c (BLAS rule).
template <typename T>
__global__ void scale_add_bias_kernel(T* c, const T* bias, float beta, int64_t rows, int64_t n) {
  const int64_t total = rows * n;
  for (int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; idx < total;
       idx += int64_t{gridDim.x} * blockDim.x) {
    float value = beta == 0.0f ? 0.0f : beta * static_cast<float>(c[idx]);
    if (bias != nullptr) value += static_cast<float>(bias[idx % n]);
    c[idx] = T(value);
  }
}

template <typename T>
void scale_add_bias(Tensor c, Tensor bias, float beta, int64_t rows, int64_t n, cudaStream_t stream) {
  constexpr int kThreads = 256;
  constexpr int64_t kMaxBlocks = 4096;
  const int64_t blocks = std::min(kMaxBlocks, (rows * n + kThreads - 1) / kThreads);
  scale_add_bias_kernel<T><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
      static_cast<T*>(c.data()), bias.defined() ? static_cast<const T*>(bias.data()) : nullptr, beta, rows, n);
  PLM_CUDA_CHECK_LAUNCH();
}

bool same_leading_dims(const Tensor& x, const Tensor& c) {
  if (x.rank() != c.rank()) return false;
  for (int d = 0; d < c.rank() - 2; ++d) {
    if (x.size(d) != c.size(d)) return false;
  }
  return true;
}

}  // namespace

void matmul(Tensor c, Tensor a, Tensor b, const MatmulOptions& options, Stream s) {
  PLM_CHECK(!options.b_panels) << "matmul: weight panels are a CPU layout";
  const Tensor& bias = options.bias;
  PLM_CHECK(c.is_cuda() && a.device() == c.device() && b.device() == c.device())
      << "matmul: c " << c.describe() << ", a " << a.describe() << ", b " << b.describe()
      << " must be on one CUDA device";
  PLM_CHECK((c.dtype() == DType::kF32 || c.dtype() == DType::kBF16) && a.dtype() == c.dtype() &&
            b.dtype() == c.dtype())
      << "matmul (CUDA): a, b, c must all be f32 or all bf16, got a " << a.describe() << ", b " << b.describe()
      << ", c " << c.describe();
  PLM_CHECK(options.compute == DType::kF32 || options.compute == c.dtype())
      << "matmul (CUDA): compute " << dtype_name(options.compute) << " with " << c.describe() << " operands";
  PLM_CHECK(c.is_contiguous() && a.is_contiguous() && b.is_contiguous())
      << "matmul: needs contiguous tensors, got c " << c.describe() << ", a " << a.describe() << ", b "
      << b.describe();
  PLM_CHECK(c.rank() >= 2 && b.rank() >= 2 && same_leading_dims(a, c) && (b.rank() == 2 || same_leading_dims(b, c)))
      << "matmul: c " << c.describe() << " needs a " << a.describe() << " with its batch dims and b "
      << b.describe() << " with them too or 2-D";

  const int64_t m = c.size(-2);
  const int64_t n = c.size(-1);
  const int64_t k = options.trans_a ? a.size(-2) : a.size(-1);
  const int64_t a_m = options.trans_a ? a.size(-1) : a.size(-2);
  const int64_t b_k = options.trans_b ? b.size(-1) : b.size(-2);
  const int64_t b_n = options.trans_b ? b.size(-2) : b.size(-1);
  PLM_CHECK(a_m == m && b_k == k && b_n == n)
      << "matmul: c " << c.describe() << " = op(a " << a.describe() << ") op(b " << b.describe()
      << ") with trans_a=" << options.trans_a << " trans_b=" << options.trans_b << " gives (" << a_m << ", " << k
      << ") x (" << b_k << ", " << b_n << ")";
  if (bias.defined()) {
    PLM_CHECK(bias.rank() == 1 && bias.size(0) == n && bias.dtype() == c.dtype() && bias.device() == c.device() &&
              bias.is_contiguous())
        << "matmul: bias " << bias.describe() << " must be (" << n << ") like c " << c.describe();
  }

  const int64_t batch = c.numel() / std::max<int64_t>(m * n, 1);
  if (m == 0 || n == 0 || batch == 0) return;
  const cudaStream_t stream = static_cast<cudaStream_t>(s.handle);
  if (k == 0) {
    if (c.dtype() == DType::kF32) {
      scale_add_bias<float>(c, bias, options.beta, batch * m, n, stream);
    } else {
      scale_add_bias<bf16>(c, bias, options.beta, batch * m, n, stream);
    }
    return;
  }

  // A 2-D b shared by the batch: with a not transposed, the batch is just more rows of a and c.
  const bool shared_b = b.rank() == 2;
  const bool fold = shared_b && !options.trans_a;
  const int64_t elem_bytes = static_cast<int64_t>(dtype_size(c.dtype()));
  MatmulKey key{};
  key.m = fold ? batch * m : m;
  key.n = n;
  key.k = k;
  key.batch = fold ? 1 : batch;
  key.stride_a = key.batch > 1 ? m * k : 0;
  key.stride_b = key.batch > 1 && !shared_b ? k * n : 0;
  key.stride_c = key.batch > 1 ? m * n : 0;
  key.dtype = c.dtype();
  key.trans_a = options.trans_a;
  key.trans_b = options.trans_b;
  key.has_bias = bias.defined();
  key.align_a = alignment_bytes(a.data(), key.stride_a * elem_bytes);
  key.align_b = alignment_bytes(b.data(), key.stride_b * elem_bytes);
  key.align_c = alignment_bytes(c.data(), key.stride_c * elem_bytes);
  key.align_bias = bias.defined() ? alignment_bytes(bias.data(), 0) : 0;
  PLM_CHECK_LE(key.batch, int64_t{INT32_MAX}) << "matmul: batch count for cuBLASLt";

  const cudaDataType type = cuda_data_type(c.dtype());
  MatmulDesc desc;
  desc.set(CUBLASLT_MATMUL_DESC_TRANSA, options.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N);
  desc.set(CUBLASLT_MATMUL_DESC_TRANSB, options.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N);
  if (bias.defined()) {
    // Column-major D is (n, m): its rows are c's columns, which is where the bias vector runs.
    desc.set(CUBLASLT_MATMUL_DESC_EPILOGUE, CUBLASLT_EPILOGUE_BIAS);
    desc.set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, static_cast<const void*>(bias.data()));
    desc.set(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, static_cast<int32_t>(type));
  }
  // cuBLASLt's A is b: column-major (n, k) as stored, or (k, n) transposed by the op.
  const MatrixLayout layout_b(type, options.trans_b ? k : n, options.trans_b ? n : k, options.trans_b ? k : n,
                              key.batch, key.stride_b);
  // cuBLASLt's B is a: column-major (k, m) as stored, or (m, k) transposed by the op.
  const MatrixLayout layout_a(type, options.trans_a ? key.m : k, options.trans_a ? k : key.m,
                              options.trans_a ? key.m : k, key.batch, key.stride_a);
  const MatrixLayout layout_c(type, n, key.m, n, key.batch, key.stride_c);
  const MatmulPreference preference(key);

  CublasLtContext& context = CublasLtContext::for_device(c.device().index);
  const cublasLtMatmulAlgo_t algo =
      context.algorithm(key, desc.get(), layout_b.get(), layout_a.get(), layout_c.get(), preference.get());
  const float alpha = options.alpha;
  const float beta = options.beta;
  PLM_CUBLAS_CHECK(cublasLtMatmul(context.handle(), desc.get(), &alpha, b.data(), layout_b.get(), a.data(),
                                  layout_a.get(), &beta, c.data(), layout_c.get(), c.data(), layout_c.get(), &algo,
                                  context.workspace(), kWorkspaceBytes, stream));
}

}  // namespace plm::cuda
