#include "caption/embedding_store.h"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace plm::caption {

namespace {

constexpr int64_t kChunkRows = 64;

}  // namespace

absl::StatusOr<std::unique_ptr<EmbeddingWriter>> EmbeddingWriter::create(const std::filesystem::path& path) {
  const std::filesystem::path temp(absl::StrCat(path.string(), ".tmp-", ::getpid()));
  PLM_ASSIGN_OR_RETURN(data::hdf5::File file, data::hdf5::File::create(temp));
  return std::unique_ptr<EmbeddingWriter>(new EmbeddingWriter(path, temp, std::move(file)));
}

EmbeddingWriter::~EmbeddingWriter() {
  if (finished_) return;
  embeddings_.reset();
  file_.reset();
  std::error_code ignored;
  std::filesystem::remove(temp_, ignored);
}

absl::Status EmbeddingWriter::append(const std::string& id, const std::vector<float>& embedding) {
  const int64_t dim = static_cast<int64_t>(embedding.size());
  if (dim == 0) return absl::InvalidArgumentError(absl::StrCat(id, ": an empty embedding"));
  if (!embeddings_) {
    dim_ = dim;
    PLM_ASSIGN_OR_RETURN(embeddings_, data::hdf5::Dataset::create(*file_, "embeddings", data::hdf5::Element::kF32,
                                                                  {dim}, kChunkRows, {.deflate_level = 4}));
  }
  if (dim != dim_) {
    return absl::InvalidArgumentError(absl::StrCat(id, ": an embedding of ", dim, " values where the others have ", dim_));
  }
  ids_.push_back(id);
  pending_.insert(pending_.end(), embedding.begin(), embedding.end());
  if (static_cast<int64_t>(pending_.size()) >= kChunkRows * dim_) return flush_rows();
  return absl::OkStatus();
}

absl::Status EmbeddingWriter::flush_rows() {
  if (pending_.empty()) return absl::OkStatus();
  PLM_RETURN_IF_ERROR(embeddings_->append(pending_.data(), static_cast<int64_t>(pending_.size()) / dim_));
  pending_.clear();
  return absl::OkStatus();
}

absl::Status EmbeddingWriter::finish() {
  PLM_RETURN_IF_ERROR(flush_rows());
  if (embeddings_) PLM_RETURN_IF_ERROR(embeddings_->close());
  PLM_RETURN_IF_ERROR(data::hdf5::write_string_vector(*file_, "ids", ids_));
  const nlohmann::json about = {{"pooling", kEmbeddingPooling}, {"dim", dim_}};
  PLM_RETURN_IF_ERROR(file_->write_json_attribute("plm_caption", about.dump()));
  PLM_RETURN_IF_ERROR(file_->close());
  std::error_code error;
  std::filesystem::rename(temp_, path_, error);
  if (error) return absl::DataLossError(absl::StrCat(path_.string(), ": cannot move the embeddings into place: ", error.message()));
  finished_ = true;
  return absl::OkStatus();
}

}  // namespace plm::caption
