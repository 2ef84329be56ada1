// The on-disk protocol of a training checkpoint: sharded per rank, atomic, verifiable.
//
//   OUTPUT_DIR/checkpoints/step-00000100/             a complete checkpoint (renamed into place last)
//       model-rank00000.safetensors  optim-rank00000.safetensors  ...   one file per rank and kind
//       train_state.json                              step, data position, RNG, LR step (train_state.h)
//       COMPLETE                                      {"step", "layout", "files": {name: {"bytes", "crc32"}}}
//   OUTPUT_DIR/checkpoints/step-00000200.tmp-4242/    being written by a job whose rank 0 has pid 4242
//
// Writing (the barrier and the broadcast are the caller's, over its Communicator):
//   1. rank 0 takes writer_pid = getpid() and broadcasts it; every rank opens
//      CheckpointWriter::begin(output_dir, step, rank, writer_pid), writes its files and calls finish(),
//      which records their sizes and CRC-32s in manifest-rankNNNNN.json;
//   2. barrier: every rank has finished;
//   3. rank 0 calls commit_checkpoint(): it merges the world's manifests into COMPLETE (temp + fsync + rename),
//      fsyncs the directory, renames it to step-XXXXXXXX and fsyncs checkpoints/; then prune_checkpoints().
// A crash at any point leaves either the previous complete checkpoints or the new one, never a half one
// that a reader would take: readers accept only directories named step-XXXXXXXX with a COMPLETE marker whose
// files all exist with the recorded sizes (and CRCs).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/weights/safetensors.h"
#include "trainer/file_digest.h"

namespace plm::trainer {

inline constexpr const char* kCompleteMarker = "COMPLETE";

// The parallel layout a checkpoint was written with; a reader reshards when its own differs.
struct CheckpointLayout {
  int tp = 1;
  int pp = 1;
  int dp = 1;
  int zero = 0;
  int world_size() const { return tp * pp * dp; }
  bool operator==(const CheckpointLayout&) const = default;
};

// What a rank shards into its own file.
enum class ShardKind { kModel, kOptimizer };

// "model-rank00003.safetensors", "optim-rank00003.safetensors".
std::string rank_file_name(ShardKind kind, int rank);
std::filesystem::path checkpoints_dir(const std::filesystem::path& output_dir);  // output_dir/checkpoints
std::string step_dir_name(int64_t step);                                         // "step-00000100"

// One rank's writes into the staging directory of a step. A value type: it holds only names and digests.
class CheckpointWriter {
 public:
  // Creates (if absent) checkpoints/step-XXXXXXXX.tmp-<writer_pid>; every rank passes rank 0's pid.
  static absl::StatusOr<CheckpointWriter> begin(const std::filesystem::path& output_dir, int64_t step, int rank,
                                                int64_t writer_pid);

  const std::filesystem::path& dir() const { return dir_; }
  // Each file is written to a temporary name, fsynced and renamed; its size and CRC-32 are recorded.
  absl::Status write_tensors(const std::string& file_name, const std::vector<model::NamedTensor>& tensors,
                             const std::map<std::string, std::string>& metadata = {});
  absl::Status write_json(const std::string& file_name, const nlohmann::json& value);
  // Writes this rank's manifest; the rank writes nothing more into this checkpoint afterwards.
  absl::Status finish();

 private:
  CheckpointWriter(std::filesystem::path dir, int rank) : dir_(std::move(dir)), rank_(rank) {}
  absl::Status record(const std::string& file_name);

  std::filesystem::path dir_;
  int rank_ = 0;
  std::map<std::string, FileDigest> files_;
};

// Rank 0, after the barrier: COMPLETE from the manifests of ranks 0 .. layout.world_size() − 1, then the
// rename into place. Fails if a manifest is missing, two ranks wrote the same file, or step-XXXXXXXX exists.
// Returns the checkpoint's directory.
absl::StatusOr<std::filesystem::path> commit_checkpoint(const std::filesystem::path& output_dir, int64_t step,
                                                        int64_t writer_pid, const CheckpointLayout& layout);

// Rank 0, after the barrier of a save that failed (a full disk, an I/O error on any rank): removes the staging
// directory with whatever was written, so a failed save takes no space. Earlier checkpoints are not touched.
absl::Status discard_staging(const std::filesystem::path& output_dir, int64_t step, int64_t writer_pid);

struct CheckpointMarker {
  int64_t step = 0;
  CheckpointLayout layout;
  std::map<std::string, FileDigest> files;
};

// Parses dir/COMPLETE strictly; errors name the file.
absl::StatusOr<CheckpointMarker> read_checkpoint_marker(const std::filesystem::path& dir);

enum class Verify { kSizes, kSizesAndCrcs };
// Every file of `marker` exists in `dir` with its recorded size (and CRC-32: reads every byte).
absl::Status verify_checkpoint_files(const std::filesystem::path& dir, const CheckpointMarker& marker,
                                     Verify verify);

struct CompleteCheckpoint {
  std::filesystem::path dir;
  CheckpointMarker marker;
};

struct CheckpointScan {
  std::optional<CompleteCheckpoint> latest;  // none when output_dir has no complete checkpoint
  std::vector<std::string> ignored;          // "step-00000300: <why>" for each newer directory passed over
};

// The newest step-XXXXXXXX whose marker is valid, names its own step, and whose files match their sizes (and
// CRCs); newer directories that fail are listed in `ignored` (the caller tells the user). A missing
// checkpoints/ folder is no checkpoint, not an error. CRCs read every byte of the checkpoint on this rank
// (zlib's CRC-32 runs at ~1.7 GB/s per core here); a large job can scan with kSizes and let each rank verify
// the CRCs of the files it loads with verify_checkpoint_files.
absl::StatusOr<CheckpointScan> latest_complete_checkpoint(const std::filesystem::path& output_dir,
                                                          Verify verify = Verify::kSizesAndCrcs);

// Removes all but the newest `keep` complete checkpoints (keep 0: removes none; completeness checked by
// sizes, not CRCs) and every staging directory of a dead writer: one whose pid is not this process and not
// alive on this host. Directories without a valid marker are left alone. Returns what it removed.
// Call it on rank 0 only, after commit_checkpoint. A staging directory left by a writer on another host
// whose pid happens to be alive here is kept (readers ignore it).
absl::StatusOr<std::vector<std::filesystem::path>> prune_checkpoints(const std::filesystem::path& output_dir,
                                                                     int keep);

}  // namespace plm::trainer
