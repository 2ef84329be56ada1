// Thin host-side wrappers over the CUDA runtime that core code outside .cu files uses, so that only
// core/cuda/ includes cuda_runtime.h. Every function is safe to call on a machine without a GPU except
// where it says it needs one.
#pragma once

#include <cstddef>
#include <string>

#include "core/device.h"

namespace plm {

// Number of usable CUDA devices; 0 when the driver or device is absent (never fails).
int cuda_device_count();
// Human-readable reason the count is 0 ("no CUDA device: cudaGetDeviceCount returned ..."), or "".
std::string cuda_unavailable_reason();

void cuda_set_device(int index);
void cuda_memcpy_async(void* dst, const void* src, size_t nbytes, Stream stream);
// rows x width_bytes between pitched buffers (any devices).
void cuda_memcpy_2d_async(void* dst, size_t dst_pitch_bytes, const void* src, size_t src_pitch_bytes,
                          size_t width_bytes, size_t rows, Stream stream);
void cuda_memset_async(void* dst, int value, size_t nbytes, Stream stream);
void cuda_stream_synchronize(Stream stream);
void cuda_synchronize_device();

// Owns a non-blocking CUDA stream on the current device.
class CudaStream {
 public:
  CudaStream();
  ~CudaStream();
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;

  Stream get() const { return stream_; }
  void synchronize() const { cuda_stream_synchronize(stream_); }

 private:
  Stream stream_;
};

}  // namespace plm
