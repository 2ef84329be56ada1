// HttpClient: a small blocking HTTP/1.1 client (Boost.Beast) for plm's own tools and tests: `plm bench serve`
// and the server's end-to-end tests. One connection, reused while the server keeps it alive; SSE responses are
// delivered event by event as their chunks arrive. Not thread-safe (one per thread).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace plm::serve::http {

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;                            // whole body; for a stream, what arrived
};

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpUrl {
  std::string host;
  uint16_t port = 80;
};
// "http://host:port[/...]"; https is refused (plm serves plain HTTP behind a proxy).
absl::StatusOr<HttpUrl> parse_http_url(std::string_view url);

class HttpClient {
 public:
  static absl::StatusOr<std::unique_ptr<HttpClient>> connect(const std::string& host, uint16_t port,
                                                             double timeout_s = 300);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  absl::StatusOr<HttpResponse> request(std::string_view method, std::string_view target, std::string_view body = {},
                                       const Headers& headers = {});
  // POSTs `body` and hands each SSE event's data (the text after "data: ") to on_event as it arrives; when
  // on_event returns false the connection is closed at once (a client that goes away).
  absl::StatusOr<HttpResponse> stream(std::string_view target, std::string_view body, const Headers& headers,
                                      const std::function<bool(std::string_view data)>& on_event);
  // Writes raw bytes and returns everything the server sends until it closes the connection.
  absl::StatusOr<std::string> raw(std::string_view bytes);

  struct Impl;

 private:
  explicit HttpClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace plm::serve::http
