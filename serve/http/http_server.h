// HttpServer: the OpenAI-compatible HTTP/1.1 front end (Boost.Beast over Asio) of one Engine. Its own I/O
// threads parse requests, check the API key, answer health / metrics / models, and turn completions into engine
// requests: preparation runs on the PromptPreparer's pool, generation on the engine thread, and engine updates
// come back to the connection's strand as JSON or SSE chunks. A client that disconnects cancels its request.
// Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health, GET /metrics.
// Statuses: 400 malformed or unsupported, 401 API key, 403 media outside the root, 404 route or model, 405 method,
// 413 body, 422 limits (context, media, messages), 429 queue full (Retry-After), 503 draining, 500 engine error.
// Thread-safe. The engine, preparer and metrics must outlive the server.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "serve/engine.h"
#include "serve/http/openai_protocol.h"
#include "serve/metrics.h"
#include "serve/prompt_preparer.h"

namespace plm::serve::http {

struct ServerConfig {
  std::string host = "127.0.0.1";  // loopback unless asked otherwise
  uint16_t port = 8000;            // 0: any free port (see port())
  int num_io_threads = 2;
  std::string api_key;             // non-empty: /v1/* need "Authorization: Bearer <key>"
  std::string model_name;          // what /v1/models lists and requests must name (when they name one)
  int max_queue = 256;             // requests preparing or waiting for the engine; beyond: 429
  int64_t max_body_bytes = int64_t{64} << 20;
  ApiLimits api;
  int64_t completion_default_max_tokens = 16;  // /v1/completions without max_tokens (OpenAI's default)
  double read_timeout_s = 60;                  // for a request's header and body, and each response write
  std::function<void(const std::string&)> log;  // one line per request; may be empty
};

class HttpServer {
 public:
  // Binds and starts the I/O threads. Errors: an address that cannot be bound (in use, bad host).
  static absl::StatusOr<std::unique_ptr<HttpServer>> start(const ServerConfig& config, Engine& engine,
                                                           PromptPreparer& preparer, Metrics& metrics);
  // Cancels what is still in flight, waits for the engine to let go of it, and stops the I/O threads.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const;
  std::string url() const;  // http://host:port
  // Stops accepting connections; new requests on open ones get 503; wait() returns once the requests in flight
  // have finished and their responses are written.
  void drain();
  // drain() on the first SIGTERM or SIGINT; the second one cancels the requests still in flight.
  void drain_on_signals();
  void wait();
  int num_in_flight() const;

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace plm::serve::http
