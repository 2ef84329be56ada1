// The job's journal: each data-parallel replica appends its finished items to its own part, OUT.rank-R (R = the
// replica index; OUT.shard-S.rank-R in shard S of a job split with --shard, e.g. a Slurm array), one JSON line each (caption/caption_record.h), flushed to disk (fdatasync) after every batch of
// lines it writes together. A crash can leave only the last line torn (no '\n'): readers ignore it and the owner,
// reopening its part, truncates it away, so restarting never duplicates or corrupts a line. A complete line that
// is not a record is data loss (named by file and line). The parts stay after the merge: a rerun reads them and
// skips every finished id. Not thread-safe: one thread writes a part.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "caption/caption_record.h"

namespace plm::caption {

// OUT.rank-R, or OUT.shard-S.rank-R for a shard.
std::filesystem::path part_path(const std::filesystem::path& out, int replica, std::optional<int> shard = std::nullopt);
// Every existing OUT.rank-R, then every OUT.shard-S.rank-R, by (S, R).
std::vector<std::filesystem::path> list_parts(const std::filesystem::path& out);

// Where a record's line lies in its part.
struct LineSpan {
  int64_t offset = 0;
  int64_t length = 0;  // without the '\n'
};

// Calls visit(record, span) for every complete line of `path` in order (a missing file has none). With
// `repair`, a torn last line is truncated off the file. Returns the number of bytes of torn line seen.
absl::StatusOr<int64_t> scan_part(const std::filesystem::path& path, bool repair,
                                  const std::function<void(CaptionRecord&&, const LineSpan&)>& visit);

// The ids with a line (a caption or an error) in any part of `out`; `own_part` is repaired on the way.
absl::StatusOr<absl::flat_hash_set<std::string>> finished_ids(const std::filesystem::path& out,
                                                              const std::filesystem::path& own_part);

class PartWriter {
 public:
  // Opens `path` for appending (creating it); call scan_part(path, repair) first so no torn line stays.
  static absl::StatusOr<std::unique_ptr<PartWriter>> open(const std::filesystem::path& path);
  ~PartWriter();
  PartWriter(const PartWriter&) = delete;
  PartWriter& operator=(const PartWriter&) = delete;

  // Appends one line per record, then one fdatasync.
  absl::Status append(const std::vector<CaptionRecord>& records);
  const std::filesystem::path& path() const { return path_; }

 private:
  PartWriter(std::filesystem::path path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::filesystem::path path_;
  int fd_;
};

}  // namespace plm::caption
