// The demo's evaluation: held-out examples sent to a running `plm serve` through its OpenAI API
// (/v1/chat/completions, the example's system turn, the picture or clip by path under the server's
// --media-root, the question; greedy), the replies parsed back into attributes (data/synthetic_shapes.h) and
// scored per attribute against the ground truth, next to the chance level of guessing.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/synthetic_dataset.h"

namespace plm::demo {

inline constexpr int kMaxAnswerTokens = 16;  // per reply or caption; the longest answer is 6 tokens

struct Prediction {
  data::SynthExample example;
  std::string reply;
  data::ParsedAttributes parsed;
};

struct ServerEndpoint {
  std::string host;
  uint16_t port = 0;
  std::string model;                 // the served model name
  std::filesystem::path media_root;  // the server's --media-root: media paths are sent relative to it
};

// `num_threads` requests in flight at once (the server batches them). progress(done) after each reply, from
// the calling thread. A failed request is an error naming the example's media file.
absl::StatusOr<std::vector<Prediction>> ask_server(const ServerEndpoint& server,
                                                   const std::vector<data::SynthExample>& examples, int num_threads,
                                                   const std::function<void(int64_t)>& progress = {});

struct AttributeScore {
  std::string attribute;  // shape, colour (all examples), position (images), motion (videos)
  int64_t correct = 0;
  int64_t total = 0;
  double chance = 0;  // 1 / the number of values: what guessing scores
  double accuracy() const { return total > 0 ? static_cast<double>(correct) / total : 0.0; }
};

std::vector<AttributeScore> score(const std::vector<Prediction>& predictions);

// Which of an example's attributes the reply got wrong ("" when none): e.g. "shape, motion".
std::string wrong_attributes(const Prediction& prediction);

}  // namespace plm::demo
