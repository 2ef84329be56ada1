// A thin layer over the HDF5 C API for plm's stores: owning handles that close themselves, chunked
// datasets that grow along dim 0, a JSON string attribute, and failures as Status values naming the file,
// the object and HDF5's own reason (HDF5's printing to stderr is switched off).
// Thread safety: the serial HDF5 library is not thread-safe, so every function here takes one
// process-wide lock; objects must not be shared between threads without outside synchronisation.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <hdf5.h>

#include "absl/status/statusor.h"
#include "core/tensor.h"

namespace plm::data::hdf5 {

// An owned hid_t; closes with the function matching its kind.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  Handle(Handle&& other) noexcept;
  Handle& operator=(Handle&& other) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle();

  hid_t id() const { return id_; }
  bool valid() const { return id_ >= 0; }
  // Closes now and reports a failure (a final flush of a file can fail here).
  absl::Status close(const std::string& what);

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

class File {
 public:
  static absl::StatusOr<File> create(const std::filesystem::path& path);     // truncates
  static absl::StatusOr<File> open_read(const std::filesystem::path& path);  // read-only
  const std::string& name() const { return name_; }
  hid_t id() const { return handle_.id(); }
  absl::Status close() { return handle_.close(name_); }

  absl::Status write_json_attribute(const std::string& attribute, const std::string& json_text);
  absl::StatusOr<std::string> read_json_attribute(const std::string& attribute) const;

 private:
  File(std::string name, Handle handle) : name_(std::move(name)), handle_(std::move(handle)) {}
  std::string name_;
  Handle handle_;
};

// Element types the stores use; files hold them little-endian.
enum class Element { kI32, kI64, kU8, kF32 };

struct Compression {
  int deflate_level = 1;  // 0..9; 0: no deflate (byte shuffle and a Fletcher-32 checksum always apply)
};

// One chunk as it lies in the file: its filtered bytes and HDF5's mask of skipped filters.
struct StoredChunk {
  std::vector<uint8_t> bytes;
  uint32_t filter_mask = 0;
};

// A chunked dataset of rows: shape (rows, row_shape...), growing along dim 0.
class Dataset {
 public:
  // chunk_rows rows per chunk; every chunk is shuffled, deflated and checksummed, so a corrupt chunk is an
  // error on read, never wrong data.
  static absl::StatusOr<Dataset> create(File& file, const std::string& name, Element element,
                                        const std::vector<int64_t>& row_shape, int64_t chunk_rows,
                                        const Compression& compression);
  // An error when the dataset is missing or its type or row shape differs.
  static absl::StatusOr<Dataset> open(const File& file, const std::string& name, Element element,
                                      const std::vector<int64_t>& row_shape);

  int64_t rows() const { return rows_; }
  int64_t row_elements() const { return row_elements_; }
  const std::vector<int64_t>& row_shape() const { return row_shape_; }
  absl::Status append(const void* data, int64_t num_rows);
  // Rows [begin, end) into out (row_elements() * (end - begin) elements).
  absl::Status read(int64_t begin, int64_t end, void* out) const;
  // The same in two halves for datasets of one row per chunk, so that decoding runs in parallel outside
  // the HDF5 lock: read_chunks copies rows [begin, end) as stored (the lock held only for the I/O), and
  // decode_chunk undoes the filters of one of them into out (row_elements() elements) without calling
  // HDF5: the Fletcher-32 checksum is verified, then inflate, then un-shuffle. Thread-safe.
  absl::StatusOr<std::vector<StoredChunk>> read_chunks(int64_t begin, int64_t end) const;
  absl::Status decode_chunk(const StoredChunk& chunk, int64_t row, void* out) const;
  hid_t id() const { return handle_.id(); }
  absl::Status close() { return handle_.close(where_); }

 private:
  Dataset(std::string where, Handle handle, Element element, std::vector<int64_t> row_shape, int64_t rows,
          int64_t chunk_rows, std::vector<H5Z_filter_t> filters);
  std::string where_;  // "file.h5:/name"
  Handle handle_;
  Element element_;
  std::vector<int64_t> row_shape_;
  int64_t row_elements_;
  int64_t rows_;
  int64_t chunk_rows_;
  std::vector<H5Z_filter_t> filters_;  // the pipeline in write order
};

// A whole 1-D dataset of int64 (offsets, counts) written or read at once.
absl::Status write_i64_vector(File& file, const std::string& name, const std::vector<int64_t>& values,
                              const Compression& compression);
absl::StatusOr<std::vector<int64_t>> read_i64_vector(const File& file, const std::string& name);

// A whole 1-D dataset of variable-length UTF-8 strings (ids), chunked, written or read at once (h5py reads it
// as bytes objects, or str with .asstr()).
absl::Status write_string_vector(File& file, const std::string& name, const std::vector<std::string>& values);
absl::StatusOr<std::vector<std::string>> read_string_vector(const File& file, const std::string& name);

}  // namespace plm::data::hdf5
