// `plm caption` as processes on the tiny cls_tied model and videos made by the test: every caption equals what
// `plm generate` prints for the same file, prompt and system turn; bad files become error lines; a job killed
// with SIGKILL half-way (and a torn last line) resumes to the same complete output with no duplicates; two ranks
// under mpirun give the same captions as one; --merge alone rebuilds the output; the embeddings are readable by
// h5py; --tp 2 replicas (two TP ranks stepping one engine) give the same captions as one rank.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "caption/caption_record.h"
#include "caption/part_file.h"
#include "core/check.h"
#include "tests/caption/caption_test_media.h"
#include "tests/core/test_temp_dir.h"
#include "tests/serve/serve_fixture.h"

namespace plm::caption {
namespace {

using ::testing::HasSubstr;
using testing::read_lines;
using testing::write_lines;

constexpr char kMpiEnv[] =
    "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1";

struct Result {
  int code = -1;
  std::string output;  // stdout and stderr
};

Result run_shell(const std::string& command) {
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  PLM_CHECK(pipe != nullptr) << command;
  Result r;
  char buffer[4096];
  while (const size_t n = std::fread(buffer, 1, sizeof(buffer), pipe)) r.output.append(buffer, n);
  const int status = ::pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string model() { return (serve::testing::models_dir() / "cls_tied").string(); }

std::string caption_command(const std::filesystem::path& inputs, const std::filesystem::path& out,
                            const std::string& extra = "") {
  return absl::StrCat(PLM_BINARY, " caption --model ", model(), " --inputs ", inputs.string(), " --out ", out.string(),
                      " --num-frames 4 --max-new-tokens 16 --kv-cache-bytes 32M ", extra);
}

// What `plm generate` prints for one file, without the final newline.
std::string plm_generate(const std::string& flag, const std::filesystem::path& file, const std::string& prompt,
                         const std::string& system = "") {
  const Result r = run_shell(absl::StrCat(PLM_BINARY, " generate --model ", model(), " ", flag, " ", file.string(),
                                          " --num-frames 4 --max-new-tokens 16 --prompt '", prompt, "'",
                                          system.empty() ? "" : absl::StrCat(" --system '", system, "'")));
  EXPECT_EQ(r.code, 0) << r.output;
  std::string text = r.output;
  if (!text.empty() && text.back() == '\n') text.pop_back();
  // JSON holds UTF-8 only: the output replaces each invalid byte (the random tiny model emits some) by U+FFFD.
  CaptionRecord record;
  record.caption = text;
  return parse_record_line(record_line(record, LineFields::kOutput))->caption;
}

// The output's records without their timing (which differs from run to run).
std::vector<std::string> untimed(const std::filesystem::path& out) {
  std::vector<std::string> lines;
  for (const std::string& line : read_lines(out)) {
    absl::StatusOr<CaptionRecord> r = parse_record_line(line);
    EXPECT_TRUE(r.ok()) << line;
    if (!r.ok()) continue;
    r->seconds = 0;
    lines.push_back(record_line(*r, LineFields::kOutput));
  }
  return lines;
}

std::vector<std::string> path_lines(const std::vector<std::filesystem::path>& paths) {
  std::vector<std::string> lines;
  for (const auto& p : paths) lines.push_back(p.string());
  return lines;
}

TEST(PlmCaption, CaptionsEqualPlmGenerateAndBadFilesBecomeErrorLines) {
  const auto dir = plm::testing::fresh_temp_dir();
  const std::vector<std::filesystem::path> videos = testing::write_test_videos(dir / "media", 3);
  const std::filesystem::path image = testing::copy_test_image(dir / "media");
  const testing::BadInputs bad = testing::write_bad_inputs(dir / "media");
  const std::string custom = "What changes between the frames?";
  write_lines(dir / "list.jsonl",
              {absl::StrCat("{\"id\": \"v0\", \"path\": \"", videos[0].string(), "\"}"),
               absl::StrCat("{\"id\": \"corrupt\", \"path\": \"", bad.corrupt.string(), "\"}"),
               absl::StrCat("{\"id\": \"v1\", \"path\": \"", videos[1].string(), "\", \"prompt\": \"", custom, "\"}"),
               absl::StrCat("{\"id\": \"img\", \"path\": \"media/image.png\"}"),
               absl::StrCat("{\"id\": \"empty\", \"path\": \"", bad.empty.string(), "\"}"),
               absl::StrCat("{\"id\": \"v2\", \"path\": \"", videos[2].string(), "\"}")});
  const std::string prompt = "What is happening in this video?";
  const std::filesystem::path out = dir / "captions.jsonl";
  const Result r = run_shell(caption_command(dir / "list.jsonl", out, absl::StrCat("--prompt '", prompt, "'")));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("6 items (4 captions, 2 errors)"));
  EXPECT_THAT(r.output, HasSubstr("items/s"));

  const std::vector<std::string> lines = read_lines(out);
  ASSERT_EQ(lines.size(), 6u) << absl::StrJoin(lines, "\n");
  std::vector<CaptionRecord> records;
  for (const std::string& line : lines) {
    absl::StatusOr<CaptionRecord> rec = parse_record_line(line);
    ASSERT_TRUE(rec.ok()) << line;
    records.push_back(*rec);
  }
  EXPECT_EQ(records[0].id, "v0");
  EXPECT_EQ(records[0].caption, plm_generate("--video", videos[0], prompt));
  EXPECT_EQ(records[0].frames, 4);
  EXPECT_EQ(records[2].caption, plm_generate("--video", videos[1], custom));
  EXPECT_EQ(records[3].caption, plm_generate("--image", image, prompt));
  EXPECT_EQ(records[5].caption, plm_generate("--video", videos[2], prompt));
  EXPECT_NE(records[0].caption, records[5].caption) << "distinct videos, distinct captions";
  for (int i : {1, 4}) {
    ASSERT_FALSE(records[i].ok()) << lines[i];
    EXPECT_THAT(*records[i].error, HasSubstr(records[i].path));
  }
  EXPECT_THAT(lines[0], ::testing::MatchesRegex("\\{\"id\":\"v0\",\"path\":\"[^\"]+\",\"caption\":\".*\",\"frames\":4,"
                                                "\"prompt_tokens\":[0-9]+,\"completion_tokens\":16,\"seconds\":[0-9.]+\\}"));

  // A rerun finds everything finished; --merge alone rebuilds the same output.
  const Result again = run_shell(caption_command(dir / "list.jsonl", out, absl::StrCat("--prompt '", prompt, "'")));
  ASSERT_EQ(again.code, 0) << again.output;
  EXPECT_THAT(again.output, HasSubstr("6 finished by an earlier run, 0 to caption"));
  EXPECT_EQ(read_lines(out), lines);
  std::filesystem::remove(out);
  const Result merged = run_shell(absl::StrCat(PLM_BINARY, " caption --merge --inputs ", (dir / "list.jsonl").string(),
                                               " --out ", out.string()));
  ASSERT_EQ(merged.code, 0) << merged.output;
  EXPECT_EQ(read_lines(out), lines);
}

// The records of an output file, in its order.
std::vector<CaptionRecord> records_of(const std::filesystem::path& out) {
  std::vector<CaptionRecord> records;
  for (const std::string& line : read_lines(out)) {
    absl::StatusOr<CaptionRecord> r = parse_record_line(line);
    EXPECT_TRUE(r.ok()) << line;
    if (r.ok()) records.push_back(*std::move(r));
  }
  return records;
}

TEST(PlmCaption, SystemTurnIsPlmGeneratesSystem) {
  const auto dir = plm::testing::fresh_temp_dir();
  const std::vector<std::filesystem::path> videos = testing::write_test_videos(dir / "media", 1);
  const std::filesystem::path image = testing::copy_test_image(dir / "media");
  write_lines(dir / "list.txt", path_lines({videos[0], image}));
  const std::string prompt = "Describe the shape.";
  const std::string system = "Answer in a few words.";
  const std::string prompt_flag = absl::StrCat("--prompt '", prompt, "'");
  const Result with = run_shell(
      caption_command(dir / "list.txt", dir / "system.jsonl", absl::StrCat(prompt_flag, " --system '", system, "'")));
  ASSERT_EQ(with.code, 0) << with.output;
  const Result without = run_shell(caption_command(dir / "list.txt", dir / "default.jsonl", prompt_flag));
  ASSERT_EQ(without.code, 0) << without.output;

  const std::vector<CaptionRecord> records = records_of(dir / "system.jsonl");
  const std::vector<CaptionRecord> defaults = records_of(dir / "default.jsonl");
  ASSERT_EQ(records.size(), 2u);
  ASSERT_EQ(defaults.size(), 2u);
  EXPECT_EQ(records[0].caption, plm_generate("--video", videos[0], prompt, system));
  EXPECT_EQ(records[1].caption, plm_generate("--image", image, prompt, system));
  // The short system turn replaces PLM's default sentence (about 40 tokens).
  EXPECT_LT(records[0].prompt_tokens, defaults[0].prompt_tokens);
  EXPECT_LT(records[1].prompt_tokens, defaults[1].prompt_tokens);
}

// Counts the complete lines of a file.
int64_t num_lines(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  int64_t n = 0;
  for (std::string line; std::getline(in, line);) n += in.eof() ? 0 : 1;
  return n;
}

TEST(PlmCaption, KilledHalfWayThenRestartedGivesTheCompleteOutputWithoutDuplicates) {
  constexpr int kVideos = 20;
  const auto dir = plm::testing::fresh_temp_dir();
  write_lines(dir / "list.txt", path_lines(testing::write_test_videos(dir / "media", kVideos)));
  // One item at a time, so that the kill lands between items with some done and some not.
  const std::string slow = "--max-num-seqs 1 --prefetch 0 --decode-threads 1";
  const Result reference = run_shell(caption_command(dir / "list.txt", dir / "reference.jsonl", slow));
  ASSERT_EQ(reference.code, 0) << reference.output;

  const std::filesystem::path out = dir / "captions.jsonl", part = part_path(out, 0);
  std::vector<std::string> args = {PLM_BINARY, "caption", "--model", model(), "--inputs", (dir / "list.txt").string(),
                                   "--out", out.string(), "--num-frames", "4", "--max-new-tokens", "16",
                                   "--kv-cache-bytes", "32M", "--max-num-seqs", "1", "--prefetch", "0",
                                   "--decode-threads", "1"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, STDOUT_FILENO);
    ::dup2(null, STDERR_FILENO);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  int64_t done_before_kill = 0;
  for (int i = 0; i < 6000 && done_before_kill < kVideos / 4; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    done_before_kill = num_lines(part);
  }
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the job ended before it was killed";
  const int64_t done_at_kill = num_lines(part);
  ASSERT_GE(done_at_kill, kVideos / 4);
  ASSERT_LT(done_at_kill, kVideos) << "the job finished before the kill";
  EXPECT_FALSE(std::filesystem::exists(out)) << "no merged output before the job is done";
  // As if the kill had landed in the middle of a write.
  std::ofstream(part, std::ios::binary | std::ios::app) << "{\"id\":\"" << (dir / "media/video_19.mkv").string() << "\",\"pa";

  const Result resumed = run_shell(caption_command(dir / "list.txt", out, slow));
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  EXPECT_THAT(resumed.output, HasSubstr(absl::StrCat(done_at_kill, " finished by an earlier run, ",
                                                     kVideos - done_at_kill, " to caption")));
  EXPECT_EQ(untimed(out), untimed(dir / "reference.jsonl"));
  EXPECT_EQ(read_lines(out).size(), static_cast<size_t>(kVideos));
  absl::flat_hash_set<std::string> ids;
  const std::vector<std::string> part_lines = read_lines(part);
  EXPECT_EQ(part_lines.size(), static_cast<size_t>(kVideos)) << "the torn line is gone, no item twice";
  for (const std::string& line : part_lines) {
    absl::StatusOr<CaptionRecord> r = parse_record_line(line);
    ASSERT_TRUE(r.ok()) << line;
    EXPECT_TRUE(ids.insert(r->id).second) << "duplicate " << r->id;
  }
}

TEST(PlmCaption, TwoRanksGiveTheSameCaptionsAsOne) {
  const auto dir = plm::testing::fresh_temp_dir();
  write_lines(dir / "list.txt", path_lines(testing::write_test_videos(dir / "media", 6)));
  const Result one = run_shell(caption_command(dir / "list.txt", dir / "one.jsonl"));
  ASSERT_EQ(one.code, 0) << one.output;
  const Result two = run_shell(absl::StrCat(kMpiEnv, " ", PLM_MPIEXEC, " -n 2 --oversubscribe ",
                                            caption_command(dir / "list.txt", dir / "two.jsonl")));
  ASSERT_EQ(two.code, 0) << two.output;
  EXPECT_THAT(two.output, HasSubstr("to caption on 2 replica(s)"));
  EXPECT_THAT(two.output, HasSubstr("6 lines (6 captions, 0 errors) from 2 part(s)"));
  EXPECT_EQ(untimed(dir / "two.jsonl"), untimed(dir / "one.jsonl"));
  EXPECT_EQ(read_lines(part_path(dir / "two.jsonl", 0)).size(), 3u);
  EXPECT_EQ(read_lines(part_path(dir / "two.jsonl", 1)).size(), 3u);
}

// Shards run separately (the tasks of a Slurm array): each writes its own parts and no output; --merge exits 3,
// writing nothing, until every shard is done, then gives the one-process output. Bad --shard values are refused.
TEST(PlmCaption, ShardsMergeToTheOneProcessOutput) {
  const auto dir = plm::testing::fresh_temp_dir();
  write_lines(dir / "list.txt", path_lines(testing::write_test_videos(dir / "media", 5)));
  const Result one = run_shell(caption_command(dir / "list.txt", dir / "one.jsonl"));
  ASSERT_EQ(one.code, 0) << one.output;
  const std::string merge =
      absl::StrCat(PLM_BINARY, " caption --merge --inputs ", (dir / "list.txt").string(), " --out ", (dir / "out.jsonl").string());

  const Result first = run_shell(caption_command(dir / "list.txt", dir / "out.jsonl", "--shard 1/2"));
  ASSERT_EQ(first.code, 0) << first.output;
  EXPECT_THAT(first.output, HasSubstr("shard 1/2 done"));
  EXPECT_FALSE(std::filesystem::exists(dir / "out.jsonl"));
  EXPECT_EQ(read_lines(part_path(dir / "out.jsonl", 0, 1)).size(), 2u);
  const Result early = run_shell(merge);
  EXPECT_EQ(early.code, 3) << early.output;
  EXPECT_THAT(early.output, HasSubstr("3 of 5 items have no line"));
  EXPECT_FALSE(std::filesystem::exists(dir / "out.jsonl"));

  const Result second = run_shell(caption_command(dir / "list.txt", dir / "out.jsonl", "--shard 0/2"));
  ASSERT_EQ(second.code, 0) << second.output;
  EXPECT_EQ(read_lines(part_path(dir / "out.jsonl", 0, 0)).size(), 3u);
  const Result merged = run_shell(merge);
  ASSERT_EQ(merged.code, 0) << merged.output;
  EXPECT_EQ(untimed(dir / "out.jsonl"), untimed(dir / "one.jsonl"));

  for (const char* bad : {"2/2", "a/b", "1", "-1/2", "0/0"}) {
    const Result r = run_shell(caption_command(dir / "list.txt", dir / "bad.jsonl", absl::StrCat("--shard ", bad)));
    EXPECT_EQ(r.code, 1) << bad;
    EXPECT_THAT(r.output, HasSubstr(absl::StrCat("--shard ", bad, ": expected S/N with 0 <= S < N"))) << r.output;
  }
  const Result merge_one_shard = run_shell(merge + " --shard 0/2");
  EXPECT_EQ(merge_one_shard.code, 1);
  EXPECT_THAT(merge_one_shard.output, HasSubstr("drop --shard"));
}

// A replica of two TP ranks (rank 0 drives the engine, rank 1 follows its steps), and two such replicas: the
// captions of one rank. A world that does not divide by --tp is refused.
TEST(PlmCaption, TensorParallelReplicasGiveTheSameCaptionsAsOneRank) {
  const auto dir = plm::testing::fresh_temp_dir();
  write_lines(dir / "list.txt", path_lines(testing::write_test_videos(dir / "media", 4)));
  const Result one = run_shell(caption_command(dir / "list.txt", dir / "one.jsonl"));
  ASSERT_EQ(one.code, 0) << one.output;
  for (int ranks : {2, 4}) {
    const std::filesystem::path out = dir / absl::StrCat("tp2_np", ranks, ".jsonl");
    const Result tp = run_shell(absl::StrCat(kMpiEnv, " ", PLM_MPIEXEC, " -n ", ranks, " --oversubscribe ",
                                             caption_command(dir / "list.txt", out, "--tp 2")));
    ASSERT_EQ(tp.code, 0) << tp.output;
    EXPECT_THAT(tp.output, HasSubstr(absl::StrCat("to caption on ", ranks / 2, " replica(s)")));
    EXPECT_EQ(untimed(out), untimed(dir / "one.jsonl")) << ranks << " ranks";
  }
  const Result odd = run_shell(caption_command(dir / "list.txt", dir / "out.jsonl", "--tp 2"));
  EXPECT_EQ(odd.code, 1);
  EXPECT_THAT(odd.output, HasSubstr("world size 1 is not divisible by tp(2)"));
}

TEST(PlmCaption, EmbeddingsAreReadableByH5py) {
  // Debian's python3-h5py (scripts/install-deps.sh) is in the system Python, which a pyenv shim may hide.
  std::string python;
  for (const char* candidate : {"/usr/bin/python3", "python3"}) {
    if (run_shell(absl::StrCat(candidate, " -c 'import h5py'")).code == 0) {
      python = candidate;
      break;
    }
  }
  if (python.empty()) GTEST_SKIP() << "no python3 with h5py (Debian: python3-h5py)";
  const auto dir = plm::testing::fresh_temp_dir();
  const std::vector<std::filesystem::path> videos = testing::write_test_videos(dir / "media", 3);
  const testing::BadInputs bad = testing::write_bad_inputs(dir / "media");
  write_lines(dir / "list.txt", {videos[0].string(), bad.corrupt.string(), videos[1].string(), videos[2].string()});
  const Result r = run_shell(caption_command(dir / "list.txt", dir / "out.jsonl",
                                             absl::StrCat("--save-embeddings ", (dir / "emb.h5").string())));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("emb.h5: 3 embeddings"));
  const Result py = run_shell(absl::StrCat(
      python, " -c \"import h5py, json; f = h5py.File('", (dir / "emb.h5").string(), "', 'r'); "
      "ids = [i.decode() for i in f['ids'][:]]; e = f['embeddings']; "
      "print(len(ids), e.shape, e.dtype, e.compression, e.chunks, json.loads(f.attrs['plm_caption'])['dim']); "
      "print('|'.join(ids))\""));
  ASSERT_EQ(py.code, 0) << py.output;
  EXPECT_THAT(py.output, HasSubstr("3 (3, 32) float32 gzip (64, 32) 32"));
  EXPECT_THAT(py.output, HasSubstr(absl::StrJoin(std::vector<std::string>{videos[0].string(), videos[1].string(),
                                                                          videos[2].string()}, "|")));
}

}  // namespace
}  // namespace plm::caption
