// The safetensors file format: a reader that memory-maps one file and validates its header strictly,
// and an atomic writer. Layout: 8-byte little-endian header length N, N bytes of JSON
// {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}, then the data
// section; offsets are relative to the data section. Spec: spec/plm_spec.md §5.4.
//
// The mapping is PROT_READ + MAP_PRIVATE: tensor bytes are never copied at open, pages are read from the
// page cache on first touch, and they stay file-backed (reclaimable), so a mapped checkpoint does not count
// as process memory. Thread-safety: a SafetensorsFile is immutable after open().
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/tensor.h"

namespace plm::model {

// One tensor of a safetensors header.
struct SafetensorsEntry {
  DType dtype = DType::kF32;
  Shape shape;
  uint64_t begin = 0;  // byte range [begin, end) inside the data section
  uint64_t end = 0;
};

// The dtype spellings of the format ("F32", "BF16", ...) for the dtypes plm reads and writes.
const char* safetensors_dtype_name(DType dtype);

class SafetensorsFile {
 public:
  // Maps `path` and validates the header: length within the file, well-formed JSON, known dtypes, shape x
  // dtype size == byte range, ranges inside the data section and pairwise disjoint. Errors name the file.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // The entry's first byte inside the read-only mapping (writing through it faults).
  const std::byte* data(const SafetensorsEntry& entry) const { return data_section_ + entry.begin; }

 private:
  SafetensorsFile() = default;
  absl::Status parse_header(const std::string& header, uint64_t data_bytes);

  std::string path_;
  void* mapping_ = nullptr;
  size_t mapping_bytes_ = 0;
  const std::byte* data_section_ = nullptr;
  std::map<std::string, SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

struct NamedTensor {
  std::string name;
  Tensor tensor;  // contiguous, on the CPU
};

// Writes `tensors` to `path` atomically: a temporary file in the same directory, fsync, rename over
// `path`, fsync of the directory. Tensors are laid out by decreasing element size, so every tensor of a
// file written here is aligned to its element size (views need that). `metadata` goes to "__metadata__".
absl::Status write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                               const std::map<std::string, std::string>& metadata = {});

}  // namespace plm::model
