// Where a tensor's bytes live, and the stream work on them is ordered by.
// Stream is a non-owning handle (a cudaStream_t on CUDA, ignored on CPU) so core headers need no CUDA include.
#pragma once

#include <string>

namespace plm {

enum class DeviceType : uint8_t { kCpu, kCuda };

struct Device {
  DeviceType type = DeviceType::kCpu;
  int index = 0;

  static constexpr Device cpu() { return {DeviceType::kCpu, 0}; }
  static constexpr Device cuda(int index = 0) { return {DeviceType::kCuda, index}; }
  constexpr bool is_cpu() const { return type == DeviceType::kCpu; }
  constexpr bool is_cuda() const { return type == DeviceType::kCuda; }
  constexpr bool operator==(const Device&) const = default;
  std::string to_string() const;
};

// Non-owning. A default Stream is the CPU (synchronous) or the CUDA legacy default stream.
struct Stream {
  void* handle = nullptr;  // cudaStream_t
};

}  // namespace plm
