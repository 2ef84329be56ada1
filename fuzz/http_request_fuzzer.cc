// Fuzzes `plm serve`'s HTTP input as bytes off a socket: Beast's request parser with the server's settings
// (ServerConfig's body limit, Beast's default header limit), then what the server reads from each parsed request
// the way its sessions do: the route before '?', the API key check on Authorization, keep-alive, Expect, and the
// body of the two completion routes through parse_api_request. Pipelined requests are parsed one after another,
// as a keep-alive connection does.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>

#include "serve/http/api_key.h"
#include "serve/http/http_server.h"
#include "serve/http/openai_protocol.h"

namespace {

namespace bhttp = boost::beast::http;
using plm::serve::http::ApiKind;

std::string_view sv(boost::beast::string_view s) { return {s.data(), s.size()}; }

void handle(const bhttp::request<bhttp::string_body>& req, const plm::serve::http::ServerConfig& config) {
  static const plm::serve::http::ApiKeyCheck key("fuzz-key");
  const std::string_view target = sv(req.target());
  const std::string_view route = target.substr(0, target.find('?'));
  (void)key.accepts(sv(req[bhttp::field::authorization]));
  (void)req.keep_alive();
  (void)sv(req[bhttp::field::expect]);
  if (route == "/v1/chat/completions" || route == "/v1/completions") {
    const ApiKind kind = route == "/v1/completions" ? ApiKind::kCompletion : ApiKind::kChat;
    (void)plm::serve::http::parse_api_request(kind, req.body(), config.api);
  }
}

// Parses one request from the front of `bytes`; the bytes it used, or 0 when there is no complete request.
size_t parse_one(std::string_view bytes, const plm::serve::http::ServerConfig& config) {
  bhttp::request_parser<bhttp::string_body> parser;
  parser.body_limit(static_cast<uint64_t>(config.max_body_bytes));
  parser.eager(true);
  boost::beast::error_code ec;
  size_t used = 0;
  while (!parser.is_done() && used < bytes.size()) {
    const size_t n = parser.put(boost::asio::buffer(bytes.data() + used, bytes.size() - used), ec);
    used += n;
    if (ec == bhttp::error::need_more) {
      if (n == 0) break;
      ec = {};
      continue;
    }
    if (ec) return 0;
  }
  if (!parser.is_done()) {
    parser.put_eof(ec);
    if (ec || !parser.is_done()) return 0;
  }
  handle(parser.get(), config);
  return used;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const plm::serve::http::ServerConfig config;
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  while (!bytes.empty()) {
    const size_t used = parse_one(bytes, config);
    if (used == 0) break;
    bytes.remove_prefix(used);
  }
  return 0;
}
