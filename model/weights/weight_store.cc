#include "model/weights/weight_store.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "model/json_fields.h"

namespace plm::model {
namespace {

namespace fs = std::filesystem;

constexpr const char* kIndexFile = "model.safetensors.index.json";
constexpr const char* kSingleFile = "model.safetensors";

// Calls f(T{}) with T the host storage type of a float dtype.
template <typename F>
void with_float_type(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kF32: f(float{}); return;
    case DType::kBF16: f(bf16{}); return;
    case DType::kF16: f(f16{}); return;
    case DType::kI32:
    case DType::kI64:
    case DType::kU8: break;
  }
  PLM_CHECK(false) << "not a float dtype: " << dtype_name(dtype);
}

// n elements From -> To through float. memcpy per element: mapped tensors need not be aligned.
template <typename From, typename To>
void convert_typed(const std::byte* src, std::byte* dst, int64_t n) {
#pragma omp parallel for if (n >= (int64_t{1} << 16))
  for (int64_t i = 0; i < n; ++i) {
    From x;
    std::memcpy(&x, src + i * sizeof(From), sizeof(From));
    const To y(static_cast<float>(x));
    std::memcpy(dst + i * sizeof(To), &y, sizeof(To));
  }
}

void convert_elements(const std::byte* src, DType from, std::byte* dst, DType to, int64_t n) {
  if (from == to) {
    std::memcpy(dst, src, static_cast<size_t>(n) * dtype_size(from));
    return;
  }
  with_float_type(from, [&](auto from_tag) {
    with_float_type(to, [&](auto to_tag) { convert_typed<decltype(from_tag), decltype(to_tag)>(src, dst, n); });
  });
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> open_shard(const fs::path& dir, const std::string& shard,
                                                            const std::string& index_path) {
  const fs::path relative(shard);
  if (relative.is_absolute() || std::find(relative.begin(), relative.end(), "..") != relative.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat(index_path, ": shard path '", shard, "' must stay inside the model directory"));
  }
  auto file = SafetensorsFile::open((dir / relative).string());
  if (!file.ok()) {
    return absl::Status(file.status().code(),
                        absl::StrCat(index_path, ": shard '", shard, "' from weight_map: ", file.status().message()));
  }
  return file;
}

}  // namespace

absl::Status WeightStore::add_file(std::unique_ptr<SafetensorsFile> file) {
  for (const auto& [name, entry] : file->entries()) {
    const auto [it, inserted] = tensors_.emplace(name, Location{file.get(), &entry});
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(source_, ": tensor '", name, "' is in both ",
                                                     it->second.file->path(), " and ", file->path()));
    }
  }
  files_.push_back(std::move(file));
  return absl::OkStatus();
}

absl::StatusOr<WeightStore> WeightStore::open(const std::string& path) {
  WeightStore store;
  store.source_ = path;
  std::string index_path;
  std::string single_path = path;
  std::error_code error;  // the non-throwing overloads: an unreadable path fails at open() with its errno
  if (fs::is_directory(path, error)) {
    const fs::path dir(path);
    if (fs::exists(dir / kIndexFile, error)) {
      index_path = (dir / kIndexFile).string();
    } else if (fs::exists(dir / kSingleFile, error)) {
      single_path = (dir / kSingleFile).string();
    } else {
      return absl::NotFoundError(absl::StrCat(path, ": no ", kIndexFile, " or ", kSingleFile));
    }
  } else if (absl::EndsWith(path, ".index.json")) {
    index_path = path;
  }

  if (index_path.empty()) {
    PLM_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, SafetensorsFile::open(single_path));
    PLM_RETURN_IF_ERROR(store.add_file(std::move(file)));
    return store;
  }

  PLM_ASSIGN_OR_RETURN(const std::string text, read_text_file(index_path));
  PLM_ASSIGN_OR_RETURN(const nlohmann::json index, parse_json(text, index_path));
  PLM_ASSIGN_OR_RETURN(const JsonFields fields, JsonFields::of(index, index_path, ""));
  const nlohmann::json* weight_map = fields.find("weight_map");
  if (weight_map == nullptr || !weight_map->is_object()) {
    return fields.error("weight_map", "must be an object mapping tensor names to shard files");
  }
  std::set<std::string> shards;
  for (const auto& [name, shard] : weight_map->items()) {
    if (!shard.is_string()) return fields.error("weight_map", "value of '" + name + "' must be a file name");
    shards.insert(shard.get<std::string>());
  }
  const fs::path dir = fs::path(index_path).parent_path();
  std::map<std::string, const SafetensorsFile*> by_shard;
  for (const std::string& shard : shards) {
    PLM_ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file, open_shard(dir, shard, index_path));
    by_shard[shard] = file.get();
    PLM_RETURN_IF_ERROR(store.add_file(std::move(file)));
  }
  for (const auto& [name, shard] : weight_map->items()) {
    const auto it = store.tensors_.find(name);
    if (it == store.tensors_.end() || it->second.file != by_shard.at(shard.get<std::string>())) {
      return absl::InvalidArgumentError(absl::StrCat(index_path, ": weight_map puts tensor '", name, "' in shard '",
                                                     shard.get<std::string>(), "', which does not contain it"));
    }
  }
  return store;
}

std::vector<std::string> WeightStore::names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, location] : tensors_) names.push_back(name);
  return names;
}

absl::StatusOr<WeightStore::Location> WeightStore::find(const std::string& name) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) return absl::NotFoundError(absl::StrCat(source_, ": no tensor named '", name, "'"));
  return it->second;
}

absl::StatusOr<TensorInfo> WeightStore::info(const std::string& name) const {
  PLM_ASSIGN_OR_RETURN(const Location location, find(name));
  return TensorInfo{location.entry->dtype, location.entry->shape, location.file->path()};
}

absl::StatusOr<Tensor> WeightStore::view(const std::string& name) const {
  PLM_ASSIGN_OR_RETURN(const Location location, find(name));
  const std::byte* data = location.file->data(*location.entry);
  const size_t alignment = dtype_size(location.entry->dtype);
  if (reinterpret_cast<uintptr_t>(data) % alignment != 0) {
    return absl::FailedPreconditionError(absl::StrCat(location.file->path(), ": tensor '", name,
                                                      "' is not aligned to ", alignment,
                                                      " bytes in the file; use load() to copy it"));
  }
  // The mapping is read-only: kernels read through this view, nothing may write through it.
  return Tensor(const_cast<std::byte*>(data), location.entry->shape, location.entry->dtype);
}

absl::StatusOr<OwnedTensor> WeightStore::load(const std::string& name, std::optional<DType> dtype) const {
  return load_slice(name, 0, 0, 1, dtype);
}

absl::StatusOr<OwnedTensor> WeightStore::load_slice(const std::string& name, int dim, int rank, int num_ranks,
                                                    std::optional<DType> dtype) const {
  PLM_ASSIGN_OR_RETURN(const Location location, find(name));
  const SafetensorsEntry& entry = *location.entry;
  const DType to = dtype.value_or(entry.dtype);
  const auto where = [&] { return absl::StrCat(location.file->path(), ": tensor '", name, "'"); };
  if (to != entry.dtype && !(dtype_is_float(to) && dtype_is_float(entry.dtype))) {
    return absl::InvalidArgumentError(absl::StrCat(where(), ": cannot convert ", std::string(dtype_name(entry.dtype)), " to ",
                                                   std::string(dtype_name(to)), " (only f32, bf16 and f16 convert)"));
  }
  if (num_ranks < 1 || rank < 0 || rank >= num_ranks) {
    return absl::InvalidArgumentError(absl::StrCat(where(), ": rank ", rank, " is not in [0, ", num_ranks, ")"));
  }
  Shape out_shape = entry.shape;
  // Source layout (outer, split, inner) with the result's `part` rows of `split` starting at `start`.
  int64_t outer = 1, split = 1, part = 1, start = 0, inner = entry.shape.numel();
  if (entry.shape.rank() > 0) {
    const int rank_count = entry.shape.rank();
    if (dim < -rank_count || dim >= rank_count) {
      return absl::InvalidArgumentError(absl::StrCat(where(), ": dim ", dim, " is out of range for shape ",
                                                     entry.shape.to_string()));
    }
    const int d = dim < 0 ? dim + rank_count : dim;
    const int64_t size = entry.shape[d];
    if (size % num_ranks != 0) {
      return absl::InvalidArgumentError(absl::StrCat(where(), ": dim ", d, " of shape ", entry.shape.to_string(),
                                                     " does not split into ", num_ranks, " equal parts: ", size,
                                                     " % ", num_ranks, " = ", size % num_ranks));
    }
    for (int i = 0; i < d; ++i) outer *= entry.shape[i];
    inner = 1;
    for (int i = d + 1; i < rank_count; ++i) inner *= entry.shape[i];
    split = size;
    part = size / num_ranks;
    start = rank * part;
    out_shape[d] = part;
  } else if (num_ranks != 1) {
    return absl::InvalidArgumentError(absl::StrCat(where(), ": a scalar cannot be split"));
  }

  OwnedTensor out(out_shape, to);
  const int64_t chunk = part * inner;  // contiguous elements per outer index, in both source and result
  const std::byte* src = location.file->data(entry);
  auto* dst = static_cast<std::byte*>(out.view().data());
  const size_t from_size = dtype_size(entry.dtype), to_size = dtype_size(to);
  for (int64_t o = 0; o < outer && chunk > 0; ++o) {
    convert_elements(src + ((o * split + start) * inner) * from_size, entry.dtype, dst + o * chunk * to_size, to,
                     chunk);
  }
  return out;
}

}  // namespace plm::model
