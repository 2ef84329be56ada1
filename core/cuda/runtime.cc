#include "core/cuda/runtime.h"

#include "core/cuda/cuda_check.h"

namespace plm {

namespace {
cudaStream_t as_cuda(Stream s) { return static_cast<cudaStream_t>(s.handle); }
}  // namespace

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return count;
}

std::string cuda_unavailable_reason() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return std::string("no CUDA device: cudaGetDeviceCount returned ") + cudaGetErrorName(err) + " (" +
           cudaGetErrorString(err) + ")";
  }
  return count == 0 ? "no CUDA device: cudaGetDeviceCount found 0 devices" : "";
}

void cuda_set_device(int index) { PLM_CUDA_CHECK(cudaSetDevice(index)); }

void cuda_memcpy_async(void* dst, const void* src, size_t nbytes, Stream stream) {
  PLM_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDefault, as_cuda(stream)));
}

void cuda_memcpy_2d_async(void* dst, size_t dst_pitch_bytes, const void* src, size_t src_pitch_bytes,
                          size_t width_bytes, size_t rows, Stream stream) {
  PLM_CUDA_CHECK(cudaMemcpy2DAsync(dst, dst_pitch_bytes, src, src_pitch_bytes, width_bytes, rows, cudaMemcpyDefault,
                                   as_cuda(stream)));
}

void cuda_memset_async(void* dst, int value, size_t nbytes, Stream stream) {
  PLM_CUDA_CHECK(cudaMemsetAsync(dst, value, nbytes, as_cuda(stream)));
}

void cuda_stream_synchronize(Stream stream) { PLM_CUDA_CHECK(cudaStreamSynchronize(as_cuda(stream))); }

void cuda_synchronize_device() { PLM_CUDA_CHECK(cudaDeviceSynchronize()); }

CudaStream::CudaStream() {
  cudaStream_t s = nullptr;
  PLM_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  stream_.handle = s;
}

CudaStream::~CudaStream() { cudaStreamDestroy(as_cuda(stream_)); }

}  // namespace plm
