#include "caption/merge.h"

#include <fstream>
#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "caption/embedding_store.h"
#include "caption/part_file.h"
#include "core/durable_file.h"
#include "core/status_macros.h"

namespace plm::caption {

namespace {

struct IndexedLine {
  int part = 0;
  LineSpan span;
  bool ok = false;  // a caption, not an error
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
        num_missing, " of ", items.size(), " items have no line in the parts of ", out.string(), " (e.g. ",
        absl::StrJoin(missing, ", "), "); run plm caption again to finish them (finished items are skipped)"));
  }

  std::vector<std::unique_ptr<std::ifstream>> readers;
  for (const std::filesystem::path& part : parts) {
    readers.push_back(std::make_unique<std::ifstream>(part, std::ios::binary));
    if (!*readers.back()) return absl::PermissionDeniedError(absl::StrCat(part.string(), ": cannot read the part"));
  }
  PLM_ASSIGN_OR_RETURN(DurableFileWriter file, DurableFileWriter::create(out));
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
