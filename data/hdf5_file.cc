#include "data/hdf5_file.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/check.h"

namespace plm::data::hdf5 {
namespace {

// The serial HDF5 library keeps global state; one recursive lock serialises every call made from here.
std::unique_lock<std::recursive_mutex> lock() {
  static std::recursive_mutex mutex;
  static std::once_flag quiet;
  std::unique_lock<std::recursive_mutex> guard(mutex);
  std::call_once(quiet, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });  // errors come back as Status
  return guard;
}

// HDF5's error stack, innermost reason first, then cleared.
std::string hdf5_reason() {
  std::vector<std::string> reasons;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned, const H5E_error2_t* error, void* data) -> herr_t {
        if (error->desc != nullptr && error->desc[0] != '\0') static_cast<std::vector<std::string>*>(data)->push_back(error->desc);
        return 0;
      },
      &reasons);
  H5Eclear2(H5E_DEFAULT);
  if (reasons.size() > 3) reasons.resize(3);
  return reasons.empty() ? "unknown HDF5 error" : absl::StrJoin(reasons, "; ");
}

// HDF5's Fletcher-32 (H5checksum.c): big-endian 16-bit words, sums folded every 360 words, an odd last
// byte as the high half of a word.
uint32_t fletcher32(const uint8_t* data, size_t length) {
  uint32_t sum1 = 0, sum2 = 0;
  for (size_t words = length / 2; words > 0;) {
    size_t block = std::min<size_t>(words, 360);
    words -= block;
    for (; block > 0; --block, data += 2) {
      sum1 += static_cast<uint32_t>(data[0]) << 8 | data[1];
      sum2 += sum1;
    }
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  }
  if (length % 2 != 0) {
    sum1 += static_cast<uint32_t>(*data) << 8;
    sum2 += sum1;
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  }
  sum1 = (sum1 & 0xffff) + (sum1 >> 16);
  sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  return sum2 << 16 | sum1;
}

absl::Status failure(absl::StatusCode code, const std::string& where, const std::string& what) {
  return absl::Status(code, absl::StrCat(where, ": ", what, " (HDF5: ", hdf5_reason(), ")"));
}

hid_t file_type(Element e) {
  switch (e) {
    case Element::kI32: return H5T_STD_I32LE;
    case Element::kI64: return H5T_STD_I64LE;
    case Element::kU8: return H5T_STD_U8LE;
    case Element::kF32: return H5T_IEEE_F32LE;
  }
  return H5I_INVALID_HID;
}

hid_t memory_type(Element e) {
  switch (e) {
    case Element::kI32: return H5T_NATIVE_INT32;
    case Element::kI64: return H5T_NATIVE_INT64;
    case Element::kU8: return H5T_NATIVE_UINT8;
    case Element::kF32: return H5T_NATIVE_FLOAT;
  }
  return H5I_INVALID_HID;
}

size_t element_size(Element e) {
  switch (e) {
    case Element::kI32: return 4;
    case Element::kI64: return 8;
    case Element::kU8: return 1;
    case Element::kF32: return 4;
  }
  return 0;
}

const char* element_name(Element e) {
  switch (e) {
    case Element::kI32: return "int32";
    case Element::kI64: return "int64";
    case Element::kU8: return "uint8";
    case Element::kF32: return "float32";
  }
  return "";
}

}  // namespace

Handle::Handle(Handle&& other) noexcept : id_(other.id_), closer_(other.closer_) { other.id_ = H5I_INVALID_HID; }

Handle& Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    if (valid()) (void)close("");
    id_ = other.id_;
    closer_ = other.closer_;
    other.id_ = H5I_INVALID_HID;
  }
  return *this;
}

Handle::~Handle() {
  if (valid()) (void)close("");
}

absl::Status Handle::close(const std::string& what) {
  if (!valid()) return absl::OkStatus();
  const auto guard = lock();
  const herr_t result = closer_(id_);
  id_ = H5I_INVALID_HID;
  if (result < 0) return failure(absl::StatusCode::kDataLoss, what, "closing failed");
  return absl::OkStatus();
}

absl::StatusOr<File> File::create(const std::filesystem::path& path) {
  const auto guard = lock();
  const hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (id < 0) return failure(absl::StatusCode::kPermissionDenied, path.string(), "cannot create");
  return File(path.string(), Handle(id, H5Fclose));
}

absl::StatusOr<File> File::open_read(const std::filesystem::path& path) {
  const auto guard = lock();
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) return absl::NotFoundError(absl::StrCat(path.string(), ": cannot open"));
  const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) return failure(absl::StatusCode::kDataLoss, path.string(), "not a readable HDF5 file (truncated or corrupt?)");
  return File(path.string(), Handle(id, H5Fclose));
}

absl::Status File::write_json_attribute(const std::string& attribute, const std::string& json_text) {
  const auto guard = lock();
  const std::string where = absl::StrCat(name_, " attribute ", attribute);
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  if (!type.valid() || H5Tset_size(type.id(), std::max<size_t>(json_text.size(), 1)) < 0 ||
      H5Tset_strpad(type.id(), H5T_STR_NULLPAD) < 0) {
    return failure(absl::StatusCode::kInternal, where, "cannot make a string type");
  }
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr(H5Acreate2(id(), attribute.c_str(), type.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attr.valid() || H5Awrite(attr.id(), type.id(), json_text.c_str()) < 0) {
    return failure(absl::StatusCode::kDataLoss, where, "cannot write");
  }
  return attr.close(where);
}

absl::StatusOr<std::string> File::read_json_attribute(const std::string& attribute) const {
  const auto guard = lock();
  const std::string where = absl::StrCat(name_, " attribute ", attribute);
  if (H5Aexists(id(), attribute.c_str()) <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": missing (not a store written by plm)"));
  }
  Handle attr(H5Aopen(id(), attribute.c_str(), H5P_DEFAULT), H5Aclose);
  Handle type(attr.valid() ? H5Aget_type(attr.id()) : H5I_INVALID_HID, H5Tclose);
  if (!type.valid() || H5Tget_class(type.id()) != H5T_STRING || H5Tis_variable_str(type.id()) != 0) {
    return failure(absl::StatusCode::kDataLoss, where, "not a fixed-length string");
  }
  std::string text(H5Tget_size(type.id()), '\0');
  if (H5Aread(attr.id(), type.id(), text.data()) < 0) return failure(absl::StatusCode::kDataLoss, where, "cannot read");
  text.resize(text.find_last_not_of('\0') + 1);  // NULLPAD
  return text;
}

Dataset::Dataset(std::string where, Handle handle, Element element, std::vector<int64_t> row_shape, int64_t rows,
                 int64_t chunk_rows, std::vector<H5Z_filter_t> filters)
    : where_(std::move(where)), handle_(std::move(handle)), element_(element), row_shape_(std::move(row_shape)),
      rows_(rows), chunk_rows_(chunk_rows), filters_(std::move(filters)) {
  row_elements_ = 1;
  for (int64_t d : row_shape_) row_elements_ *= d;
}

absl::StatusOr<Dataset> Dataset::create(File& file, const std::string& name, Element element,
                                        const std::vector<int64_t>& row_shape, int64_t chunk_rows,
                                        const Compression& compression) {
  PLM_CHECK(chunk_rows > 0 && compression.deflate_level >= 0 && compression.deflate_level <= 9)
      << chunk_rows << " " << compression.deflate_level;
  const auto guard = lock();
  const std::string where = absl::StrCat(file.name(), ":/", name);
  std::vector<hsize_t> dims{0}, max_dims{H5S_UNLIMITED}, chunk{static_cast<hsize_t>(chunk_rows)};
  for (int64_t d : row_shape) {
    dims.push_back(d);
    max_dims.push_back(d);
    chunk.push_back(d);
  }
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), max_dims.data()), H5Sclose);
  Handle properties(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  std::vector<H5Z_filter_t> filters{H5Z_FILTER_SHUFFLE};
  bool ok = space.valid() && properties.valid() &&
            H5Pset_chunk(properties.id(), static_cast<int>(chunk.size()), chunk.data()) >= 0 &&
            H5Pset_shuffle(properties.id()) >= 0;
  if (ok && compression.deflate_level > 0) {
    ok = H5Pset_deflate(properties.id(), compression.deflate_level) >= 0;
    filters.push_back(H5Z_FILTER_DEFLATE);
  }
  ok = ok && H5Pset_fletcher32(properties.id()) >= 0;  // last: the checksum covers the bytes on disk
  filters.push_back(H5Z_FILTER_FLETCHER32);
  if (!ok) return failure(absl::StatusCode::kInternal, where, "cannot set up chunking and filters");
  Handle dataset(H5Dcreate2(file.id(), name.c_str(), file_type(element), space.id(), H5P_DEFAULT, properties.id(),
                            H5P_DEFAULT),
                 H5Dclose);
  if (!dataset.valid()) return failure(absl::StatusCode::kDataLoss, where, "cannot create");
  return Dataset(where, std::move(dataset), element, row_shape, 0, chunk_rows, std::move(filters));
}

absl::StatusOr<Dataset> Dataset::open(const File& file, const std::string& name, Element element,
                                      const std::vector<int64_t>& row_shape) {
  const auto guard = lock();
  const std::string where = absl::StrCat(file.name(), ":/", name);
  if (H5Lexists(file.id(), name.c_str(), H5P_DEFAULT) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    return absl::DataLossError(absl::StrCat(where, ": missing"));
  }
  Handle dataset(H5Dopen2(file.id(), name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!dataset.valid()) return failure(absl::StatusCode::kDataLoss, where, "cannot open");
  Handle type(H5Dget_type(dataset.id()), H5Tclose);
  if (!type.valid() || H5Tequal(type.id(), file_type(element)) <= 0) {
    return absl::DataLossError(absl::StrCat(where, ": expected little-endian ", element_name(element), " elements"));
  }
  Handle space(H5Dget_space(dataset.id()), H5Sclose);
  const int rank = space.valid() ? H5Sget_simple_extent_ndims(space.id()) : -1;
  std::vector<hsize_t> dims(rank > 0 ? rank : 0);
  if (rank != static_cast<int>(row_shape.size()) + 1 || H5Sget_simple_extent_dims(space.id(), dims.data(), nullptr) < 0) {
    return absl::DataLossError(absl::StrCat(where, ": expected ", row_shape.size() + 1, " dimensions"));
  }
  for (size_t i = 0; i < row_shape.size(); ++i) {
    if (static_cast<int64_t>(dims[i + 1]) != row_shape[i]) {
      return absl::DataLossError(absl::StrCat(where, ": dimension ", i + 1, " is ", dims[i + 1], ", expected ", row_shape[i]));
    }
  }
  Handle properties(H5Dget_create_plist(dataset.id()), H5Pclose);
  std::vector<hsize_t> chunk(dims.size());
  const int num_filters = properties.valid() ? H5Pget_nfilters(properties.id()) : -1;
  if (num_filters < 0 || H5Pget_layout(properties.id()) != H5D_CHUNKED ||
      H5Pget_chunk(properties.id(), static_cast<int>(chunk.size()), chunk.data()) < 0) {
    return failure(absl::StatusCode::kDataLoss, where, "not a chunked dataset");
  }
  std::vector<H5Z_filter_t> filters;
  for (int i = 0; i < num_filters; ++i) {
    unsigned flags = 0;
    size_t num_values = 0;
    unsigned filter_config = 0;
    filters.push_back(H5Pget_filter2(properties.id(), static_cast<unsigned>(i), &flags, &num_values, nullptr, 0,
                                     nullptr, &filter_config));
  }
  return Dataset(where, std::move(dataset), element, row_shape, static_cast<int64_t>(dims[0]),
                 static_cast<int64_t>(chunk[0]), std::move(filters));
}

absl::Status Dataset::append(const void* data, int64_t num_rows) {
  if (num_rows == 0) return absl::OkStatus();
  const auto guard = lock();
  std::vector<hsize_t> new_dims{static_cast<hsize_t>(rows_ + num_rows)}, start{static_cast<hsize_t>(rows_)},
      count{static_cast<hsize_t>(num_rows)};
  for (int64_t d : row_shape_) {
    new_dims.push_back(d);
    start.push_back(0);
    count.push_back(d);
  }
  if (H5Dset_extent(handle_.id(), new_dims.data()) < 0) return failure(absl::StatusCode::kDataLoss, where_, "cannot grow");
  Handle file_space(H5Dget_space(handle_.id()), H5Sclose);
  Handle memory_space(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), H5Sclose);
  if (!file_space.valid() || !memory_space.valid() ||
      H5Sselect_hyperslab(file_space.id(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr) < 0 ||
      H5Dwrite(handle_.id(), memory_type(element_), memory_space.id(), file_space.id(), H5P_DEFAULT, data) < 0) {
    return failure(absl::StatusCode::kDataLoss, where_, absl::StrCat("cannot write rows ", rows_, "..", rows_ + num_rows));
  }
  rows_ += num_rows;
  return absl::OkStatus();
}

absl::Status Dataset::read(int64_t begin, int64_t end, void* out) const {
  PLM_CHECK(0 <= begin && begin <= end && end <= rows_) << where_ << " rows " << begin << ".." << end << " of " << rows_;
  if (begin == end) return absl::OkStatus();
  const auto guard = lock();
  std::vector<hsize_t> start{static_cast<hsize_t>(begin)}, count{static_cast<hsize_t>(end - begin)};
  for (int64_t d : row_shape_) {
    start.push_back(0);
    count.push_back(d);
  }
  Handle file_space(H5Dget_space(handle_.id()), H5Sclose);
  Handle memory_space(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), H5Sclose);
  if (!file_space.valid() || !memory_space.valid() ||
      H5Sselect_hyperslab(file_space.id(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr) < 0 ||
      H5Dread(handle_.id(), memory_type(element_), memory_space.id(), file_space.id(), H5P_DEFAULT, out) < 0) {
    return failure(absl::StatusCode::kDataLoss, where_, absl::StrCat("cannot read rows ", begin, "..", end));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<StoredChunk>> Dataset::read_chunks(int64_t begin, int64_t end) const {
  PLM_CHECK(chunk_rows_ == 1 && 0 <= begin && begin <= end && end <= rows_)
      << where_ << " rows " << begin << ".." << end << " of " << rows_ << ", " << chunk_rows_ << " per chunk";
  const auto guard = lock();
  std::vector<StoredChunk> chunks(static_cast<size_t>(end - begin));
  std::vector<hsize_t> offset(row_shape_.size() + 1, 0);
  for (int64_t row = begin; row < end; ++row) {
    offset[0] = static_cast<hsize_t>(row);
    StoredChunk& chunk = chunks[row - begin];
    hsize_t size = 0;
    if (H5Dget_chunk_storage_size(handle_.id(), offset.data(), &size) < 0 || size == 0) {
      return failure(absl::StatusCode::kDataLoss, where_, absl::StrCat("row ", row, ": no stored chunk"));
    }
    chunk.bytes.resize(size);
    if (H5Dread_chunk(handle_.id(), H5P_DEFAULT, offset.data(), &chunk.filter_mask, chunk.bytes.data()) < 0) {
      return failure(absl::StatusCode::kDataLoss, where_, absl::StrCat("cannot read the chunk of row ", row));
    }
  }
  return chunks;
}

absl::Status Dataset::decode_chunk(const StoredChunk& chunk, int64_t row, void* out) const {
  const size_t element_bytes = element_size(element_);
  const size_t expected = static_cast<size_t>(row_elements_) * element_bytes;
  const auto corrupt = [&](const std::string& what) {
    return absl::DataLossError(absl::StrCat(where_, ": the chunk of row ", row, " ", what, " (corrupt file)"));
  };
  std::vector<uint8_t> bytes = chunk.bytes;
  for (size_t i = filters_.size(); i-- > 0;) {
    if (chunk.filter_mask & (1u << i)) continue;  // HDF5 skipped this filter when writing
    switch (filters_[i]) {
      case H5Z_FILTER_FLETCHER32: {
        if (bytes.size() < 4) return corrupt("is too short for its checksum");
        const size_t length = bytes.size() - 4;
        const uint32_t stored = static_cast<uint32_t>(bytes[length]) | static_cast<uint32_t>(bytes[length + 1]) << 8 |
                                static_cast<uint32_t>(bytes[length + 2]) << 16 | static_cast<uint32_t>(bytes[length + 3]) << 24;
        const uint32_t sum = fletcher32(bytes.data(), length);
        // HDF5 also accepts the byte-swapped sum that releases before 1.6.7 wrote.
        const uint32_t swapped = (sum >> 24) | ((sum >> 8) & 0xff00u) | ((sum << 8) & 0xff0000u) | (sum << 24);
        if (stored != sum && stored != swapped) return corrupt("fails its Fletcher-32 checksum");
        bytes.resize(length);
        break;
      }
      case H5Z_FILTER_DEFLATE: {
        std::vector<uint8_t> inflated(expected);
        uLongf size = static_cast<uLongf>(expected);
        if (::uncompress(inflated.data(), &size, bytes.data(), static_cast<uLong>(bytes.size())) != Z_OK || size != expected) {
          return corrupt("does not inflate to its size");
        }
        bytes = std::move(inflated);
        break;
      }
      case H5Z_FILTER_SHUFFLE: {
        if (element_bytes == 1) break;  // byte planes of 1-byte elements are the elements
        std::vector<uint8_t> unshuffled(bytes.size());
        const size_t count = bytes.size() / element_bytes;
        for (size_t e = 0; e < count; ++e) {
          for (size_t b = 0; b < element_bytes; ++b) unshuffled[e * element_bytes + b] = bytes[b * count + e];
        }
        bytes = std::move(unshuffled);
        break;
      }
      default:
        return absl::FailedPreconditionError(absl::StrCat(where_, ": unsupported HDF5 filter ", filters_[i]));
    }
  }
  if (bytes.size() != expected) return corrupt(absl::StrCat("holds ", bytes.size(), " bytes, expected ", expected));
  std::memcpy(out, bytes.data(), expected);
  return absl::OkStatus();
}

absl::Status write_i64_vector(File& file, const std::string& name, const std::vector<int64_t>& values,
                              const Compression& compression) {
  constexpr int64_t kChunk = 1 << 16;
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(kChunk, static_cast<int64_t>(values.size())));
  absl::StatusOr<Dataset> dataset = Dataset::create(file, name, Element::kI64, {}, chunk, compression);
  if (!dataset.ok()) return dataset.status();
  return dataset->append(values.data(), static_cast<int64_t>(values.size()));
}

absl::StatusOr<std::vector<int64_t>> read_i64_vector(const File& file, const std::string& name) {
  absl::StatusOr<Dataset> dataset = Dataset::open(file, name, Element::kI64, {});
  if (!dataset.ok()) return dataset.status();
  std::vector<int64_t> values(static_cast<size_t>(dataset->rows()));
  if (absl::Status s = dataset->read(0, dataset->rows(), values.data()); !s.ok()) return s;
  return values;
}

namespace {

Handle utf8_string_type() {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  if (type.valid() && (H5Tset_size(type.id(), H5T_VARIABLE) < 0 || H5Tset_cset(type.id(), H5T_CSET_UTF8) < 0)) {
    return Handle();
  }
  return type;
}

}  // namespace

absl::Status write_string_vector(File& file, const std::string& name, const std::vector<std::string>& values) {
  constexpr hsize_t kChunk = 1 << 14;
  const auto guard = lock();
  const std::string where = absl::StrCat(file.name(), ":/", name);
  const hsize_t size = values.size(), max_size = H5S_UNLIMITED, chunk = std::clamp<hsize_t>(size, 1, kChunk);
  Handle type = utf8_string_type();
  Handle space(H5Screate_simple(1, &size, &max_size), H5Sclose);
  Handle properties(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if (!type.valid() || !space.valid() || !properties.valid() || H5Pset_chunk(properties.id(), 1, &chunk) < 0) {
    return failure(absl::StatusCode::kInternal, where, "cannot set up a string dataset");
  }
  Handle dataset(H5Dcreate2(file.id(), name.c_str(), type.id(), space.id(), H5P_DEFAULT, properties.id(), H5P_DEFAULT),
                 H5Dclose);
  if (!dataset.valid()) return failure(absl::StatusCode::kDataLoss, where, "cannot create");
  std::vector<const char*> pointers;
  pointers.reserve(values.size());
  for (const std::string& v : values) pointers.push_back(v.c_str());
  if (!values.empty() && H5Dwrite(dataset.id(), type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()) < 0) {
    return failure(absl::StatusCode::kDataLoss, where, "cannot write");
  }
  return dataset.close(where);
}

absl::StatusOr<std::vector<std::string>> read_string_vector(const File& file, const std::string& name) {
  const auto guard = lock();
  const std::string where = absl::StrCat(file.name(), ":/", name);
  if (H5Lexists(file.id(), name.c_str(), H5P_DEFAULT) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    return absl::DataLossError(absl::StrCat(where, ": missing"));
  }
  Handle dataset(H5Dopen2(file.id(), name.c_str(), H5P_DEFAULT), H5Dclose);
  Handle stored(dataset.valid() ? H5Dget_type(dataset.id()) : H5I_INVALID_HID, H5Tclose);
  if (!stored.valid() || H5Tget_class(stored.id()) != H5T_STRING || H5Tis_variable_str(stored.id()) <= 0) {
    return absl::DataLossError(absl::StrCat(where, ": not a variable-length string dataset"));
  }
  Handle space(H5Dget_space(dataset.id()), H5Sclose);
  hsize_t size = 0;
  if (!space.valid() || H5Sget_simple_extent_ndims(space.id()) != 1 ||
      H5Sget_simple_extent_dims(space.id(), &size, nullptr) < 0) {
    return absl::DataLossError(absl::StrCat(where, ": expected one dimension"));
  }
  Handle type = utf8_string_type();
  std::vector<char*> pointers(size, nullptr);
  if (size > 0 && H5Dread(dataset.id(), type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()) < 0) {
    return failure(absl::StatusCode::kDataLoss, where, "cannot read");
  }
  std::vector<std::string> values;
  values.reserve(size);
  for (const char* p : pointers) values.emplace_back(p != nullptr ? p : "");
  if (size > 0) H5Dvlen_reclaim(type.id(), space.id(), H5P_DEFAULT, pointers.data());
  return values;
}

}  // namespace plm::data::hdf5
