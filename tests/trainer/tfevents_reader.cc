#include "tests/trainer/tfevents_reader.h"

#include <bit>
#include <cstring>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "data/read_file.h"
#include "trainer/tfrecord.h"

namespace plm::trainer::testing {
namespace {

uint64_t read_le(std::string_view bytes, size_t offset, int count) {
  uint64_t value = 0;
  for (int i = count - 1; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(bytes[offset + i]);
  return value;
}

// A cursor over one protobuf message.
class ProtoReader {
 public:
  explicit ProtoReader(std::string_view bytes) : bytes_(bytes) {}
  bool done() const { return pos_ >= bytes_.size(); }

  absl::StatusOr<uint64_t> varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= bytes_.size()) return absl::DataLossError("truncated varint");
      const auto byte = static_cast<uint8_t>(bytes_[pos_++]);
      value |= static_cast<uint64_t>(byte & 0x7F) << shift;
      if ((byte & 0x80) == 0) return value;
    }
    return absl::DataLossError("varint longer than 10 bytes");
  }
  absl::StatusOr<uint64_t> fixed(int count) {
    if (pos_ + count > bytes_.size()) return absl::DataLossError("truncated fixed field");
    const uint64_t value = read_le(bytes_, pos_, count);
    pos_ += count;
    return value;
  }
  absl::StatusOr<std::string_view> length_delimited() {
    PLM_ASSIGN_OR_RETURN(const uint64_t length, varint());
    if (pos_ + length > bytes_.size()) return absl::DataLossError("truncated length-delimited field");
    const std::string_view value = bytes_.substr(pos_, length);
    pos_ += length;
    return value;
  }
  absl::Status skip(int wire_type) {
    switch (wire_type) {
      case 0: return varint().status();
      case 1: return fixed(8).status();
      case 2: return length_delimited().status();
      case 5: return fixed(4).status();
      default: return absl::DataLossError(absl::StrCat("unsupported wire type ", wire_type));
    }
  }

 private:
  std::string_view bytes_;
  size_t pos_ = 0;
};

absl::StatusOr<std::pair<std::string, float>> decode_value(std::string_view bytes) {
  ProtoReader reader(bytes);
  std::pair<std::string, float> value;
  while (!reader.done()) {
    PLM_ASSIGN_OR_RETURN(const uint64_t key, reader.varint());
    if (key == ((1 << 3) | 2)) {
      PLM_ASSIGN_OR_RETURN(const std::string_view tag, reader.length_delimited());
      value.first = std::string(tag);
    } else if (key == ((2 << 3) | 5)) {
      PLM_ASSIGN_OR_RETURN(const uint64_t bits, reader.fixed(4));
      value.second = std::bit_cast<float>(static_cast<uint32_t>(bits));
    } else {
      PLM_RETURN_IF_ERROR(reader.skip(static_cast<int>(key & 7)));
    }
  }
  return value;
}

absl::StatusOr<DecodedEvent> decode_event(std::string_view bytes) {
  ProtoReader reader(bytes);
  DecodedEvent event;
  while (!reader.done()) {
    PLM_ASSIGN_OR_RETURN(const uint64_t key, reader.varint());
    const uint64_t field = key >> 3;
    const int wire_type = static_cast<int>(key & 7);
    if (field == 1 && wire_type == 1) {
      PLM_ASSIGN_OR_RETURN(const uint64_t bits, reader.fixed(8));
      event.wall_time = std::bit_cast<double>(bits);
    } else if (field == 2 && wire_type == 0) {
      PLM_ASSIGN_OR_RETURN(const uint64_t step, reader.varint());
      event.step = static_cast<int64_t>(step);
    } else if (field == 3 && wire_type == 2) {
      PLM_ASSIGN_OR_RETURN(const std::string_view version, reader.length_delimited());
      event.file_version = std::string(version);
    } else if (field == 5 && wire_type == 2) {
      PLM_ASSIGN_OR_RETURN(const std::string_view summary, reader.length_delimited());
      ProtoReader values(summary);
      while (!values.done()) {
        PLM_ASSIGN_OR_RETURN(const uint64_t value_key, values.varint());
        if (value_key != ((1 << 3) | 2)) return absl::DataLossError("Summary holds a field other than value");
        PLM_ASSIGN_OR_RETURN(const std::string_view value, values.length_delimited());
        PLM_ASSIGN_OR_RETURN(auto decoded, decode_value(value));
        event.scalars.push_back(std::move(decoded));
      }
    } else if (field == 7 && wire_type == 2) {  // session_log (6 is the deprecated log_message)
      PLM_ASSIGN_OR_RETURN(const std::string_view session_log, reader.length_delimited());
      ProtoReader log(session_log);
      event.session_log_status = 0;
      while (!log.done()) {
        PLM_ASSIGN_OR_RETURN(const uint64_t log_key, log.varint());
        if (log_key == ((1 << 3) | 0)) {
          PLM_ASSIGN_OR_RETURN(const uint64_t status, log.varint());
          event.session_log_status = static_cast<int>(status);
        } else {
          PLM_RETURN_IF_ERROR(log.skip(static_cast<int>(log_key & 7)));
        }
      }
    } else {
      PLM_RETURN_IF_ERROR(reader.skip(wire_type));
    }
  }
  return event;
}

}  // namespace

absl::StatusOr<std::vector<DecodedEvent>> read_tfevents(const std::filesystem::path& path) {
  PLM_ASSIGN_OR_RETURN(const std::string file, data::read_file(path));
  const std::string_view bytes(file);
  std::vector<DecodedEvent> events;
  size_t pos = 0;
  while (pos < bytes.size()) {
    if (pos + 12 > bytes.size()) return absl::DataLossError(absl::StrCat("truncated record header at ", pos));
    const uint64_t length = read_le(bytes, pos, 8);
    if (read_le(bytes, pos + 8, 4) != masked_crc32c(bytes.substr(pos, 8))) {
      return absl::DataLossError(absl::StrCat("bad length CRC at ", pos));
    }
    if (pos + 12 + length + 4 > bytes.size()) return absl::DataLossError(absl::StrCat("truncated record at ", pos));
    const std::string_view data = bytes.substr(pos + 12, length);
    if (read_le(bytes, pos + 12 + length, 4) != masked_crc32c(data)) {
      return absl::DataLossError(absl::StrCat("bad data CRC at ", pos));
    }
    PLM_ASSIGN_OR_RETURN(DecodedEvent event, decode_event(data));
    events.push_back(std::move(event));
    pos += 12 + length + 4;
  }
  return events;
}

}  // namespace plm::trainer::testing
