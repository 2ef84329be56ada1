#include "trainer/checkpoint_io.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "core/tensor.h"
#include "data/read_file.h"
#include "tests/model/model_test_util.h"
#include "trainer/train_state.h"

namespace plm::trainer {
namespace {

namespace fs = std::filesystem;
using ::plm::model::testing::FailsWith;
using ::plm::model::testing::fresh_temp_dir;
using ::plm::model::testing::write_file;

// A (2, 3) f32 tensor whose values depend on `seed`, so ranks and steps write different bytes.
OwnedTensor tensor_for(int seed) {
  OwnedTensor t(Shape{2, 3}, DType::kF32);
  for (int i = 0; i < 6; ++i) t.data_as<float>()[i] = static_cast<float>(seed * 10 + i) + 0.5f;
  return t;
}

TrainState state_for(int64_t step) {
  return {.step = step, .lr_step = step, .data_position = 8 * step, .rng_seed = 0xFFFFFFFFFFFFFFF0ull,
          .rng_offset = 3 * static_cast<uint64_t>(step), .elapsed_s = 1.25 * static_cast<double>(step)};
}

// One rank's part of a checkpoint, as the training loop writes it.
absl::Status write_rank_files(const fs::path& output_dir, int64_t step, int rank, int64_t writer_pid) {
  PLM_ASSIGN_OR_RETURN(CheckpointWriter writer, CheckpointWriter::begin(output_dir, step, rank, writer_pid));
  const OwnedTensor weights = tensor_for(static_cast<int>(step) * 100 + rank);
  const OwnedTensor moments = tensor_for(static_cast<int>(step) * 100 + rank + 50);
  PLM_RETURN_IF_ERROR(writer.write_tensors(rank_file_name(ShardKind::kModel, rank), {{"w", weights}}));
  PLM_RETURN_IF_ERROR(writer.write_tensors(rank_file_name(ShardKind::kOptimizer, rank), {{"w.exp_avg", moments}}));
  if (rank == 0) PLM_RETURN_IF_ERROR(writer.write_json(kTrainStateFile, train_state_to_json(state_for(step))));
  return writer.finish();
}

void write_rank(const fs::path& output_dir, int64_t step, int rank, int64_t writer_pid) {
  const absl::Status status = write_rank_files(output_dir, step, rank, writer_pid);
  ASSERT_TRUE(status.ok()) << status;
}

// Every rank of a `dp`-rank world writes, then rank 0 commits.
fs::path write_checkpoint(const fs::path& output_dir, int64_t step, int dp = 1) {
  for (int rank = 0; rank < dp; ++rank) write_rank(output_dir, step, rank, ::getpid());
  const absl::StatusOr<fs::path> dir =
      commit_checkpoint(output_dir, step, ::getpid(), CheckpointLayout{.dp = dp, .zero = 1});
  EXPECT_TRUE(dir.ok()) << dir.status();
  return dir.ok() ? *dir : fs::path();
}

uint32_t zlib_crc_of(const fs::path& path) {
  const absl::StatusOr<std::string> bytes = data::read_file(path);
  EXPECT_TRUE(bytes.ok());
  return static_cast<uint32_t>(
      ::crc32(0L, reinterpret_cast<const Bytef*>(bytes->data()), static_cast<uInt>(bytes->size())));
}

std::optional<int64_t> latest_step(const fs::path& output_dir) {
  const absl::StatusOr<CheckpointScan> scan = latest_complete_checkpoint(output_dir);
  EXPECT_TRUE(scan.ok()) << scan.status();
  if (!scan.ok() || !scan->latest) return std::nullopt;
  return scan->latest->marker.step;
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

int64_t dead_pid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  return child;
}

TEST(CheckpointIo, Names) {
  EXPECT_EQ(rank_file_name(ShardKind::kModel, 3), "model-rank00003.safetensors");
  EXPECT_EQ(rank_file_name(ShardKind::kOptimizer, 12345), "optim-rank12345.safetensors");
  EXPECT_EQ(step_dir_name(100), "step-00000100");
  EXPECT_EQ(checkpoints_dir("/out"), fs::path("/out/checkpoints"));
}

TEST(CheckpointIo, ShardedRoundTrip) {
  const fs::path out = fresh_temp_dir();
  const fs::path dir = write_checkpoint(out, 100, /*dp=*/2);
  EXPECT_EQ(dir, out / "checkpoints" / "step-00000100");
  EXPECT_EQ(names_in(out / "checkpoints"), std::vector<std::string>{"step-00000100"});  // no staging left
  EXPECT_EQ(names_in(dir), (std::vector<std::string>{"COMPLETE", "model-rank00000.safetensors",
                                                     "model-rank00001.safetensors", "optim-rank00000.safetensors",
                                                     "optim-rank00001.safetensors", "train_state.json"}));

  const absl::StatusOr<CheckpointScan> scan = latest_complete_checkpoint(out);
  ASSERT_TRUE(scan.ok()) << scan.status();
  ASSERT_TRUE(scan->latest.has_value());
  EXPECT_TRUE(scan->ignored.empty());
  const CheckpointMarker& marker = scan->latest->marker;
  EXPECT_EQ(scan->latest->dir, dir);
  EXPECT_EQ(marker.step, 100);
  EXPECT_EQ(marker.layout, (CheckpointLayout{.tp = 1, .pp = 1, .dp = 2, .zero = 1}));
  ASSERT_EQ(marker.files.size(), 5u);
  for (const auto& [name, digest] : marker.files) {
    EXPECT_EQ(digest.bytes, fs::file_size(dir / name)) << name;
    EXPECT_EQ(digest.crc32, zlib_crc_of(dir / name)) << name;
  }

  for (int rank = 0; rank < 2; ++rank) {
    auto file = model::SafetensorsFile::open((dir / rank_file_name(ShardKind::kModel, rank)).string());
    ASSERT_TRUE(file.ok()) << file.status();
    const model::SafetensorsEntry& entry = (*file)->entries().at("w");
    EXPECT_EQ(entry.shape, (Shape{2, 3}));
    const auto* values = reinterpret_cast<const float*>((*file)->data(entry));
    const OwnedTensor expected = tensor_for(100 * 100 + rank);
    for (int i = 0; i < 6; ++i) EXPECT_EQ(values[i], expected.data_as<float>()[i]);
  }
  const absl::StatusOr<TrainState> state = read_train_state(dir);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, state_for(100));
}

// Ranks as separate processes writing at the same time into one staging directory, as under mpirun.
TEST(CheckpointIo, RanksInSeparateProcesses) {
  const fs::path out = fresh_temp_dir();
  constexpr int kRanks = 4;
  std::vector<pid_t> children;
  for (int rank = 0; rank < kRanks; ++rank) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) ::_exit(write_rank_files(out, 8, rank, ::getppid()).ok() ? 0 : 1);
    children.push_back(child);
  }
  for (const pid_t child : children) {  // the barrier
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  const absl::StatusOr<fs::path> dir = commit_checkpoint(out, 8, ::getpid(), CheckpointLayout{.dp = kRanks});
  ASSERT_TRUE(dir.ok()) << dir.status();
  const absl::StatusOr<CheckpointScan> scan = latest_complete_checkpoint(out);
  ASSERT_TRUE(scan.ok() && scan->latest.has_value());
  EXPECT_EQ(scan->latest->marker.files.size(), 2u * kRanks + 1);
  EXPECT_EQ(scan->latest->marker.layout.dp, kRanks);
}

TEST(CheckpointIo, NoCheckpointsFolderIsNoCheckpoint) {
  const absl::StatusOr<CheckpointScan> scan = latest_complete_checkpoint(fresh_temp_dir() / "never-written");
  ASSERT_TRUE(scan.ok()) << scan.status();
  EXPECT_FALSE(scan->latest.has_value());
}

TEST(CheckpointIo, CrashBeforeCommitLeavesTheLastCompleteCheckpoint) {
  const fs::path out = fresh_temp_dir();
  write_checkpoint(out, 10);
  write_rank(out, 20, 0, ::getpid());  // every rank wrote, rank 0 died before COMPLETE
  absl::StatusOr<CheckpointWriter> partial = CheckpointWriter::begin(out, 30, 0, ::getpid());
  ASSERT_TRUE(partial.ok());
  write_file(partial->dir() / rank_file_name(ShardKind::kModel, 0), "half a file");  // died mid-write
  EXPECT_EQ(latest_step(out), 10);
}

// A save that failed (a full disk) discards its staging directory and nothing else.
TEST(CheckpointIo, DiscardStagingRemovesOnlyTheFailedSave) {
  const fs::path out = fresh_temp_dir();
  const fs::path kept = write_checkpoint(out, 10);
  absl::StatusOr<CheckpointWriter> partial = CheckpointWriter::begin(out, 20, 0, ::getpid());
  ASSERT_TRUE(partial.ok());
  write_file(partial->dir() / rank_file_name(ShardKind::kModel, 0), "half a file");
  ASSERT_TRUE(discard_staging(out, 20, ::getpid()).ok());
  EXPECT_EQ(names_in(checkpoints_dir(out)), std::vector<std::string>{kept.filename().string()});
  EXPECT_EQ(latest_step(out), 10);
  EXPECT_TRUE(discard_staging(out, 30, ::getpid()).ok()) << "nothing staged: nothing to do";
}

// A directory with a final name whose content does not match its marker (what a torn copy, a disk error or a
// hand edit leaves) is passed over, with the reason.
TEST(CheckpointIo, DamagedCheckpointsAreIgnoredWithAReason) {
  struct Damage {
    std::string name;
    std::function<void(const fs::path&)> apply;
    std::string reason;
  };
  const std::vector<Damage> damages = {
      {"no marker", [](const fs::path& d) { fs::remove(d / kCompleteMarker); }, "COMPLETE"},
      {"truncated marker",
       [](const fs::path& d) { fs::resize_file(d / kCompleteMarker, fs::file_size(d / kCompleteMarker) / 2); },
       "malformed JSON"},
      {"truncated file",
       [](const fs::path& d) {
         const fs::path f = d / rank_file_name(ShardKind::kOptimizer, 0);
         fs::resize_file(f, fs::file_size(f) - 4);
       },
       "COMPLETE records"},
      {"flipped byte",
       [](const fs::path& d) {
         std::fstream f(d / rank_file_name(ShardKind::kModel, 0), std::ios::in | std::ios::out | std::ios::binary);
         f.seekp(-1, std::ios::end);
         f.put('\x7f');
       },
       "CRC-32"},
      {"missing file", [](const fs::path& d) { fs::remove(d / kTrainStateFile); }, "listed in COMPLETE"},
      {"renamed step",
       [](const fs::path& d) { fs::rename(d, d.parent_path() / step_dir_name(30)); }, "does not match"},
  };
  for (const Damage& damage : damages) {
    SCOPED_TRACE(damage.name);
    const fs::path out = fresh_temp_dir() / damage.name;
    write_checkpoint(out, 10);
    damage.apply(write_checkpoint(out, 20));
    const absl::StatusOr<CheckpointScan> scan = latest_complete_checkpoint(out);
    ASSERT_TRUE(scan.ok()) << scan.status();
    ASSERT_TRUE(scan->latest.has_value());
    EXPECT_EQ(scan->latest->marker.step, 10);
    ASSERT_EQ(scan->ignored.size(), 1u);
    EXPECT_THAT(scan->ignored[0], ::testing::HasSubstr(damage.reason));
    // A scan by sizes alone misses only the flipped byte.
    const absl::StatusOr<CheckpointScan> by_size = latest_complete_checkpoint(out, Verify::kSizes);
    ASSERT_TRUE(by_size.ok() && by_size->latest.has_value());
    EXPECT_EQ(by_size->latest->marker.step, damage.name == "flipped byte" ? 20 : 10);
  }
}

TEST(CheckpointIo, CommitNeedsEveryRanksManifestAndANewStep) {
  const fs::path out = fresh_temp_dir();
  write_rank(out, 5, 0, ::getpid());
  EXPECT_THAT(commit_checkpoint(out, 5, ::getpid(), CheckpointLayout{.dp = 2}),
              FailsWith("manifest-rank00001.json", "rank 1 did not finish"));
  write_rank(out, 5, 1, ::getpid());
  ASSERT_TRUE(commit_checkpoint(out, 5, ::getpid(), CheckpointLayout{.dp = 2}).ok());
  write_rank(out, 5, 0, ::getpid());
  EXPECT_THAT(commit_checkpoint(out, 5, ::getpid(), CheckpointLayout{.dp = 1}), FailsWith("already exists"));
}

TEST(CheckpointIo, CommitRejectsTwoRanksWritingTheSameFile) {
  const fs::path out = fresh_temp_dir();
  for (int rank = 0; rank < 2; ++rank) {
    absl::StatusOr<CheckpointWriter> writer = CheckpointWriter::begin(out, 1, rank, ::getpid());
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE(writer->write_json(kTrainStateFile, train_state_to_json(state_for(1))).ok());
    ASSERT_TRUE(writer->finish().ok());
  }
  EXPECT_THAT(commit_checkpoint(out, 1, ::getpid(), CheckpointLayout{.dp = 2}),
              FailsWith("train_state.json was also written by another rank"));
}

TEST(CheckpointIo, PruneKeepsTheNewestCompleteAndRemovesDeadWritersStaging) {
  const fs::path out = fresh_temp_dir();
  for (int64_t step : {1, 2, 3, 4, 5}) write_checkpoint(out, step);
  fs::create_directories(out / "checkpoints" / step_dir_name(6));  // no marker: not counted, left alone
  const int64_t dead = dead_pid();
  for (int64_t pid : {dead, static_cast<int64_t>(::getpid()), int64_t{1}}) {
    ASSERT_TRUE(CheckpointWriter::begin(out, 7, 0, pid).ok());
  }

  const absl::StatusOr<std::vector<fs::path>> removed = prune_checkpoints(out, 2);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(removed->size(), 4u);
  const std::string live = absl::StrCat("step-00000007.tmp-", ::getpid());
  std::vector<std::string> expected = {"step-00000004", "step-00000005", "step-00000006", live,
                                       "step-00000007.tmp-1"};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(names_in(out / "checkpoints"), expected);
  EXPECT_EQ(latest_step(out), 5);

  const absl::StatusOr<std::vector<fs::path>> keep_all = prune_checkpoints(out, 0);
  ASSERT_TRUE(keep_all.ok());
  EXPECT_TRUE(keep_all->empty());
}

TEST(TrainState, JsonRoundTripAndErrors) {
  const TrainState state = state_for(7);
  const absl::StatusOr<TrainState> back = train_state_from_json(train_state_to_json(state), "state");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, state);

  nlohmann::json bad = train_state_to_json(state);
  bad["step"] = -1;
  EXPECT_THAT(train_state_from_json(bad, "ts.json"), FailsWith("ts.json", "step"));
  bad = train_state_to_json(state);
  bad.erase("rng_offset");
  EXPECT_THAT(train_state_from_json(bad, "ts.json"), FailsWith("ts.json", "rng_offset"));
  bad = train_state_to_json(state);
  bad["elapsed_s"] = "long";
  EXPECT_THAT(train_state_from_json(bad, "ts.json"), FailsWith("ts.json", "elapsed_s"));
}

}  // namespace
}  // namespace plm::trainer
