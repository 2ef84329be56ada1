// `plm bench serve`: a load generator for an OpenAI-compatible server (`plm serve`, or any other): C client
// threads send R streaming chat completions in all (text, or with an image and/or a video as data: URLs) and
// measure each request's time to first token, time per output token after it, and latency. Prints requests/s,
// output tokens/s, TTFT / TPOT / latency p50 and p99, errors by class (HTTP status or transport), and one JSON line.
#pragma once

#include <string>
#include <vector>

namespace plm::bench {

struct ServeBenchOptions {
  std::string url;           // http://host:port
  int concurrency = 1;       // requests in flight at once
  int requests = 64;         // in all
  std::string image;         // file sent with every request as a data: URL (optional)
  std::string video;         // likewise
  // Request i carries mix[i % n]: "image" (--image alone), "video" (--video alone) or "text" (no media);
  // empty: every request carries --image and --video.
  std::vector<std::string> mix;
  std::string prompt = "Describe what you see in detail.";
  int max_tokens = 64;
  std::string api_key;
  std::string model;         // default: the first model /v1/models lists
  double timeout_s = 600;    // per request
};

// Returns the process exit code (1 when every request failed or the server cannot be reached).
int run_serve_bench(const ServeBenchOptions& options);

}  // namespace plm::bench
