// `plm serve` as a process on the tiny cls_tied model and a free port: a chat request with a data: image (and a
// video under --media-root) returns what `plm generate` prints for the same input, streaming returns the same
// text, concurrent clients each get their solo text, bad requests get their statuses while the server stays up,
// the API key is enforced, `plm bench serve` measures it, SIGTERM lets the request in flight finish before
// the process exits 0, and `mpirun -n 2 plm serve --tp 2` replies as one rank.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <optional>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "serve/http/http_client.h"
#include "tests/core/test_temp_dir.h"
#include "tests/serve/serve_fixture.h"

namespace plm::serve::http {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;
using serve::testing::inputs_dir;
using serve::testing::models_dir;

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The port and pid of a front's ready line: a co-located server's, or disaggregated decoder replica `replica`'s.
std::optional<std::pair<uint16_t, int>> ready_front(const std::string& log, int replica) {
  const std::regex ready("ready on http://[0-9.]+:([0-9]+) \\(pid ([0-9]+),([^\n]*)");
  const std::string replica_text = "decoder replica " + std::to_string(replica) + " of";
  for (auto it = std::sregex_iterator(log.begin(), log.end(), ready); it != std::sregex_iterator(); ++it) {
    const std::string rest = (*it)[3];
    if (rest.find("decoder replica") == std::string::npos || rest.find(replica_text) != std::string::npos) {
      return std::make_pair(static_cast<uint16_t>(std::stoi((*it)[1])), std::stoi((*it)[2]));
    }
  }
  return std::nullopt;
}

// A `plm serve` child process, its output in a file, killed at the end if still running.
class ServeProcess {
 public:
  // launcher: a command that runs plm (mpirun ...), or none. Ready once the server (under --disaggregate: decoder
  // replica 0, rank 0) prints its ready line.
  explicit ServeProcess(const std::vector<std::string>& extra_args, std::vector<std::string> launcher = {},
                        const std::filesystem::path& model = models_dir() / "cls_tied") {
    log_ = plm::testing::fresh_temp_dir("serve") / "serve.log";
    std::vector<std::string> args = std::move(launcher);
    const std::vector<std::string> serve = {PLM_BINARY, "serve", "--model", model.string(),
                                            "--port", "0", "--media-root", inputs_dir().string(),
                                            "--kv-cache-bytes", "32M", "--max-num-seqs", "16",
                                            "--max-batch-tokens", "256", "--max-model-len", "2048"};
    args.insert(args.end(), serve.begin(), serve.end());
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int out = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    PLM_CHECK(out >= 0) << log_;
    pid_ = ::fork();
    PLM_CHECK(pid_ >= 0) << "fork failed";
    if (pid_ == 0) {
      // The server dies with the test process, even when a failed check aborts it.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::dup2(out, STDOUT_FILENO);
      ::dup2(out, STDERR_FILENO);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(out);
    for (int i = 0; i < 1200 && port_ == 0; ++i) {
      if (const auto front = ready_front(read_file(log_), 0)) std::tie(port_, server_pid_) = *front;
      if (port_ == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    PLM_CHECK(port_ != 0) << "plm serve did not get ready: " << read_file(log_);
  }
  ~ServeProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  std::unique_ptr<HttpClient> client() {
    absl::StatusOr<std::unique_ptr<HttpClient>> c = HttpClient::connect("127.0.0.1", port_, 120);
    PLM_CHECK(c.ok()) << c.status().message();
    return std::move(*c);
  }
  HttpResponse post(const std::string& route, const std::string& body, const Headers& headers = {}) {
    return post_at(port_, route, body, headers);
  }
  // To another replica's server of the same job.
  static HttpResponse post_at(uint16_t port, const std::string& route, const std::string& body, const Headers& headers = {}) {
    absl::StatusOr<std::unique_ptr<HttpClient>> c = HttpClient::connect("127.0.0.1", port, 120);
    PLM_CHECK(c.ok()) << c.status().message();
    absl::StatusOr<HttpResponse> r = (*c)->request("POST", route, body, headers);
    PLM_CHECK(r.ok()) << r.status().message();
    return *r;
  }
  // Sends SIGTERM (to the server process: under mpirun, rank 0, as mpirun would abort the job on its own
  // SIGTERM) and returns the exit status (-1 if it did not exit within the timeout).
  int terminate(double timeout_s = 60) {
    ::kill(server_pid_, SIGTERM);
    return wait_exit(timeout_s);
  }
  // The exit status once the process (mpirun under a launcher) has exited; -1 if not within the timeout.
  int wait_exit(double timeout_s) {
    for (int i = 0; i < timeout_s * 100; ++i) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }
  std::string log() const { return read_file(log_); }
  uint16_t port() const { return port_; }

 private:
  std::filesystem::path log_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  int server_pid_ = -1;  // the ready line's: under a launcher, rank 0
};

// What `plm generate ARGS --max-new-tokens N` prints, without the final newline.
std::string plm_generate(const std::vector<std::string>& args, int max_new_tokens) {
  std::string command = std::string(PLM_BINARY) + " generate --model " + (models_dir() / "cls_tied").string();
  for (const std::string& a : args) command += " '" + a + "'";
  command += " --max-new-tokens " + std::to_string(max_new_tokens);
  FILE* pipe = ::popen(command.c_str(), "r");
  PLM_CHECK(pipe != nullptr);
  std::string out;
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0;) out.append(buffer, n);
  PLM_CHECK(::pclose(pipe) == 0) << command;
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

json chat(const std::vector<json>& media, const std::string& text, int max_tokens) {
  json content = json::array();
  for (const json& m : media) content.push_back(m);
  content.push_back({{"type", "text"}, {"text", text}});
  return {{"model", "cls_tied"},
          {"messages", json::array({{{"role", "user"}, {"content", content}}})},
          {"max_tokens", max_tokens},
          {"temperature", 0}};
}

json image_part(const std::string& url) { return {{"type", "image_url"}, {"image_url", {{"url", url}}}}; }
json video_part(const std::string& url) { return {{"type", "video_url"}, {"video_url", {{"url", url}}}}; }

std::string content_of(const HttpResponse& r) {
  EXPECT_EQ(r.status, 200) << r.body;
  if (r.status != 200) return "";
  return json::parse(r.body)["choices"][0]["message"]["content"].get<std::string>();
}

// The streamed text of a chat request, and whether it ended with [DONE].
std::pair<std::string, bool> stream_text(ServeProcess& server, json body) {
  body["stream"] = true;
  std::string text;
  bool done = false;
  const absl::StatusOr<HttpResponse> r = server.client()->stream("/v1/chat/completions", body.dump(), {},
                                                                 [&](std::string_view data) {
                                                                   if (data == "[DONE]") {
                                                                     done = true;
                                                                   } else {
                                                                     const json chunk = json::parse(data);
                                                                     if (!chunk["choices"].empty()) {
                                                                       text += chunk["choices"][0]["delta"].value("content", "");
                                                                     }
                                                                   }
                                                                   return true;
                                                                 });
  EXPECT_TRUE(r.ok()) << r.status();
  return {text, done};
}

TEST(PlmServe, ImageAndVideoRepliesEqualPlmGenerateAndStreamTheSame) {
  ServeProcess server({});
  const std::string image = (inputs_dir() / "image_150x100.png").string();
  const std::string expected_image = plm_generate({"--image", image, "--prompt", "Describe this image."}, 24);
  const json image_request = chat({image_part(serve::testing::data_url(image, "image/png"))}, "Describe this image.", 24);
  EXPECT_EQ(content_of(server.post("/v1/chat/completions", image_request.dump())), expected_image);
  const auto [streamed, done] = stream_text(server, image_request);
  EXPECT_EQ(streamed, expected_image);
  EXPECT_TRUE(done);

  const std::string expected_video = plm_generate(
      {"--video", (inputs_dir() / "video_64x48_4f.mp4").string(), "--prompt", "What is happening in this video?"}, 24);
  const json video_request = chat({video_part("video_64x48_4f.mp4")}, "What is happening in this video?", 24);
  EXPECT_EQ(content_of(server.post("/v1/chat/completions", video_request.dump())), expected_video);
  // The same video again: the prompt's KV blocks from the prefix cache (the frames never looked up), the same text.
  const HttpResponse again = server.post("/v1/chat/completions", video_request.dump());
  EXPECT_EQ(content_of(again), expected_video);
  const json usage = json::parse(again.body)["usage"];
  const int64_t prompt_tokens = usage["prompt_tokens"];
  EXPECT_EQ(usage["prompt_tokens_details"]["cached_tokens"], (prompt_tokens - 1) / 16 * 16);
  EXPECT_EQ(usage["media_items"]["cached"], 4);
  EXPECT_EQ(usage["media_items"]["encoded"], 0);
  absl::StatusOr<HttpResponse> metrics = server.client()->request("GET", "/metrics");
  ASSERT_TRUE(metrics.ok());
  // Encoded once each: the image's 5 tiles and the video's 4 frames.
  EXPECT_THAT(metrics->body, HasSubstr("plm_vision_items_encoded_total 9"));
}

// 16 requests: text, a data: image, a video under --media-root, of different lengths.
std::vector<json> mixed_requests() {
  const std::string image_url = serve::testing::data_url(inputs_dir() / "image_150x100.png", "image/png");
  std::vector<json> requests;
  for (int i = 0; i < 16; ++i) {
    std::vector<json> media;
    if (i % 3 == 1) media.push_back(image_part(image_url));
    if (i % 4 == 2) media.push_back(video_part("video_64x48_4f.mp4"));
    requests.push_back(chat(media, "Request number " + std::to_string(i % 5) + ": describe.", 4 + (i * 5) % 17));
  }
  return requests;
}

// The replies to `requests` sent one after the other, then all at once: the same texts.
std::vector<std::string> solo_and_concurrent_replies(ServeProcess& server, const std::vector<json>& requests) {
  std::vector<std::string> solo;
  for (const json& r : requests) solo.push_back(content_of(server.post("/v1/chat/completions", r.dump())));
  std::vector<std::string> together(requests.size());
  std::vector<std::thread> clients;
  for (size_t i = 0; i < requests.size(); ++i) {
    clients.emplace_back([&, i] { together[i] = content_of(server.post("/v1/chat/completions", requests[i].dump())); });
  }
  for (std::thread& t : clients) t.join();
  for (size_t i = 0; i < requests.size(); ++i) EXPECT_EQ(together[i], solo[i]) << "request " << i;
  return solo;
}

// Tests that compare layouts (TP, disaggregated pools) reply by reply run the f32 oracle: bf16 (the CPU default
// where AVX512-BF16 exists) sums in an order that depends on the layout and the threads per rank, which moves
// near-tied tokens of the tiny fixture.
const std::vector<std::string> kOracle = {"--dtype", "f32"};

TEST(PlmServe, ConcurrentClientsEachGetTheirSoloText) {
  ServeProcess server({});
  solo_and_concurrent_replies(server, mixed_requests());
}

// `mpirun -n 2 plm serve --tp 2`: rank 0 serves and rank 1 steps with it; every reply (solo and concurrent,
// image and video included) equals the single-rank server's, and SIGTERM drains both ranks to exit 0.
TEST(PlmServe, TensorParallelServerRepliesAsOneRank) {
  const std::vector<json> requests = mixed_requests();
  std::vector<std::string> one_rank;
  {
    ServeProcess server(kOracle);
    one_rank = solo_and_concurrent_replies(server, requests);
  }
  ServeProcess server({"--tp", "2", "--dtype", "f32"},
                      {PLM_MPIEXEC, "--allow-run-as-root", "--oversubscribe", "-n", "2", "-x", "OMP_NUM_THREADS=1"});
  EXPECT_THAT(server.log(), HasSubstr("x tp 2"));
  const std::vector<std::string> two_ranks = solo_and_concurrent_replies(server, requests);
  for (size_t i = 0; i < requests.size(); ++i) EXPECT_EQ(two_ranks[i], one_rank[i]) << "request " << i;
  EXPECT_EQ(server.terminate(), 0) << server.log();
}

// The value of the unlabelled Prometheus sample `name` in a /metrics body (-1 when absent).
double metric_value(const std::string& body, const std::string& name) {
  std::smatch m;
  if (!std::regex_search(body, m, std::regex("\n" + name + " ([0-9.e+-]+)\n"))) return -1;
  return std::stod(m[1]);
}

// `mpirun -n N plm serve --disaggregate ...`: every reply (solo and concurrent: image, video and text-only)
// equals the co-located single-rank server's, the embeddings crossed ranks, and SIGTERM drains every rank to 0.
void expect_disaggregated_replies_as_colocated(int num_ranks, const std::vector<std::string>& pool_flags) {
  const std::vector<json> requests = mixed_requests();
  std::vector<std::string> colocated;
  {
    ServeProcess server(kOracle);
    colocated = solo_and_concurrent_replies(server, requests);
  }
  std::vector<std::string> flags = {"--disaggregate", "--pool-stats-interval", "1", "--dtype", "f32"};
  flags.insert(flags.end(), pool_flags.begin(), pool_flags.end());
  ServeProcess server(flags, {PLM_MPIEXEC, "--allow-run-as-root", "--oversubscribe", "-n", std::to_string(num_ranks), "-x",
                              "OMP_NUM_THREADS=1"});
  EXPECT_THAT(server.log(), HasSubstr("disaggregated: 2 encoder ranks"));
  const std::vector<std::string> disaggregated = solo_and_concurrent_replies(server, requests);
  for (size_t i = 0; i < requests.size(); ++i) EXPECT_EQ(disaggregated[i], colocated[i]) << "request " << i;
  absl::StatusOr<HttpResponse> metrics = server.client()->request("GET", "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_GT(metric_value(metrics->body, "plm_disagg_embedding_bytes_total"), 0) << metrics->body;
  // The decoder ranks hold no vision tower: the engine encoded nothing itself.
  EXPECT_EQ(metric_value(metrics->body, "plm_vision_items_encoded_total"), 0);
  EXPECT_THAT(metrics->body, HasSubstr("plm_disagg_suggested_ranks{pool=\"encoder\"}"));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // one pool report
  EXPECT_THAT(server.log(), HasSubstr("suggested split"));
  EXPECT_EQ(server.terminate(), 0) << server.log();
}

TEST(PlmServe, DisaggregatedServerRepliesAsColocated_np3) {
  expect_disaggregated_replies_as_colocated(3, {"--encoder-ranks", "2", "--decoder-ranks", "1"});
}

// Two encoder ranks and one decoder replica of tp 2.
TEST(PlmServe, DisaggregatedServerRepliesAsColocated_np4) {
  expect_disaggregated_replies_as_colocated(4, {"--encoder-ranks", "2", "--decoder-ranks", "2", "--decoder-tp", "2"});
}

// Without --enable-recovery a dead encoder rank ends the whole job promptly with mpirun's message (Open MPI aborts
// a job whose rank dies), and the log said so at start: no hang, whatever was in flight.
TEST(PlmServe, DisaggregatedJobEndsWhenAnEncoderRankDies_np3) {
  ServeProcess server({"--disaggregate", "--encoder-ranks", "2", "--decoder-ranks", "1"},
                      {PLM_MPIEXEC, "--allow-run-as-root", "--oversubscribe", "-n", "3", "-x", "OMP_NUM_THREADS=1"});
  std::smatch m;
  const std::string log = server.log();
  ASSERT_TRUE(std::regex_search(log, m, std::regex("is encoder 1 of 2 \\(pid ([0-9]+)\\)"))) << log;
  EXPECT_EQ(content_of(server.post("/v1/chat/completions", mixed_requests()[1].dump())).empty(), false);
  ::kill(std::stoi(m[1]), SIGKILL);
  const int status = server.wait_exit(60);
  EXPECT_NE(status, -1) << "the job did not end within 60 s: " << server.log();
  EXPECT_NE(status, 0);
  EXPECT_THAT(server.log(), HasSubstr("exited on signal 9"));
  EXPECT_THAT(server.log(), HasSubstr("a rank that dies ends the whole job (mpirun aborts it)"));
}

std::vector<std::string> mpirun(int num_ranks) {
  return {PLM_MPIEXEC, "--allow-run-as-root", "--oversubscribe", "-n", std::to_string(num_ranks), "-x", "OMP_NUM_THREADS=1"};
}

// Under `mpirun --enable-recovery` (serve/README.md, "Failure"): ranks that die are noticed by heartbeats
// (--peer-timeout 5 s here: shorter ones saw a live rank taken for dead once on this loaded machine), and what
// they held fails with 503 while the rest of the job serves on.
std::vector<std::string> recovering_launcher(int num_ranks) {
  std::vector<std::string> launcher = mpirun(num_ranks);
  launcher.insert(launcher.begin() + 3, "--enable-recovery");
  return launcher;
}

std::vector<std::string> disaggregated_flags(const std::vector<std::string>& pools) {
  std::vector<std::string> flags = {"--disaggregate", "--peer-timeout", "5", "--dtype", "f32"};
  flags.insert(flags.end(), pools.begin(), pools.end());
  return flags;
}

// The co-located single-rank server's reply to each request.
std::vector<std::string> colocated_replies(const std::vector<json>& requests) {
  ServeProcess server(kOracle);
  std::vector<std::string> replies;
  for (const json& r : requests) replies.push_back(content_of(server.post("/v1/chat/completions", r.dump())));
  return replies;
}

// Waits for `pattern` (one capture group) in the log; its first match.
std::string wait_for_log(const ServeProcess& server, const std::string& pattern, double timeout_s = 60) {
  const std::regex re(pattern);
  for (int i = 0; i < timeout_s * 20; ++i) {
    std::smatch m;
    const std::string log = server.log();
    if (std::regex_search(log, m, re)) return m[1];
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "no match for " << pattern << " within " << timeout_s << " s: " << server.log();
  return "";
}

int encoder_pid(const ServeProcess& server, int index, int count) {
  return std::stoi(wait_for_log(server, absl::StrCat("is encoder ", index, " of ", count, " \\(pid ([0-9]+)\\)")));
}

// A front of a disaggregated job, from its ready line.
struct Front {
  uint16_t port = 0;
  int pid = 0;
};
Front front(const ServeProcess& server, int replica, int num_replicas) {
  const std::string line = wait_for_log(
      server, absl::StrCat("(ready on http://[0-9.]+:[0-9]+ \\(pid [0-9]+, .* decoder replica ", replica, " of ", num_replicas, ")"));
  std::smatch m;
  PLM_CHECK(std::regex_search(line, m, std::regex(":([0-9]+) \\(pid ([0-9]+),"))) << line;
  return {static_cast<uint16_t>(std::stoi(m[1])), std::stoi(m[2])};
}

// `image_request` posted `n` times at once while the encoder `victim` is stopped (so it holds whatever it is sent:
// the least-loaded routing sends it a share), then `victim` is killed; the responses.
std::vector<HttpResponse> post_while_killing(ServeProcess& server, const json& image_request, int n, int victim) {
  ::kill(victim, SIGSTOP);
  std::vector<HttpResponse> responses(n);
  std::vector<std::thread> clients;
  for (int i = 0; i < n; ++i) {
    clients.emplace_back([&, i] { responses[i] = server.post("/v1/chat/completions", image_request.dump()); });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  ::kill(victim, SIGKILL);
  for (std::thread& t : clients) t.join();
  return responses;
}

// An encoder rank killed while it holds requests (mpirun -n 3: 2 encoders, 1 decoder): those get 503 naming it,
// the others and every later image, video and text request get the co-located server's replies from the encoder
// left, /metrics shows the dead one, and SIGTERM still drains the job to exit 0.
TEST(PlmServe, DisaggregatedEncoderDeathFailsItsRequestsWith503AndTheJobServesOn_np3) {
  const std::vector<json> requests = mixed_requests();
  const std::vector<std::string> colocated = colocated_replies(requests);
  ServeProcess server(disaggregated_flags({"--encoder-ranks", "2", "--decoder-ranks", "1"}), recovering_launcher(3));
  EXPECT_THAT(server.log(), HasSubstr("a rank that dies is survived (mpirun --enable-recovery)"));
  const int victim = encoder_pid(server, 1, 2);  // rank 2
  const std::vector<HttpResponse> held = post_while_killing(server, requests[1], 6, victim);
  int failed = 0;
  for (const HttpResponse& r : held) {
    if (r.status == 503) {
      ++failed;
      EXPECT_THAT(r.body, HasSubstr("encoder rank 2 stopped answering")) << r.body;
    } else {
      EXPECT_EQ(content_of(r), colocated[1]);
    }
  }
  EXPECT_GE(failed, 1) << "the stopped encoder was sent nothing";
  EXPECT_LT(failed, static_cast<int>(held.size())) << "every request went to the stopped encoder";
  wait_for_log(server, "(front rank 0: encoder rank 2 stopped answering)");
  const std::vector<std::string> after = solo_and_concurrent_replies(server, requests);
  for (size_t i = 0; i < requests.size(); ++i) EXPECT_EQ(after[i], colocated[i]) << "request " << i;
  absl::StatusOr<HttpResponse> metrics = server.client()->request("GET", "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(metrics->body, HasSubstr("plm_disagg_encoder_alive{rank=\"1\"} 1"));
  EXPECT_THAT(metrics->body, HasSubstr("plm_disagg_encoder_alive{rank=\"2\"} 0"));
  EXPECT_EQ(metric_value(metrics->body, "plm_disagg_requests_failed_total"), failed);
  if (HasFailure()) ADD_FAILURE() << "the job's log: " << server.log();
  EXPECT_EQ(server.terminate(), 0) << server.log();
}

// The only encoder killed (mpirun -n 3: 1 encoder, 2 decoder replicas): its requests get 503, and each front
// drains and exits with a message, so the job ends (no hang) and can be restarted whole.
TEST(PlmServe, DisaggregatedJobEndsCleanlyWhenItsOnlyEncoderDies_np3) {
  const std::vector<json> requests = mixed_requests();
  ServeProcess server(disaggregated_flags({"--encoder-ranks", "1", "--decoder-ranks", "2"}), recovering_launcher(3));
  front(server, 1, 2);  // both fronts listen
  const std::vector<HttpResponse> held = post_while_killing(server, requests[1], 2, encoder_pid(server, 0, 1));
  for (const HttpResponse& r : held) {
    EXPECT_EQ(r.status, 503) << r.body;
    EXPECT_THAT(r.body, HasSubstr("encoder rank 2 stopped answering")) << r.body;
  }
  EXPECT_NE(server.wait_exit(60), -1) << "the job did not end within 60 s: " << server.log();
  const std::string log = server.log();
  EXPECT_THAT(log, HasSubstr("plm serve: no encoder rank is left (2 stopped answering): drained and exiting"));
  EXPECT_THAT(log, HasSubstr("front rank 1: encoder rank 2 stopped answering"));  // the other front too
}

// A decoder replica's front killed (mpirun -n 4: 2 encoders, 2 decoder replicas of one rank): its own clients
// lose their connections (nobody is left to answer them), the encoders drop its jobs, the other replica replies
// to image, video and text requests as the co-located server, and SIGTERM to it ends the job.
TEST(PlmServe, DisaggregatedDecoderReplicaDeathLeavesTheOtherServing_np4) {
  const std::vector<json> requests = mixed_requests();
  const std::vector<std::string> colocated = colocated_replies(requests);
  ServeProcess server(disaggregated_flags({"--encoder-ranks", "2", "--decoder-ranks", "2"}), recovering_launcher(4));
  const Front survivor = front(server, 0, 2), victim = front(server, 1, 2);
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&, i] {
      absl::StatusOr<std::unique_ptr<HttpClient>> c = HttpClient::connect("127.0.0.1", victim.port, 60);
      if (c.ok()) (void)(*c)->request("POST", "/v1/chat/completions", requests[i].dump());  // cut off: no status
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ::kill(victim.pid, SIGKILL);
  for (std::thread& t : clients) t.join();
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(content_of(ServeProcess::post_at(survivor.port, "/v1/chat/completions", requests[i].dump())), colocated[i])
        << "request " << i;
  }
  wait_for_log(server, "(encoder rank 2: front rank 1 stopped answering)");
  wait_for_log(server, "(encoder rank 3: front rank 1 stopped answering)");
  for (size_t i = 0; i < requests.size(); i += 3) {  // after the encoders dropped the dead front
    EXPECT_EQ(content_of(ServeProcess::post_at(survivor.port, "/v1/chat/completions", requests[i].dump())), colocated[i])
        << "request " << i;
  }
  ::kill(survivor.pid, SIGTERM);
  EXPECT_EQ(server.wait_exit(60), 0) << server.log();
}

// The only front killed (mpirun -n 3: 2 encoders, 1 decoder): the encoders notice and exit with a message.
TEST(PlmServe, DisaggregatedJobEndsCleanlyWhenItsFrontDies_np3) {
  ServeProcess server(disaggregated_flags({"--encoder-ranks", "2", "--decoder-ranks", "1"}), recovering_launcher(3));
  EXPECT_EQ(content_of(server.post("/v1/chat/completions", mixed_requests()[1].dump())).empty(), false);
  ::kill(front(server, 0, 1).pid, SIGKILL);
  EXPECT_NE(server.wait_exit(60), -1) << "the job did not end within 60 s: " << server.log();
  EXPECT_THAT(server.log(), HasSubstr("encoder rank 1: no front is left (rank 0 stopped answering before saying stop)"));
  EXPECT_THAT(server.log(), HasSubstr("encoder rank 2: no front is left (rank 0 stopped answering before saying stop)"));
}

// The front of a decoder replica of tp 2 killed (mpirun -n 4: 2 encoders, ranks 0-1 one replica): its TP follower
// and the encoders notice and exit with their messages, so the job ends.
TEST(PlmServe, DisaggregatedJobEndsCleanlyWhenTheFrontOfATensorParallelReplicaDies_np4) {
  ServeProcess server(disaggregated_flags({"--encoder-ranks", "2", "--decoder-ranks", "2", "--decoder-tp", "2"}),
                      recovering_launcher(4));
  EXPECT_EQ(content_of(server.post("/v1/chat/completions", mixed_requests()[1].dump())).empty(), false);
  ::kill(front(server, 0, 1).pid, SIGKILL);
  EXPECT_NE(server.wait_exit(60), -1) << "the job did not end within 60 s: " << server.log();
  const std::string log = server.log();
  EXPECT_THAT(log, HasSubstr("rank 1: rank 0 of its decoder replica stopped answering (no heartbeat for 5 s)"));
  EXPECT_THAT(log, HasSubstr("encoder rank 2: no front is left (rank 0 stopped answering before saying stop)"));
  EXPECT_THAT(log, HasSubstr("encoder rank 3: no front is left (rank 0 stopped answering before saying stop)"));
}

// A model whose vision tower outweighs its language model (configs/tiny with 16 vision blocks and 1 decoder layer,
// random weights, the fixtures' tokenizer): image traffic on it asks for more encoders.
std::filesystem::path vision_heavy_model() {
  const std::filesystem::path dir = plm::testing::fresh_temp_dir("vision_heavy") / "vision_heavy";
  const std::string command = std::string(PLM_BINARY) + " bench make-random-model --config " + PLM_SOURCE_DIR +
                              "/configs/tiny --out " + dir.string() + " --vision-layers 16 --text-layers 1 > /dev/null";
  PLM_CHECK(std::system(command.c_str()) == 0) << command;
  for (const char* file : {"chat_template.jinja", "tokenizer.json", "tokenizer_config.json"}) {
    std::filesystem::copy_file(models_dir() / "tokenizer" / file, dir / file);
  }
  return dir;
}

// How rank 0's replies fell around the first role switch, by the order of its log lines: finished before the
// move was announced, while the rank drained / reloaded / rejoined, and after.
struct MovePhases {
  int before = 0, during = 0, after = 0, failed = 0;
};

// Sends `requests` round and round from `num_clients` threads to rank 0 while ranks move between the pools:
// every reply must equal `expected` (the co-located server's). Stops 1 s after the first role switch completed.
MovePhases replies_across_a_move(ServeProcess& server, const std::vector<json>& requests,
                                 const std::vector<std::string>& expected, int num_clients) {
  std::atomic<bool> stop = false;
  std::vector<std::thread> clients;
  for (int c = 0; c < num_clients; ++c) {
    clients.emplace_back([&, c] {
      for (size_t i = static_cast<size_t>(c); !stop; i = (i + 1) % requests.size()) {
        EXPECT_EQ(content_of(server.post("/v1/chat/completions", requests[i].dump())), expected[i]) << "request " << i;
      }
    });
  }
  double switches = 0;
  for (int i = 0; i < 1800 && switches < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const absl::StatusOr<HttpResponse> metrics = server.client()->request("GET", "/metrics");
    if (metrics.ok()) switches = metric_value(metrics->body, "plm_disagg_role_switches_total");
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));
  stop = true;
  for (std::thread& t : clients) t.join();
  EXPECT_GE(switches, 1) << "no role switch within 90 s: " << server.log();
  MovePhases phases;
  std::istringstream log(server.log());
  int phase = 0;  // 0 before, 1 during, 2 after
  for (std::string line; std::getline(log, line);) {
    if (line.find("plm serve: rebalance: the suggested split") != std::string::npos && phase == 0) phase = 1;
    if (line.find("plm serve: rebalance: rank") != std::string::npos && phase == 1) phase = 2;
    if (line.rfind("request id=", 0) != 0) continue;
    if (line.find("status=200") == std::string::npos) ++phases.failed;
    ++(phase == 0 ? phases.before : phase == 1 ? phases.during : phases.after);
  }
  std::printf("replies before the first move %d, during %d, after %d, failed %d\n", phases.before, phases.during,
              phases.after, phases.failed);
  return phases;
}

// `--rebalance` under text-heavy traffic (the tiny model's replies cost far more than its tiles, and the encoder
// cache answers repeats) on 2 encoders : 1 decoder: rank 2 drains as an encoder, loads the language model and
// serves as a second front; rank 0's replies before, during and after equal the co-located server's, and so do the
// new front's. Past the heartbeat timeout after the move, nobody has taken the drained encoder for dead.
TEST(PlmServe, DisaggregatedRebalanceMovesAnEncoderToTheDecoders_np3) {
  const std::vector<json> requests = mixed_requests();
  std::vector<std::string> colocated;
  {
    ServeProcess server(kOracle);
    for (const json& r : requests) colocated.push_back(content_of(server.post("/v1/chat/completions", r.dump())));
  }
  std::vector<std::string> flags = disaggregated_flags({"--encoder-ranks", "2", "--decoder-ranks", "1", "--rebalance",
                                                       "--pool-stats-interval", "0.5", "--rebalance-windows", "2"});
  ServeProcess server(flags, mpirun(3));
  const MovePhases phases = replies_across_a_move(server, requests, colocated, 4);
  std::this_thread::sleep_for(std::chrono::seconds(6));  // past --peer-timeout 5
  EXPECT_GT(phases.before, 0);
  EXPECT_GT(phases.during, 0);  // loading the language model takes a while: rank 0 and encoder 1 go on serving
  EXPECT_GT(phases.after, 0);
  EXPECT_EQ(phases.failed, 0);
  const std::string log = server.log();
  EXPECT_THAT(log, HasSubstr("moving rank 2 to the decoder pool"));
  EXPECT_THAT(log, HasSubstr("rank 2 drained as encoder and freed its weights; moving to the decoder pool"));
  EXPECT_THAT(log, HasSubstr("rank 2 rejoined as decoder"));
  EXPECT_THAT(log, Not(HasSubstr("stopped answering")));
  const absl::StatusOr<HttpResponse> metrics = server.client()->request("GET", "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(metrics->body, HasSubstr("plm_disagg_pool_ranks{pool=\"decoder\"} 2\n"));
  EXPECT_THAT(metrics->body, HasSubstr("plm_disagg_pool_ranks{pool=\"encoder\"} 1\n"));
  EXPECT_EQ(metric_value(metrics->body, "plm_disagg_role_switches_total"), 1);  // 1 : 2 is what text asks for
  EXPECT_EQ(metric_value(metrics->body, "plm_disagg_role_switch_in_progress"), 0);
  // The new front (decoder replica 2, its own port) routes its media to the remaining encoder.
  const std::optional<std::pair<uint16_t, int>> front = ready_front(log, 2);
  ASSERT_TRUE(front.has_value()) << log;
  for (size_t i = 0; i < requests.size(); ++i) {
    absl::StatusOr<std::unique_ptr<HttpClient>> client = HttpClient::connect("127.0.0.1", front->first, 120);
    ASSERT_TRUE(client.ok()) << client.status();
    const absl::StatusOr<HttpResponse> r = (*client)->request("POST", "/v1/chat/completions", requests[i].dump());
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(content_of(*r), colocated[i]) << "request " << i << " on the new front";
  }
  EXPECT_EQ(server.terminate(), 0) << server.log();  // rank 0 ends the job: the new front drains with it
}

// `--rebalance` under image / video traffic with the encoder cache off on a vision-heavy model, 1 encoder : 3
// decoders: decoder rank 2 drains its front, loads the vision tower and joins the encoder pool (rank 1 may follow);
// every reply equals the co-located server's, and rank 0 routes to the new encoder.
TEST(PlmServe, DisaggregatedRebalanceMovesADecoderToTheEncoders_np4) {
  const std::filesystem::path model = vision_heavy_model();
  const std::string image_url = serve::testing::data_url(inputs_dir() / "image_150x100.png", "image/png");
  std::vector<json> requests;
  for (int i = 0; i < 8; ++i) {
    requests.push_back(chat({i % 2 == 0 ? image_part(image_url) : video_part("video_64x48_4f.mp4")},
                            "Picture " + std::to_string(i % 3) + ".", 1 + i % 2));
  }
  const std::vector<std::string> name = {"--served-model-name", "cls_tied"};
  std::vector<std::string> colocated;
  {
    ServeProcess server({"--served-model-name", "cls_tied", "--dtype", "f32"}, {}, model);
    for (const json& r : requests) colocated.push_back(content_of(server.post("/v1/chat/completions", r.dump())));
  }
  std::vector<std::string> flags =
      disaggregated_flags({"--encoder-ranks", "1", "--decoder-ranks", "3", "--rebalance", "--pool-stats-interval",
                           "0.5", "--rebalance-windows", "2", "--encoder-cache-bytes", "0"});
  flags.insert(flags.end(), name.begin(), name.end());
  ServeProcess server(flags, mpirun(4), model);
  const MovePhases phases = replies_across_a_move(server, requests, colocated, 4);
  EXPECT_GT(phases.before, 0);
  EXPECT_GT(phases.after, 0);
  EXPECT_EQ(phases.failed, 0);
  const std::string log = server.log();
  EXPECT_THAT(log, HasSubstr("moving rank 2 to the encoder pool"));
  EXPECT_THAT(log, HasSubstr("rank 2 drained as decoder and freed its weights; moving to the encoder pool"));
  EXPECT_THAT(log, HasSubstr("rank 2 rejoined as encoder"));
  EXPECT_THAT(log, Not(HasSubstr("stopped answering")));  // the front that moved was not taken for dead
  const absl::StatusOr<HttpResponse> metrics = server.client()->request("GET", "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_GE(metric_value(metrics->body, "plm_disagg_role_switches_total"), 1);
  EXPECT_THAT(metrics->body, HasSubstr("plm_disagg_queue_depth{pool=\"encoder\",rank=\"2\"}"));  // rank 0 routes to it
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(content_of(server.post("/v1/chat/completions", requests[i].dump())), colocated[i]) << "request " << i;
  }
  EXPECT_EQ(server.terminate(), 0) << server.log();
}

// What `--rebalance` cannot do is refused up front, by name.
TEST(PlmServe, RebalanceNeedsDisaggregationAndSingleRankDecoderReplicas) {
  const auto run = [](const std::string& flags) {
    const std::string command = std::string(PLM_BINARY) + " serve --model " + (models_dir() / "cls_tied").string() +
                                " --port 0 " + flags + " 2>&1";
    FILE* pipe = ::popen(command.c_str(), "r");
    PLM_CHECK(pipe != nullptr);
    std::string out;
    char buffer[4096];
    for (size_t n; (n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0;) out.append(buffer, n);
    const int status = ::pclose(pipe);
    return std::make_pair(WIFEXITED(status) ? WEXITSTATUS(status) : -1, out);
  };
  const auto [plain_status, plain] = run("--rebalance");
  EXPECT_EQ(plain_status, 1);
  EXPECT_THAT(plain, HasSubstr("--rebalance needs --disaggregate"));
  const auto [tp_status, tp] = run("--disaggregate --encoder-ranks 1 --decoder-ranks 2 --decoder-tp 2 --rebalance");
  EXPECT_EQ(tp_status, 1);
  EXPECT_THAT(tp, HasSubstr("--rebalance moves single-rank replicas only, but --decoder-tp is 2"));
}

TEST(PlmServe, BadRequestsGetTheirStatusAndTheKeyIsRequired) {
  ServeProcess server({"--api-key", "k3y", "--max-body-bytes", "64K", "--max-image-pixels", "10000"});
  const Headers key = {{"Authorization", "Bearer k3y"}};
  const json ok = chat({}, "Hi", 2);
  EXPECT_EQ(server.post("/v1/chat/completions", ok.dump()).status, 401);
  EXPECT_EQ(server.post("/v1/chat/completions", "{", key).status, 400);
  EXPECT_EQ(server.post("/v1/nothing", ok.dump(), key).status, 404);
  json long_reply = ok;
  long_reply["max_tokens"] = 100000;
  const HttpResponse context = server.post("/v1/chat/completions", long_reply.dump(), key);
  EXPECT_EQ(context.status, 422);
  EXPECT_EQ(json::parse(context.body)["error"]["code"], "context_length_exceeded");
  EXPECT_EQ(server.post("/v1/chat/completions", std::string(100 << 10, ' '), key).status, 413);
  EXPECT_EQ(server.post("/v1/chat/completions", chat({image_part("/etc/passwd")}, "x", 2).dump(), key).status, 403);
  const std::string image_url = serve::testing::data_url(inputs_dir() / "image_150x100.png", "image/png");
  const HttpResponse too_large = server.post("/v1/chat/completions", chat({image_part(image_url)}, "x", 2).dump(), key);
  EXPECT_EQ(too_large.status, 422) << too_large.body;
  EXPECT_THAT(too_large.body, HasSubstr("150x100"));  // the image's size and the limit are named
  EXPECT_THAT(too_large.body, HasSubstr("10000"));
  const HttpResponse fine = server.post("/v1/chat/completions", ok.dump(), key);
  EXPECT_EQ(fine.status, 200) << fine.body;
  absl::StatusOr<HttpResponse> health = server.client()->request("GET", "/health");
  ASSERT_TRUE(health.ok());
  EXPECT_EQ(health->status, 200);
}

TEST(PlmServe, BenchServeReportsRatesAndLatencies) {
  ServeProcess server({});
  const std::string command = std::string(PLM_BINARY) + " bench serve --url http://127.0.0.1:" +
                              std::to_string(server.port()) + " --concurrency 2 --requests 4 --max-tokens 4 --image " +
                              (inputs_dir() / "image_150x100.png").string() + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0;) out.append(buffer, n);
  EXPECT_EQ(::pclose(pipe), 0) << out;
  const json line = json::parse(out.substr(out.rfind("\n{") + 1));  // the JSON line ends the output
  EXPECT_EQ(line["ok"], 4) << out;
  EXPECT_GT(line["output_tokens_per_s"].get<double>(), 0);
  EXPECT_GT(line["ttft_ms_p50"].get<double>(), 0);
  EXPECT_TRUE(line["errors"].empty());
}

TEST(PlmServe, SigtermDrainsTheRequestInFlightThenExitsZero) {
  ServeProcess server({});
  json body = {{"prompt", "Count to one thousand:"}, {"max_tokens", 80}, {"temperature", 0}, {"stream", true}};
  std::atomic<bool> first{false};
  bool done = false;
  int events = 0;
  std::thread client([&] {
    const absl::StatusOr<HttpResponse> r = server.client()->stream("/v1/completions", body.dump(), {}, [&](std::string_view data) {
      first = true;
      ++events;
      if (data == "[DONE]") done = true;
      return true;
    });
    EXPECT_TRUE(r.ok()) << r.status();
  });
  while (!first.load()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_EQ(server.terminate(), 0) << server.log();
  client.join();
  EXPECT_TRUE(done);
  EXPECT_GT(events, 10);
  const std::string log = server.log();
  EXPECT_THAT(log, HasSubstr("draining 1 requests in flight"));
  EXPECT_THAT(log, HasSubstr("route=/v1/completions status=200"));
  EXPECT_THAT(log, HasSubstr("plm serve: drained; exiting"));
}

}  // namespace
}  // namespace plm::serve::http
