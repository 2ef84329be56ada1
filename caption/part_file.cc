#include "caption/part_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "core/durable_file.h"
#include "core/status_macros.h"

namespace plm::caption {

namespace {

absl::Status io_error(const std::filesystem::path& path, const char* what) {
  return absl::DataLossError(absl::StrCat(path.string(), ": ", what, ": ", std::strerror(errno)));
}

}  // namespace

std::filesystem::path part_path(const std::filesystem::path& out, int replica, std::optional<int> shard) {
  return std::filesystem::path(
      absl::StrCat(out.string(), shard ? absl::StrCat(".shard-", *shard) : std::string(), ".rank-", replica));
}

namespace {

// The (shard, replica) a part's file name encodes, shard -1 for none; nullopt for other outputs' files and
// "rank-1.tmp" (list_parts also drops "rank-01", which part_path never writes).
std::optional<std::pair<int, int>> parse_part_name(absl::string_view name, absl::string_view out_name) {
  if (!absl::ConsumePrefix(&name, out_name) || !absl::ConsumePrefix(&name, ".")) return std::nullopt;
  int shard = -1, replica = 0;
  if (absl::ConsumePrefix(&name, "shard-")) {
    const size_t dot = name.find('.');
    if (dot == absl::string_view::npos || !absl::SimpleAtoi(name.substr(0, dot), &shard) || shard < 0) return std::nullopt;
    name.remove_prefix(dot + 1);
  }
  if (!absl::ConsumePrefix(&name, "rank-") || !absl::SimpleAtoi(name, &replica) || replica < 0) return std::nullopt;
  return std::pair{shard, replica};
}

}  // namespace

std::vector<std::filesystem::path> list_parts(const std::filesystem::path& out) {
  const std::filesystem::path folder = out.has_parent_path() ? out.parent_path() : ".";
  const std::string out_name = out.filename().string();
  std::vector<std::pair<std::pair<int, int>, std::filesystem::path>> parts;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(folder, error)) {
    const std::string name = entry.path().filename().string();
    const std::optional<std::pair<int, int>> id = parse_part_name(name, out_name);
    if (!id) continue;
    const auto [shard, replica] = *id;
    // "rank-01": not a name part_path writes, so not ours.
    if (part_path(out_name, replica, shard < 0 ? std::nullopt : std::optional<int>(shard)).string() != name) continue;
    parts.emplace_back(*id, out.has_parent_path() ? entry.path() : std::filesystem::path(name));
  }
  std::sort(parts.begin(), parts.end());
  std::vector<std::filesystem::path> paths;
  for (auto& [id, path] : parts) paths.push_back(std::move(path));
  return paths;
}

absl::StatusOr<int64_t> scan_part(const std::filesystem::path& path, bool repair,
                                  const std::function<void(CaptionRecord&&, const LineSpan&)>& visit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code error;
    if (!std::filesystem::exists(path, error)) return 0;
    return absl::PermissionDeniedError(absl::StrCat(path.string(), ": cannot read the part"));
  }
  std::string line;
  int64_t offset = 0, number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (in.eof()) break;  // no '\n' after it: torn
    absl::StatusOr<CaptionRecord> record = parse_record_line(line);
    if (!record.ok()) {
      return absl::DataLossError(absl::StrCat(path.string(), ":", number, ": not a caption record (",
                                              record.status().message(), ")"));
    }
    const LineSpan span{.offset = offset, .length = static_cast<int64_t>(line.size())};
    visit(*std::move(record), span);
    offset += span.length + 1;
  }
  if (in.bad()) return absl::DataLossError(absl::StrCat(path.string(), ": read error"));
  const int64_t torn = static_cast<int64_t>(std::filesystem::file_size(path)) - offset;
  if (torn > 0 && repair) {
    std::error_code error;
    std::filesystem::resize_file(path, static_cast<uintmax_t>(offset), error);
    if (error) return absl::DataLossError(absl::StrCat(path.string(), ": cannot drop a torn last line: ", error.message()));
  }
  return torn;
}

absl::StatusOr<absl::flat_hash_set<std::string>> finished_ids(const std::filesystem::path& out,
                                                              const std::filesystem::path& own_part) {
  absl::flat_hash_set<std::string> ids;
  std::vector<std::filesystem::path> parts = list_parts(out);
  if (std::find(parts.begin(), parts.end(), own_part) == parts.end()) parts.push_back(own_part);
  for (const std::filesystem::path& part : parts) {
    PLM_RETURN_IF_ERROR(
        scan_part(part, /*repair=*/part == own_part, [&](CaptionRecord&& r, const LineSpan&) { ids.insert(std::move(r.id)); })
            .status());
  }
  return ids;
}

absl::StatusOr<std::unique_ptr<PartWriter>> PartWriter::open(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return io_error(path, "cannot open the part for appending");
  return std::unique_ptr<PartWriter>(new PartWriter(path, fd));
}

PartWriter::~PartWriter() { ::close(fd_); }

absl::Status PartWriter::append(const std::vector<CaptionRecord>& records) {
  if (records.empty()) return absl::OkStatus();
  std::string bytes;
  for (const CaptionRecord& r : records) absl::StrAppend(&bytes, record_line(r, LineFields::kPart), "\n");
  PLM_RETURN_IF_ERROR(write_all(fd_, bytes, path_));
  if (::fdatasync(fd_) != 0) return io_error(path_, "fdatasync failed");
  return absl::OkStatus();
}

}  // namespace plm::caption
