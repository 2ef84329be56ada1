#include "trainer/tensorboard_writer.h"

#include <unistd.h>

#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string_view>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "trainer/tfrecord.h"

namespace plm::trainer {
namespace {

// Protobuf wire format: a key is (field_number << 3) | wire_type.
enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

void put_varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

void put_key(std::string& out, uint32_t field, WireType type) { put_varint(out, (field << 3) | type); }

void put_fixed(std::string& out, uint64_t bits, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xFF));
}

void put_bytes(std::string& out, uint32_t field, std::string_view bytes) {
  put_key(out, field, kLengthDelimited);
  put_varint(out, bytes.size());
  out.append(bytes);
}

// tensorflow/core/util/event.proto and framework/summary.proto: the fields used here.
namespace event_field {
constexpr uint32_t kWallTime = 1;     // double
constexpr uint32_t kStep = 2;         // int64
constexpr uint32_t kFileVersion = 3;  // string
constexpr uint32_t kSummary = 5;      // Summary
constexpr uint32_t kSessionLog = 7;   // SessionLog (6 is the deprecated log_message)
}  // namespace event_field
constexpr uint32_t kSummaryValue = 1;       // Summary.value: repeated Summary.Value
constexpr uint32_t kValueTag = 1;           // Summary.Value.tag: string
constexpr uint32_t kValueSimpleValue = 2;   // Summary.Value.simple_value: float
constexpr uint32_t kSessionLogStatus = 1;   // SessionLog.status: enum
constexpr uint64_t kSessionLogStart = 1;    // SessionLog.START

double wall_time_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// An Event with wall_time and step set; the caller appends its payload field.
std::string event_header(int64_t step) {
  std::string event;
  put_key(event, event_field::kWallTime, kFixed64);
  put_fixed(event, std::bit_cast<uint64_t>(wall_time_s()), 8);
  put_key(event, event_field::kStep, kVarint);
  put_varint(event, static_cast<uint64_t>(step));
  return event;
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) return "localhost";
  return name;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TensorBoardWriter>> TensorBoardWriter::open(const std::filesystem::path& dir,
                                                                           int64_t first_step) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) return absl::InternalError(absl::StrCat(dir.string(), ": cannot create: ", error.message()));
  static std::atomic<int> files_opened{0};
  const auto seconds = static_cast<int64_t>(wall_time_s());
  const std::filesystem::path path =
      dir / absl::StrCat("events.out.tfevents.", seconds, ".", host_name(), ".", ::getpid(), ".", files_opened++);
  std::FILE* file = std::fopen(path.c_str(), "wbx");
  if (file == nullptr) return absl::InternalError(absl::StrCat(path.string(), ": cannot create: ", std::strerror(errno)));
  std::unique_ptr<TensorBoardWriter> writer(new TensorBoardWriter(path, file));

  std::string version = event_header(0);
  put_bytes(version, event_field::kFileVersion, "brain.Event:2");
  PLM_RETURN_IF_ERROR(writer->write_event(version));
  std::string session_log;
  put_key(session_log, kSessionLogStatus, kVarint);
  put_varint(session_log, kSessionLogStart);
  std::string start = event_header(first_step);
  put_bytes(start, event_field::kSessionLog, session_log);
  PLM_RETURN_IF_ERROR(writer->write_event(start));
  return writer;
}

TensorBoardWriter::~TensorBoardWriter() { std::fclose(file_); }

absl::Status TensorBoardWriter::add_scalars(int64_t step, const std::vector<std::pair<std::string, float>>& values) {
  std::string summary;
  for (const auto& [tag, value] : values) {
    std::string entry;
    put_bytes(entry, kValueTag, tag);
    put_key(entry, kValueSimpleValue, kFixed32);
    put_fixed(entry, std::bit_cast<uint32_t>(value), 4);
    put_bytes(summary, kSummaryValue, entry);
  }
  std::string event = event_header(step);
  put_bytes(event, event_field::kSummary, summary);
  return write_event(event);
}

absl::Status TensorBoardWriter::write_event(const std::string& event) {
  const std::string record = tfrecord_frame(event);
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size() || std::fflush(file_) != 0) {
    return absl::InternalError(absl::StrCat(path_.string(), ": write failed: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace plm::trainer
