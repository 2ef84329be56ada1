#include "model/weights/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "core/durable_file.h"
#include "core/json_depth.h"
#include "core/status_macros.h"

namespace plm::model {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference implementation's limit

struct DTypeName {
  const char* name;
  DType dtype;
};
constexpr DTypeName kDTypeNames[] = {{"F32", DType::kF32}, {"BF16", DType::kBF16}, {"F16", DType::kF16},
                                     {"I32", DType::kI32}, {"I64", DType::kI64},   {"U8", DType::kU8}};
constexpr const char* kSupportedDTypes = "F32, BF16, F16, I32, I64, U8";
// Valid in the format, but no plm DType holds them.
const std::set<std::string> kUnsupportedDTypes = {"F64", "I8",      "I16",     "U16",     "U32",    "U64",
                                                  "BOOL", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2",
                                                  "F4",   "C64"};

std::string errno_text() { return std::strerror(errno); }

// What a file that is not a regular file is, for the error message.
const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "of an unknown kind";
}

uint64_t read_le64(const std::byte* p) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<uint64_t>(p[i]);
  return value;
}

// Parses one header entry; `error(problem)` builds "<file>: tensor '<name>': <problem>".
template <typename ErrorFn>
absl::StatusOr<SafetensorsEntry> parse_entry(const nlohmann::json& value, uint64_t data_bytes, ErrorFn error) {
  if (!value.is_object()) return error("entry must be a JSON object, got " + value.dump());
  const auto dtype_it = value.find("dtype");
  const auto shape_it = value.find("shape");
  const auto offsets_it = value.find("data_offsets");
  if (dtype_it == value.end() || shape_it == value.end() || offsets_it == value.end()) {
    return error("entry needs \"dtype\", \"shape\" and \"data_offsets\", got " + value.dump());
  }
  if (!dtype_it->is_string()) return error("dtype must be a string, got " + dtype_it->dump());
  const std::string dtype_name = dtype_it->get<std::string>();
  SafetensorsEntry entry;
  const auto known = std::find_if(std::begin(kDTypeNames), std::end(kDTypeNames),
                                  [&](const DTypeName& d) { return dtype_name == d.name; });
  if (known == std::end(kDTypeNames)) {
    if (kUnsupportedDTypes.contains(dtype_name)) {
      return error(absl::StrCat("dtype ", dtype_name, " is not supported (plm reads ", kSupportedDTypes, ")"));
    }
    return error(absl::StrCat("unknown dtype '", dtype_name, "' (plm reads ", kSupportedDTypes, ")"));
  }
  entry.dtype = known->dtype;

  if (!shape_it->is_array()) return error("shape must be a list of integers, got " + shape_it->dump());
  if (shape_it->size() > static_cast<size_t>(kMaxRank)) {
    return error(absl::StrCat("rank ", shape_it->size(), " exceeds plm's limit of ", kMaxRank));
  }
  // Element count, bounded by the data section so the products cannot overflow.
  for (const auto& dim : *shape_it) {
    if (!dim.is_number_integer() || dim.get<int64_t>() < 0) {
      return error("shape must be a list of non-negative integers, got " + shape_it->dump());
    }
    entry.shape.push_back(dim.get<int64_t>());
  }
  uint64_t numel = std::find(entry.shape.begin(), entry.shape.end(), 0) != entry.shape.end() ? 0 : 1;
  for (const int64_t d : entry.shape) {
    if (numel == 0) break;
    if (numel > data_bytes / static_cast<uint64_t>(d)) {
      return error("shape " + entry.shape.to_string() + " is larger than the data section");
    }
    numel *= static_cast<uint64_t>(d);
  }

  if (!offsets_it->is_array() || offsets_it->size() != 2 || !(*offsets_it)[0].is_number_unsigned() ||
      !(*offsets_it)[1].is_number_unsigned()) {
    return error("data_offsets must be [begin, end] with non-negative integers, got " + offsets_it->dump());
  }
  entry.begin = (*offsets_it)[0].get<uint64_t>();
  entry.end = (*offsets_it)[1].get<uint64_t>();
  if (entry.begin > entry.end || entry.end > data_bytes) {
    return error(absl::StrCat("byte range [", entry.begin, ", ", entry.end, ") is outside the data section of ",
                              data_bytes, " bytes"));
  }
  const uint64_t expected = numel * dtype_size(entry.dtype);
  if (entry.end - entry.begin != expected) {
    return error(absl::StrCat("shape ", entry.shape.to_string(), " x ", dtype_name, " needs ", expected,
                              " bytes but data_offsets [", entry.begin, ", ", entry.end, ") hold ",
                              entry.end - entry.begin));
  }
  return entry;
}

// Header JSON and data-section layout for `tensors`, in the order they will be written.
struct Layout {
  std::string header;  // padded with spaces to a multiple of 8 bytes
  std::vector<const NamedTensor*> order;
};

absl::StatusOr<Layout> plan_layout(const std::string& path, const std::vector<NamedTensor>& tensors,
                                   const std::map<std::string, std::string>& metadata) {
  Layout layout;
  std::set<std::string> names;
  for (const NamedTensor& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__") {
      return absl::InvalidArgumentError(absl::StrCat(path, ": invalid tensor name '", t.name, "'"));
    }
    if (!names.insert(t.name).second) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", t.name, "' given twice"));
    }
    if (t.tensor.is_cuda() || !t.tensor.is_contiguous()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", t.name,
                                                     "' must be contiguous on the CPU, got ", t.tensor.describe()));
    }
    layout.order.push_back(&t);
  }
  // Largest elements first keeps every tensor aligned to its element size (the data section starts at a
  // multiple of 8); the name breaks ties so the output is deterministic.
  std::sort(layout.order.begin(), layout.order.end(), [](const NamedTensor* a, const NamedTensor* b) {
    const size_t sa = dtype_size(a->tensor.dtype()), sb = dtype_size(b->tensor.dtype());
    return sa != sb ? sa > sb : a->name < b->name;
  });
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  for (const NamedTensor* t : layout.order) {
    const uint64_t bytes = t->tensor.nbytes();
    header[t->name] = {{"dtype", safetensors_dtype_name(t->tensor.dtype())},
                       {"shape", std::vector<int64_t>(t->tensor.shape().begin(), t->tensor.shape().end())},
                       {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  layout.header = header.dump();
  layout.header.append((8 - layout.header.size() % 8) % 8, ' ');
  return layout;
}

}  // namespace

const char* safetensors_dtype_name(DType dtype) {
  for (const DTypeName& d : kDTypeNames) {
    if (d.dtype == dtype) return d.name;
  }
  PLM_CHECK(false) << "no safetensors name for dtype " << dtype_name(dtype);
  return "";
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::open(const std::string& path) {
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer; it changes nothing for a regular file.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", errno_text()));
  const FileDescriptor closer(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return absl::InternalError(absl::StrCat(path, ": fstat failed: ", errno_text()));
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file (", file_kind(st.st_mode), ")"));
  }
  const auto file_bytes = static_cast<uint64_t>(st.st_size);
  if (file_bytes < 8) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": truncated: ", file_bytes,
                                                   " bytes, fewer than the 8-byte header length"));
  }

  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  void* mapping = ::mmap(nullptr, file_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  if (mapping == MAP_FAILED) return absl::InternalError(absl::StrCat(path, ": mmap failed: ", errno_text()));
  file->mapping_ = mapping;
  file->mapping_bytes_ = file_bytes;

  const auto* bytes = static_cast<const std::byte*>(mapping);
  const uint64_t header_bytes = read_le64(bytes);
  if (header_bytes > file_bytes - 8) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": header length ", header_bytes, " exceeds the ",
                                                   file_bytes - 8, " bytes after the length field (file size ",
                                                   file_bytes, ")"));
  }
  if (header_bytes > kMaxHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": header length ", header_bytes, " exceeds the limit of ",
                                                   kMaxHeaderBytes));
  }
  file->data_section_ = bytes + 8 + header_bytes;
  const std::string header(reinterpret_cast<const char*>(bytes + 8), header_bytes);
  PLM_RETURN_IF_ERROR(file->parse_header(header, file_bytes - 8 - header_bytes));
  return file;
}

absl::Status SafetensorsFile::parse_header(const std::string& header_text, uint64_t data_bytes) {
  if (const std::string problem = json_depth_problem(header_text); !problem.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": header: ", problem));
  }
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(header_text);
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for a number like 1e999
    return absl::InvalidArgumentError(absl::StrCat(path_, ": malformed JSON header: ", e.what()));
  }
  if (!header.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": JSON header must be an object"));
  }
  for (const auto& item : header.items()) {
    // Named, not a structured binding: the error lambda below captures it (clang before 16 cannot).
    const std::string& name = item.key();
    const nlohmann::json& value = item.value();
    if (name == "__metadata__") {
      if (!value.is_object()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path_, ": __metadata__ must be an object of strings, got ", value.dump()));
      }
      for (const auto& [key, text] : value.items()) {
        if (!text.is_string()) {
          return absl::InvalidArgumentError(
              absl::StrCat(path_, ": __metadata__ value of '", key, "' must be a string, got ", text.dump()));
        }
        metadata_[key] = text.get<std::string>();
      }
      continue;
    }
    auto entry = parse_entry(value, data_bytes, [&](const std::string& problem) {
      return absl::InvalidArgumentError(absl::StrCat(path_, ": tensor '", name, "': ", problem));
    });
    if (!entry.ok()) return entry.status();
    entries_.emplace(name, *std::move(entry));
  }

  std::vector<std::pair<const std::string*, const SafetensorsEntry*>> by_offset;
  for (const auto& [name, entry] : entries_) by_offset.emplace_back(&name, &entry);
  std::sort(by_offset.begin(), by_offset.end(), [](const auto& a, const auto& b) {
    return a.second->begin != b.second->begin ? a.second->begin < b.second->begin : a.second->end < b.second->end;
  });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const auto& [prev_name, prev] = by_offset[i - 1];
    const auto& [name, entry] = by_offset[i];
    if (entry->begin < prev->end) {
      return absl::InvalidArgumentError(absl::StrCat(path_, ": tensors '", *prev_name, "' [", prev->begin, ", ",
                                                     prev->end, ") and '", *name, "' [", entry->begin, ", ",
                                                     entry->end, ") overlap"));
    }
  }
  return absl::OkStatus();
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_bytes_);
}

absl::Status write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                               const std::map<std::string, std::string>& metadata) {
  PLM_ASSIGN_OR_RETURN(const Layout layout, plan_layout(path, tensors, metadata));

  PLM_ASSIGN_OR_RETURN(DurableFileWriter file, DurableFileWriter::create(path));
  unsigned char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(layout.header.size() >> (8 * i));
  PLM_RETURN_IF_ERROR(file.write(length, sizeof(length)));
  PLM_RETURN_IF_ERROR(file.write(layout.header));
  for (const NamedTensor* t : layout.order) PLM_RETURN_IF_ERROR(file.write(t->tensor.data(), t->tensor.nbytes()));
  return file.commit();
}

}  // namespace plm::model
