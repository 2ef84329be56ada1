#include "caption/merge.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "caption/embedding_store.h"
#include "caption/part_file.h"
#include "core/status_macros.h"

namespace plm::caption {

namespace {

struct IndexedLine {
  int part = 0;
  LineSpan span;
  bool ok = false;  // a caption, not an error
};

// A file written under a temporary name and renamed over `path` by commit(); removed if never committed.
class AtomicFile {
 public:
  static absl::StatusOr<AtomicFile> create(const std::filesystem::path& path) {
    std::filesystem::path temp(absl::StrCat(path.string(), ".tmp-", ::getpid()));
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return absl::PermissionDeniedError(absl::StrCat(temp.string(), ": cannot create: ", std::strerror(errno)));
    return AtomicFile(path, std::move(temp), fd);
  }
  AtomicFile(AtomicFile&& other) noexcept
      : path_(std::move(other.path_)), temp_(std::move(other.temp_)), fd_(std::exchange(other.fd_, -1)) {}
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile() {
    if (fd_ < 0) return;
    ::close(fd_);
    std::error_code ignored;
    std::filesystem::remove(temp_, ignored);
  }

  absl::Status write(const std::string& bytes) { return write_all(fd_, bytes, temp_); }

  absl::Status commit() {
    if (::fsync(fd_) != 0) return absl::DataLossError(absl::StrCat(temp_.string(), ": fsync failed: ", std::strerror(errno)));
    ::close(std::exchange(fd_, -1));
    std::error_code error;
    std::filesystem::rename(temp_, path_, error);
    if (error) return absl::DataLossError(absl::StrCat(path_.string(), ": cannot rename into place: ", error.message()));
    const std::filesystem::path folder = path_.has_parent_path() ? path_.parent_path() : ".";
    const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
      ::fsync(dir);  // the rename itself survives a power loss
      ::close(dir);
    }
    return absl::OkStatus();
  }

 private:
  AtomicFile(std::filesystem::path path, std::filesystem::path temp, int fd)
      : path_(std::move(path)), temp_(std::move(temp)), fd_(fd) {}
  std::filesystem::path path_, temp_;
  int fd_;
};

absl::StatusOr<std::string> read_span(std::ifstream& in, const std::filesystem::path& path, const LineSpan& span) {
  std::string line(static_cast<size_t>(span.length), '\0');
  in.seekg(span.offset);
  if (!in.read(line.data(), span.length)) {
    return absl::DataLossError(absl::StrCat(path.string(), ": changed while merging (offset ", span.offset, ")"));
  }
  return line;
}

}  // namespace

absl::StatusOr<MergeSummary> merge_parts(const std::vector<CaptionItem>& items, const std::filesystem::path& out,
                                         const std::optional<std::filesystem::path>& embeddings_out) {
  const std::vector<std::filesystem::path> parts = list_parts(out);
  absl::flat_hash_map<std::string, IndexedLine> index;
  for (int p = 0; p < static_cast<int>(parts.size()); ++p) {
    PLM_RETURN_IF_ERROR(scan_part(parts[p], /*repair=*/false, [&](CaptionRecord&& r, const LineSpan& span) {
                          const IndexedLine line{.part = p, .span = span, .ok = r.ok()};
                          const auto [it, inserted] = index.try_emplace(std::move(r.id), line);
                          if (!inserted && !it->second.ok && line.ok) it->second = line;
                        }).status());
  }
  std::vector<std::string> missing;
  int64_t num_missing = 0;
  for (const CaptionItem& item : items) {
    if (index.contains(item.id)) continue;
    if (++num_missing <= 5) missing.push_back(item.id);
  }
  if (num_missing > 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        num_missing, " of ", items.size(), " items have no line in ", out.string(), ".rank-* (e.g. ",
        absl::StrJoin(missing, ", "), "); run plm caption again to finish them (finished items are skipped)"));
  }

  std::vector<std::unique_ptr<std::ifstream>> readers;
  for (const std::filesystem::path& part : parts) {
    readers.push_back(std::make_unique<std::ifstream>(part, std::ios::binary));
    if (!*readers.back()) return absl::PermissionDeniedError(absl::StrCat(part.string(), ": cannot read the part"));
  }
  PLM_ASSIGN_OR_RETURN(AtomicFile file, AtomicFile::create(out));
  std::unique_ptr<EmbeddingWriter> embeddings;
  if (embeddings_out) {
    PLM_ASSIGN_OR_RETURN(embeddings, EmbeddingWriter::create(*embeddings_out));
  }
  MergeSummary summary{.num_items = static_cast<int64_t>(items.size()), .num_parts = static_cast<int64_t>(parts.size())};
  std::string buffer;
  for (const CaptionItem& item : items) {
    const IndexedLine& at = index.at(item.id);
    PLM_ASSIGN_OR_RETURN(const std::string line, read_span(*readers[at.part], parts[at.part], at.span));
    PLM_ASSIGN_OR_RETURN(const CaptionRecord record, parse_record_line(line));
    (record.ok() ? summary.num_captions : summary.num_errors) += 1;
    absl::StrAppend(&buffer, record_line(record, LineFields::kOutput), "\n");
    if (buffer.size() >= (1 << 20)) {
      PLM_RETURN_IF_ERROR(file.write(buffer));
      buffer.clear();
    }
    if (embeddings && !record.embedding.empty()) PLM_RETURN_IF_ERROR(embeddings->append(record.id, record.embedding));
  }
  PLM_RETURN_IF_ERROR(file.write(buffer));
  if (embeddings) {
    summary.num_embeddings = embeddings->num_rows();
    PLM_RETURN_IF_ERROR(embeddings->finish());
  }
  PLM_RETURN_IF_ERROR(file.commit());
  return summary;
}

}  // namespace plm::caption
