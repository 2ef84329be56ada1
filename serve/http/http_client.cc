#include "serve/http/http_client.h"

#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace plm::serve::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

absl::string_view sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }
absl::string_view sv(beast::string_view s) { return absl::string_view(s.data(), s.size()); }

template <typename Body>
void copy_head(const bhttp::response<Body>& res, HttpResponse& out) {
  out.status = static_cast<int>(res.result_int());
  for (const auto& field : res) out.headers[absl::AsciiStrToLower(sv(field.name_string()))] = std::string(sv(field.value()));
}

}  // namespace

struct HttpClient::Impl {
  net::io_context io;
  tcp::socket socket{io};
  beast::flat_buffer buffer;
  std::string host;
  uint16_t port = 0;
  double timeout_s = 300;

  absl::Status open() {
    beast::error_code ec;
    socket = tcp::socket(io);
    tcp::resolver resolver(io);
    const auto endpoints = resolver.resolve(host, std::to_string(port), ec);
    if (!ec) net::connect(socket, endpoints, ec);
    if (ec) return absl::UnavailableError(absl::StrCat("cannot connect to ", host, ":", port, ": ", ec.message()));
    socket.set_option(tcp::no_delay(true), ec);
    // Blocking reads and writes give up after the timeout instead of hanging a test or a benchmark.
    timeval tv{.tv_sec = static_cast<time_t>(timeout_s), .tv_usec = 0};
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    buffer.clear();
    return absl::OkStatus();
  }

  absl::Status send(std::string_view method, std::string_view target, std::string_view body, const Headers& headers) {
    if (!socket.is_open()) {
      if (absl::Status s = open(); !s.ok()) return s;
    }
    bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(beast::string_view(method.data(), method.size())),
                                           beast::string_view(target.data(), target.size()), 11};
    req.set(bhttp::field::host, absl::StrCat(host, ":", port));
    req.set(bhttp::field::user_agent, "plm");
    if (!body.empty()) req.set(bhttp::field::content_type, "application/json");
    for (const auto& [name, value] : headers) req.set(name, value);
    req.body() = std::string(body);
    req.prepare_payload();
    beast::error_code ec;
    bhttp::write(socket, req, ec);
    if (ec) return absl::UnavailableError(absl::StrCat("sending ", sv(target), ": ", ec.message()));
    return absl::OkStatus();
  }

  void close() {
    beast::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }
};

absl::StatusOr<HttpUrl> parse_http_url(std::string_view url) {
  if (!absl::StartsWith(sv(url), "http://")) return absl::InvalidArgumentError(absl::StrCat(sv(url), ": want http://host:port"));
  std::string_view rest = url.substr(7);
  rest = rest.substr(0, rest.find('/'));
  HttpUrl out;
  size_t colon = rest.rfind(':');
  if (!rest.empty() && rest[0] == '[') {  // [v6]:port
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) return absl::InvalidArgumentError(absl::StrCat(sv(url), ": unclosed ["));
    out.host = std::string(rest.substr(1, close - 1));
    colon = rest.find(':', close);
  } else {
    out.host = std::string(rest.substr(0, colon));
  }
  uint32_t port = 80;
  if (colon != std::string_view::npos && (!absl::SimpleAtoi(sv(rest.substr(colon + 1)), &port) || port == 0 || port > 65535)) {
    return absl::InvalidArgumentError(absl::StrCat(sv(url), ": bad port"));
  }
  if (out.host.empty()) return absl::InvalidArgumentError(absl::StrCat(sv(url), ": no host"));
  out.port = static_cast<uint16_t>(port);
  return out;
}

HttpClient::HttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpClient::~HttpClient() { impl_->close(); }

absl::StatusOr<std::unique_ptr<HttpClient>> HttpClient::connect(const std::string& host, uint16_t port, double timeout_s) {
  auto impl = std::make_unique<Impl>();
  impl->host = host;
  impl->port = port;
  impl->timeout_s = timeout_s;
  if (absl::Status s = impl->open(); !s.ok()) return s;
  return std::unique_ptr<HttpClient>(new HttpClient(std::move(impl)));
}

absl::StatusOr<HttpResponse> HttpClient::request(std::string_view method, std::string_view target, std::string_view body,
                                                 const Headers& headers) {
  // A server may answer (413, 401) and close before taking the whole body: read its answer all the same.
  const absl::Status sent = impl_->send(method, target, body, headers);
  if (!impl_->socket.is_open()) return sent;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(std::numeric_limits<uint64_t>::max());
  beast::error_code ec;
  bhttp::read(impl_->socket, impl_->buffer, parser, ec);
  if (ec) {
    impl_->close();
    if (!sent.ok()) return sent;
    return absl::UnavailableError(absl::StrCat("reading the response to ", sv(target), ": ", ec.message()));
  }
  HttpResponse out;
  copy_head(parser.get(), out);
  out.body = std::move(parser.get().body());
  if (!parser.get().keep_alive()) impl_->close();
  return out;
}

absl::StatusOr<HttpResponse> HttpClient::stream(std::string_view target, std::string_view body, const Headers& headers,
                                                const std::function<bool(std::string_view)>& on_event) {
  if (absl::Status s = impl_->send("POST", target, body, headers); !s.ok()) return s;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(std::numeric_limits<uint64_t>::max());
  beast::error_code ec;
  bhttp::read_header(impl_->socket, impl_->buffer, parser, ec);
  if (ec) {
    impl_->close();
    return absl::UnavailableError(absl::StrCat("reading the response to ", sv(target), ": ", ec.message()));
  }
  HttpResponse out;
  copy_head(parser.get(), out);
  std::string pending;  // SSE text not yet split into events
  bool stopped = false;
  auto on_chunk = [&](uint64_t, beast::string_view data, beast::error_code& error) -> size_t {
    out.body.append(data.data(), data.size());
    pending.append(data.data(), data.size());
    for (size_t end; !stopped && (end = pending.find("\n\n")) != std::string::npos;) {
      const std::string event = pending.substr(0, end);
      pending.erase(0, end + 2);
      if (absl::StartsWith(event, "data: ") && !on_event(std::string_view(event).substr(6))) {
        stopped = true;
        error = net::error::operation_aborted;
      }
    }
    return data.size();
  };
  parser.on_chunk_body(on_chunk);
  while (!parser.is_done() && !stopped) {
    bhttp::read_some(impl_->socket, impl_->buffer, parser, ec);
    if (ec) break;
  }
  if (stopped) {
    impl_->close();
    return out;
  }
  if (ec) {
    impl_->close();
    return absl::UnavailableError(absl::StrCat("reading the stream of ", sv(target), ": ", ec.message()));
  }
  if (!parser.chunked()) out.body = std::move(parser.get().body());  // an error answered as plain JSON
  if (!parser.get().keep_alive()) impl_->close();
  return out;
}

absl::StatusOr<std::string> HttpClient::raw(std::string_view bytes) {
  if (!impl_->socket.is_open()) {
    if (absl::Status s = impl_->open(); !s.ok()) return s;
  }
  beast::error_code ec;
  net::write(impl_->socket, net::buffer(bytes.data(), bytes.size()), ec);
  if (ec) return absl::UnavailableError(absl::StrCat("writing: ", ec.message()));
  std::string out;
  char chunk[4096];
  while (true) {
    const size_t n = impl_->socket.read_some(net::buffer(chunk), ec);
    out.append(chunk, n);
    if (ec) break;
  }
  impl_->close();
  return out;
}

}  // namespace plm::serve::http
