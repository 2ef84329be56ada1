// safetensors: write/read round trips, alignment, atomic replacement, and strict header validation
// (every malformed file is written by hand into a temporary directory; no binary fixtures).
#include "model/weights/safetensors.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <future>
#include <numeric>
#include <thread>

#include "tests/model/model_test_util.h"

namespace plm::model {
namespace {

using testing::FailsWith;
using testing::fresh_temp_dir;
using testing::write_file;

std::string le64(uint64_t v) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(v >> (8 * i));
  return bytes;
}

// A file with the given header text and `data_bytes` zero bytes of data.
std::string raw_file(const std::string& header, size_t data_bytes) {
  return le64(header.size()) + header + std::string(data_bytes, '\0');
}

OwnedTensor iota(Shape shape, DType dtype) {
  OwnedTensor t(shape, dtype);
  auto* bytes = static_cast<unsigned char*>(t.view().data());
  for (size_t i = 0; i < t.view().nbytes(); ++i) bytes[i] = static_cast<unsigned char>(i * 7 + 3);
  return t;
}

bool same_bytes(const std::byte* data, Tensor expected) {
  // memcmp's pointers must not be null even for 0 bytes (an empty tensor has no data).
  return expected.nbytes() == 0 || std::memcmp(data, expected.data(), expected.nbytes()) == 0;
}

TEST(Safetensors, RoundTripsEveryDTypeAndMetadata) {
  const auto path = (fresh_temp_dir() / "model.safetensors").string();
  const OwnedTensor f32 = iota({3, 5}, DType::kF32), bf = iota({7}, DType::kBF16), half = iota({2, 3}, DType::kF16);
  const OwnedTensor i32 = iota({4}, DType::kI32), i64 = iota({3}, DType::kI64), u8 = iota({2, 2, 3}, DType::kU8);
  const OwnedTensor scalar = iota({}, DType::kF32), empty = iota({0, 4}, DType::kF32);
  const std::vector<NamedTensor> tensors = {{"a.f32", f32},   {"b.bf16", bf},     {"c.f16", half},
                                            {"d.i32", i32},   {"e.i64", i64},     {"f.u8", u8},
                                            {"g.scalar", scalar}, {"h.empty", empty}};
  ASSERT_TRUE(write_safetensors(path, tensors, {{"format", "pt"}}).ok());

  const absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  ASSERT_EQ((*file)->entries().size(), tensors.size());
  for (const NamedTensor& t : tensors) {
    SCOPED_TRACE(t.name);
    const SafetensorsEntry& e = (*file)->entries().at(t.name);
    EXPECT_EQ(e.dtype, t.tensor.dtype());
    EXPECT_EQ(e.shape, t.tensor.shape());
    EXPECT_EQ(e.end - e.begin, t.tensor.nbytes());
    EXPECT_TRUE(same_bytes((*file)->data(e), t.tensor));
    // Written files keep every tensor aligned to its element size, so views need no copy.
    EXPECT_EQ(reinterpret_cast<uintptr_t>((*file)->data(e)) % dtype_size(e.dtype), 0u);
  }
}

TEST(Safetensors, ReplacesAnExistingFileAndLeavesNoTemporaries) {
  const auto dir = fresh_temp_dir();
  const auto path = (dir / "w.safetensors").string();
  const OwnedTensor first = iota({2}, DType::kF32), second = iota({6}, DType::kBF16);
  ASSERT_TRUE(write_safetensors(path, {{"x", first}}).ok());
  ASSERT_TRUE(write_safetensors(path, {{"y", second}}).ok());
  const auto file = SafetensorsFile::open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_FALSE((*file)->entries().contains("x"));
  EXPECT_EQ((*file)->entries().at("y").shape, Shape({6}));
  EXPECT_TRUE((*file)->metadata().empty());
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator()), 1);
}

TEST(Safetensors, WriterRejectsBadInput) {
  const auto path = (fresh_temp_dir() / "w.safetensors").string();
  const OwnedTensor t = iota({2, 3}, DType::kF32);
  EXPECT_THAT(write_safetensors(path, {{"x", t}, {"x", t}}), FailsWith("tensor 'x' given twice"));
  EXPECT_THAT(write_safetensors(path, {{"x", t.view().slice(1, 0, 2)}}), FailsWith("'x' must be contiguous"));
  EXPECT_THAT(write_safetensors(path, {{"__metadata__", t}}), FailsWith("invalid tensor name"));
  EXPECT_THAT(write_safetensors("/nonexistent-dir/w.safetensors", {{"x", t}}),
              FailsWith("/nonexistent-dir/w.safetensors", "temporary file"));
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(Safetensors, AcceptsUnalignedAndUnorderedForeignFiles) {
  // Other writers need not pad the header to 8 bytes or list tensors in data order.
  const auto path = (fresh_temp_dir() / "f.safetensors").string();
  write_file(path, raw_file(R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]},)"
                            R"("a":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]}}   )",
                            6));
  const auto file = SafetensorsFile::open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->entries().size(), 2u);
}

class SafetensorsErrors : public ::testing::Test {
 protected:
  absl::Status open_raw(const std::string& bytes) {
    write_file(path_, bytes);
    return SafetensorsFile::open(path_).status();
  }
  std::string path_ = (fresh_temp_dir() / "bad.safetensors").string();
};

TEST_F(SafetensorsErrors, MissingFile) {
  EXPECT_THAT(SafetensorsFile::open(path_ + ".none"), FailsWith(path_ + ".none", "cannot open"));
}

TEST_F(SafetensorsErrors, NotARegularFile) {
  const auto dir = std::filesystem::path(path_).parent_path();
  EXPECT_THAT(SafetensorsFile::open(dir.string()), FailsWith(dir.string(), "not a regular file (a directory)"));

  // open() of a FIFO waits for a writer unless asked not to. Should it wait, a writer comes after 2 s, so
  // a regression fails on the time taken instead of hanging.
  const std::string fifo = (dir / "pipe.safetensors").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0) << std::strerror(errno);
  std::promise<void> returned;
  std::thread writer([&fifo, done = returned.get_future()] {
    if (done.wait_for(std::chrono::seconds(2)) == std::future_status::ready) return;
    const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0) ::close(fd);
  });
  const auto start = std::chrono::steady_clock::now();
  const absl::Status status = SafetensorsFile::open(fifo).status();
  const auto elapsed = std::chrono::steady_clock::now() - start;
  returned.set_value();
  writer.join();
  EXPECT_THAT(status, FailsWith(fifo, "not a regular file (a FIFO)"));
  EXPECT_LT(elapsed, std::chrono::seconds(1)) << "open() waited for a writer on the FIFO";
}

TEST_F(SafetensorsErrors, TruncatedFile) {
  EXPECT_THAT(open_raw("abc"), FailsWith(path_, "truncated: 3 bytes"));
  EXPECT_THAT(open_raw(""), FailsWith(path_, "truncated: 0 bytes"));
}

TEST_F(SafetensorsErrors, HeaderLengthLargerThanFile) {
  EXPECT_THAT(open_raw(le64(1000) + "{}"), FailsWith(path_, "header length 1000 exceeds the 2 bytes"));
  EXPECT_THAT(open_raw(le64(~uint64_t{0}) + "{}"), FailsWith("header length 18446744073709551615 exceeds"));
}

TEST_F(SafetensorsErrors, HeaderLengthOverTheLimit) {
  // The reference implementation's limit is 100,000,000 bytes; a longer header is refused before it is read.
  // A sparse file holds the length without the bytes.
  write_file(path_, le64(100'000'001) + "{}");
  std::filesystem::resize_file(path_, 8 + 100'000'001);
  EXPECT_THAT(SafetensorsFile::open(path_), FailsWith(path_, "header length 100000001 exceeds the limit of 100000000"));
}

TEST_F(SafetensorsErrors, MalformedJsonHeader) {
  EXPECT_THAT(open_raw(raw_file(R"({"a": {"dtype": "F32",)", 0)), FailsWith(path_, "malformed JSON header"));
  EXPECT_THAT(open_raw(raw_file("[1, 2]", 0)), FailsWith(path_, "JSON header must be an object"));
  // nlohmann throws out_of_range, not parse_error, for a number no double holds (found by fuzz/safetensors).
  EXPECT_THAT(open_raw(raw_file(R"({"a":{"dtype":"F32","shape":[1e999],"data_offsets":[0,4]}})", 4)),
              FailsWith(path_, "malformed JSON header"));
}

TEST_F(SafetensorsErrors, UnknownOrUnsupportedDType) {
  EXPECT_THAT(open_raw(raw_file(R"({"w":{"dtype":"F7","shape":[1],"data_offsets":[0,4]}})", 4)),
              FailsWith(path_, "tensor 'w'", "unknown dtype 'F7'"));
  EXPECT_THAT(open_raw(raw_file(R"({"w":{"dtype":"BOOL","shape":[1],"data_offsets":[0,1]}})", 1)),
              FailsWith("tensor 'w'", "dtype BOOL is not supported"));
}

TEST_F(SafetensorsErrors, ByteRangeOutOfBounds) {
  EXPECT_THAT(open_raw(raw_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8)),
              FailsWith(path_, "tensor 'w'", "byte range [0, 16) is outside the data section of 8 bytes"));
  EXPECT_THAT(open_raw(raw_file(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", 8)),
              FailsWith("byte range [8, 4) is outside"));
}

TEST_F(SafetensorsErrors, ShapeSizeMismatch) {
  EXPECT_THAT(open_raw(raw_file(R"({"w":{"dtype":"BF16","shape":[2,4],"data_offsets":[0,12]}})", 16)),
              FailsWith("tensor 'w'", "shape (2, 4) x BF16 needs 16 bytes but data_offsets [0, 12) hold 12"));
  EXPECT_THAT(open_raw(raw_file(R"({"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,16]}})", 16)),
              FailsWith("tensor 'w'", "is larger than the data section"));
}

TEST_F(SafetensorsErrors, OverlappingRanges) {
  EXPECT_THAT(open_raw(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                12)),
              FailsWith("tensors 'a' [0, 8) and 'b' [4, 12) overlap"));
}

TEST_F(SafetensorsErrors, MalformedEntries) {
  EXPECT_THAT(open_raw(raw_file(R"({"w":{"dtype":"F32","shape":[1]}})", 4)),
              FailsWith("tensor 'w'", "needs \"dtype\", \"shape\" and \"data_offsets\""));
  EXPECT_THAT(open_raw(raw_file(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4)),
              FailsWith("shape must be a list of non-negative integers"));
  EXPECT_THAT(open_raw(raw_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4)),
              FailsWith("data_offsets must be [begin, end]"));
  EXPECT_THAT(open_raw(raw_file(R"({"w":{"dtype":"F32","shape":[1,1,1,1,1,1,1],"data_offsets":[0,4]}})", 4)),
              FailsWith("rank 7 exceeds"));
}

TEST_F(SafetensorsErrors, MalformedMetadata) {
  EXPECT_THAT(open_raw(raw_file(R"({"__metadata__":["format","pt"]})", 0)),
              FailsWith(path_, "__metadata__ must be an object of strings, got [\"format\",\"pt\"]"));
  EXPECT_THAT(open_raw(raw_file(R"({"__metadata__":"pt"})", 0)),
              FailsWith(path_, "__metadata__ must be an object of strings, got \"pt\""));
  EXPECT_THAT(open_raw(raw_file(R"({"__metadata__":{"format":1}})", 0)),
              FailsWith(path_, "__metadata__ value of 'format' must be a string, got 1"));
  EXPECT_THAT(open_raw(raw_file(R"({"__metadata__":{"format":"pt","step":null}})", 0)),
              FailsWith(path_, "__metadata__ value of 'step' must be a string, got null"));
  EXPECT_THAT(open_raw(raw_file(R"({"__metadata__":{"nested":{"a":"b"}}})", 0)),
              FailsWith(path_, "__metadata__ value of 'nested' must be a string, got {\"a\":\"b\"}"));
}

}  // namespace
}  // namespace plm::model
