#include "serve/http/http_server.h"

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/check.h"
#include "serve/http/api_key.h"

namespace plm::serve::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

absl::string_view sv(beast::string_view s) { return absl::string_view(s.data(), s.size()); }
std::string_view stdsv(beast::string_view s) { return std::string_view(s.data(), s.size()); }

int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

class Session;

// One request on a connection, from its header to the end of its response (and of its engine request).
struct Exchange {
  std::string route;
  bool keep_alive = true;
  unsigned version = 11;
  bool counted = false;          // an API request, counted in the server's in-flight number
  std::shared_ptr<Session> session;  // keeps the connection alive while the request is in flight
  // API requests only.
  std::string id;
  ApiKind kind = ApiKind::kChat;
  ResponseHeader header;
  bool stream = false, include_usage = false;
  Clock::time_point arrival = Clock::now();
  std::atomic<bool> client_gone{false};  // read on the preparer's pool
  bool submitted = false;
  bool stream_started = false;
  std::string text;              // the reply so far (non-streaming)
  std::optional<RequestUpdate> final_update;
  // Completion: the engine no longer refers to it, and the response is written (or the client is gone).
  bool engine_done = true;
  bool all_queued = false;       // the last byte of the response is in the write queue
  bool response_done = false;
  bool completed = false;        // counted out and logged
  int status = 0;                // for the log and metrics
  std::string error;
};

}  // namespace

struct HttpServer::Impl {
  ServerConfig config;
  Engine& engine;
  PromptPreparer& preparer;
  Metrics& metrics;
  ApiKeyCheck key;
  net::io_context io;
  net::executor_work_guard<net::io_context::executor_type> work{io.get_executor()};
  tcp::acceptor acceptor{net::make_strand(io)};  // accepts and closes on its own strand
  std::optional<net::signal_set> signals;
  std::vector<std::thread> threads;
  std::atomic<int> in_flight{0};
  // Threads other than the I/O threads (the engine, the preparer's pool) inside a callback that may hold a
  // connection: the server is destroyed only once this is 0 and nothing is in flight.
  std::atomic<int> external_calls{0};
  std::atomic<int> preparing{0};
  std::atomic<bool> draining{false};
  std::atomic<uint64_t> next_id{0};
  const uint64_t id_salt = std::random_device()();
  const int64_t created = unix_seconds();
  std::function<void(beast::error_code, int)> on_signal;
  std::mutex mutex;
  absl::flat_hash_set<std::string> submitted_ids;  // guarded by mutex: what cancel_all() cancels

  Impl(const ServerConfig& c, Engine& e, PromptPreparer& p, Metrics& m)
      : config(c), engine(e), preparer(p), metrics(m), key(c.api_key) {}

  void accept();
  void log(const std::string& line) const {
    if (config.log) config.log(line);
  }
  std::string new_id(ApiKind kind) {
    return absl::StrFormat("%s-%08x%08x", kind == ApiKind::kChat ? "chatcmpl" : "cmpl",
                           static_cast<uint32_t>(id_salt), static_cast<uint32_t>(next_id.fetch_add(1)));
  }
  void request_done() {
    if (in_flight.fetch_sub(1) == 1 && draining.load()) net::post(io, [this] { stop_if_drained(); });
  }
  void start_draining() {
    net::post(acceptor.get_executor(), [this] {
      if (draining.exchange(true)) return;
      beast::error_code ignored;
      acceptor.close(ignored);
      stop_if_drained();
    });
  }
  void stop_if_drained() {
    if (in_flight.load() != 0) return;
    work.reset();
    io.stop();
  }
  // Brackets a callback body on a foreign thread.
  struct ExternalCall {
    explicit ExternalCall(Impl& impl) : impl(impl) { impl.external_calls.fetch_add(1); }
    ~ExternalCall() { impl.external_calls.fetch_sub(1); }
    Impl& impl;
  };
  void cancel_all() {
    const std::lock_guard lock(mutex);
    for (const std::string& id : submitted_ids) engine.cancel(id);
  }
};

namespace {

// A connection: reads one request at a time, writes its response (whole, or SSE chunks) through a queue.
// Every member runs on the connection's strand.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, HttpServer::Impl& server) : stream_(std::move(socket)), server_(server) {}

  void start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read_header(); });
  }

 private:
  using Parser = bhttp::request_parser<bhttp::string_body>;

  void read_header() {
    parser_.emplace();
    parser_->body_limit(static_cast<uint64_t>(server_.config.max_body_bytes));
    stream_.expires_after(timeout());
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  void on_header(beast::error_code ec) {
    if (ec) return read_failed(ec);
    ex_ = std::make_shared<Exchange>();
    const auto& req = parser_->get();
    ex_->keep_alive = req.keep_alive();
    ex_->version = req.version();
    const beast::string_view target = req.target();
    ex_->route = std::string(target.substr(0, target.find('?')));
    // Refuse before reading a body nobody will use.
    if (absl::StartsWith(ex_->route, "/v1/") && !server_.key.accepts(stdsv(req[bhttp::field::authorization]))) {
      ex_->keep_alive = false;
      return respond(401, error_body(401, "a valid API key is required (Authorization: Bearer <key>)", "invalid_api_key"));
    }
    if (const auto length = parser_->content_length(); length && *length > static_cast<uint64_t>(server_.config.max_body_bytes)) {
      ex_->keep_alive = false;
      return respond(413, error_body(413, absl::StrCat("the body of ", *length, " bytes exceeds this server's limit of ",
                                                       server_.config.max_body_bytes)));
    }
    if (absl::EqualsIgnoreCase(sv(req[bhttp::field::expect]), "100-continue")) {
      write(absl::StrCat("HTTP/1.", ex_->version % 10, " 100 Continue\r\n\r\n"));
    }
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = shared_from_this()](beast::error_code ec, size_t) { self->on_body(ec); });
  }

  void on_body(beast::error_code ec) {
    if (ec) return read_failed(ec);
    stream_.expires_never();
    handle(parser_->release());
  }

  void read_failed(beast::error_code ec) {
    if (ec == bhttp::error::body_limit) {
      if (!ex_) ex_ = std::make_shared<Exchange>();
      ex_->keep_alive = false;
      return respond(413, error_body(413, absl::StrCat("the body exceeds this server's limit of ",
                                                       server_.config.max_body_bytes, " bytes")));
    }
    if (ec == bhttp::error::end_of_stream || ec == net::error::eof || ec == beast::error::timeout ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset) {
      return close();
    }
    if (!ex_) ex_ = std::make_shared<Exchange>();
    ex_->keep_alive = false;
    respond(400, error_body(400, absl::StrCat("malformed HTTP request: ", ec.message())));
  }

  void handle(bhttp::request<bhttp::string_body> req) {
    const std::string& route = ex_->route;
    const bhttp::verb method = req.method();
    const auto only = [&](bhttp::verb allowed) {
      if (method == allowed) return true;
      respond(405, error_body(405, absl::StrCat(route, " takes ", sv(bhttp::to_string(allowed)), " only")),
              {{"Allow", std::string(bhttp::to_string(allowed))}});
      return false;
    };
    if (route == "/health") {
      if (!only(bhttp::verb::get)) return;
      if (server_.draining.load()) return respond(503, R"({"status":"draining"})");
      return respond(200, R"({"status":"ok"})");
    }
    if (route == "/metrics") {
      if (!only(bhttp::verb::get)) return;
      const ServerGauges gauges{.num_preparing = server_.preparing.load(), .draining = server_.draining.load()};
      return respond(200, server_.metrics.render(server_.engine.stats(), gauges), {},
                     "text/plain; version=0.0.4; charset=utf-8");
    }
    if (route == "/v1/models") {
      if (!only(bhttp::verb::get)) return;
      return respond(200, models_body(server_.config.model_name, server_.created, server_.engine.max_sequence_tokens()));
    }
    if (route == "/v1/chat/completions" || route == "/v1/completions") {
      if (!only(bhttp::verb::post)) return;
      return api(route == "/v1/chat/completions" ? ApiKind::kChat : ApiKind::kCompletion, req.body());
    }
    respond(404, error_body(404, absl::StrCat("no route ", route)));
  }

  // --- completions ---

  void api(ApiKind kind, const std::string& body) {
    absl::StatusOr<ApiRequest> parsed = parse_api_request(kind, body, server_.config.api);
    if (!parsed.ok()) return respond_status(parsed.status());
    if (!parsed->model.empty() && parsed->model != server_.config.model_name) {
      return respond(404, error_body(404, absl::StrCat("the model `", parsed->model, "` does not exist; this server has `",
                                                       server_.config.model_name, "`"), "model_not_found"));
    }
    if (server_.draining.load()) {
      ex_->keep_alive = false;
      return respond(503, error_body(503, "the server is shutting down"));
    }
    if (server_.preparing.load() + server_.engine.num_queued() >= server_.config.max_queue) {
      return respond(429, error_body(429, absl::StrCat("the queue is full (", server_.config.max_queue,
                                                       " requests waiting); retry later")),
                     {{"Retry-After", "1"}});
    }
    Exchange& ex = *ex_;
    ex.counted = true;
    server_.in_flight.fetch_add(1);
    ex.engine_done = false;
    ex.kind = kind;
    ex.id = server_.new_id(kind);
    ex.header = {.id = ex.id, .created = unix_seconds(), .model = server_.config.model_name};
    ex.stream = parsed->stream;
    ex.include_usage = parsed->include_usage;
    watch_for_disconnect(ex_);

    std::vector<data::ChatMessage> messages = std::move(parsed->messages);
    std::string prompt_text = std::move(parsed->prompt);
    server_.preparing.fetch_add(1);
    // On the preparer's pool: submit to the engine from there, then report back on the strand.
    ex.session = shared_from_this();
    // Runs on the preparer's pool: submits to the engine from there, then reports back on the strand. Foreign
    // threads hold the connection only weakly, inside an ExternalCall.
    auto done = [weak = weak_from_this(), ex = ex_, request = std::move(*parsed), &server = server_](
                    absl::StatusOr<PreparedPrompt> prompt) mutable {
      const HttpServer::Impl::ExternalCall guard(server);
      server.preparing.fetch_sub(1);
      const std::shared_ptr<Session> self = weak.lock();
      PLM_CHECK(self != nullptr) << "a connection went away with its request in flight";
      absl::Status status = prompt.status();
      const bool gone = ex->client_gone.load();
      if (status.ok() && !gone) status = self->submit(ex, std::move(request), std::move(*prompt));
      net::post(self->stream_.get_executor(), [self, ex, status, submitted = status.ok() && !gone] {
        if (!status.ok()) return self->fail(ex, status);
        if (!submitted) {
          ex->engine_done = true;
          return self->maybe_complete(ex);
        }
        self->on_submitted(ex);
      });
    };
    if (kind == ApiKind::kChat) {
      server_.preparer.prepare_chat(std::move(messages), std::move(done));
    } else {
      server_.preparer.prepare_text(std::move(prompt_text), std::move(done));
    }
  }

  absl::Status submit(const std::shared_ptr<Exchange>& ex, ApiRequest request, PreparedPrompt prompt) {
    GenerationParams params = std::move(request.params);
    const int64_t prompt_tokens = static_cast<int64_t>(prompt.ids.size());
    params.max_tokens = request.max_tokens.value_or(
        request.kind == ApiKind::kChat ? std::max<int64_t>(1, server_.engine.max_sequence_tokens() - prompt_tokens)
                                       : server_.config.completion_default_max_tokens);
    if (!request.seeded) params.sampling.seed = std::random_device()() * uint64_t{0x9E3779B97F4A7C15} + std::random_device()();
    EngineRequest r{.id = ex->id, .prompt = std::move(prompt), .params = std::move(params),
                    .on_update = [weak = weak_from_this(), ex, &server = server_](const RequestUpdate& u) {
                      const HttpServer::Impl::ExternalCall guard(server);
                      const std::shared_ptr<Session> self = weak.lock();
                      PLM_CHECK(self != nullptr) << "a connection went away with its request in flight";
                      net::post(self->stream_.get_executor(), [self, ex, u] { self->on_update(ex, u); });
                    },
                    .arrival = ex->arrival};
    {
      const std::lock_guard lock(server_.mutex);
      server_.submitted_ids.insert(ex->id);
    }
    absl::Status status = server_.engine.submit(std::move(r));
    if (!status.ok()) {
      const std::lock_guard lock(server_.mutex);
      server_.submitted_ids.erase(ex->id);
    }
    return status;
  }

  void on_submitted(const std::shared_ptr<Exchange>& ex) {
    ex->submitted = true;
    if (ex->client_gone.load()) {
      server_.engine.cancel(ex->id);
      return;
    }
    if (ex->stream && !ex->engine_done) start_stream(*ex);
  }

  void on_update(const std::shared_ptr<Exchange>& ex, const RequestUpdate& u) {
    if (u.finish) {
      ex->engine_done = true;
      ex->final_update = u;
      const std::lock_guard lock(server_.mutex);
      server_.submitted_ids.erase(ex->id);
    }
    if (ex->client_gone.load()) return maybe_complete(ex);
    const bool replied = u.finish && (*u.finish == FinishReason::kStop || *u.finish == FinishReason::kLength);
    if (!ex->stream) {
      ex->text += u.text;
      if (!u.finish) return;
      if (replied) return respond(200, completion_body(ex->kind, ex->header, ex->text, *u.finish, u.usage));
      return respond_status(finish_error(u));
    }
    start_stream(*ex);
    if (!u.text.empty()) write_event(*ex, delta_event(ex->kind, ex->header, u.text, false, ex->include_usage));
    if (!u.finish) return;
    if (replied) {
      write_event(*ex, finish_event(ex->kind, ex->header, *u.finish, ex->include_usage));
      if (ex->include_usage) write_event(*ex, usage_event(ex->kind, ex->header, u.usage));
    } else {
      const absl::Status error = finish_error(u);
      ex->error = std::string(error.message());
      write_event(*ex, error_event(http_status_of(error), ex->error));
    }
    write_event(*ex, std::string(kDoneEvent));
    end_stream(*ex);
  }

  // Why a request ended without a reply, as an error status.
  static absl::Status finish_error(const RequestUpdate& u) {
    if (*u.finish == FinishReason::kCancelled) return absl::UnavailableError("the request was cancelled (server shutting down)");
    return absl::InternalError(absl::StrCat("generation failed: ", u.error.message()));
  }

  // A request that failed before generating anything: an error response (or, mid-stream, an error event).
  void fail(const std::shared_ptr<Exchange>& ex, const absl::Status& status) {
    ex->engine_done = true;
    if (ex->client_gone.load()) return maybe_complete(ex);
    respond_status(status);
  }

  // --- streaming ---

  bool chunked(const Exchange& ex) const { return ex.version >= 11; }

  void start_stream(Exchange& ex) {
    if (ex.stream_started) return;
    ex.stream_started = true;
    ex.status = 200;
    server_.metrics.count_response(200);
    if (!chunked(ex)) ex.keep_alive = false;
    write(absl::StrCat("HTTP/1.", ex.version % 10, " 200 OK\r\nServer: plm\r\nContent-Type: text/event-stream\r\n",
                       "Cache-Control: no-cache\r\n", chunked(ex) ? "Transfer-Encoding: chunked\r\n" : "",
                       ex.keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n", "\r\n"));
    // OpenAI's first chat chunk carries the role.
    if (ex.kind == ApiKind::kChat) write_event(ex, delta_event(ex.kind, ex.header, "", true, ex.include_usage));
  }

  void write_event(Exchange& ex, const std::string& event) {
    write(chunked(ex) ? absl::StrFormat("%x\r\n%s\r\n", event.size(), event) : event);
  }

  void end_stream(Exchange& ex) {
    if (chunked(ex)) write("0\r\n\r\n");
    ex.all_queued = true;
    if (!writing_) on_all_written();
  }

  // --- whole responses ---

  void respond_status(const absl::Status& status) {
    const int code = http_status_of(status);
    const bool context = status.code() == absl::StatusCode::kOutOfRange;
    respond(code, error_body(code, std::string(status.message()), context ? "context_length_exceeded" : ""));
  }

  void respond(int status, const std::string& body, const std::vector<std::pair<std::string, std::string>>& headers = {},
               const char* content_type = "application/json") {
    Exchange& ex = *ex_;
    if (ex.all_queued) return;
    if (status >= 400) ex.error = body;
    if (server_.draining.load()) ex.keep_alive = false;
    ex.status = status;
    server_.metrics.count_response(status);
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(status), ex.version};
    res.set(bhttp::field::server, "plm");
    res.set(bhttp::field::content_type, content_type);
    if (status == 401) res.set(bhttp::field::www_authenticate, "Bearer");
    for (const auto& [name, value] : headers) res.set(name, value);
    res.keep_alive(ex.keep_alive);
    res.body() = body;
    res.prepare_payload();
    std::ostringstream bytes;
    bytes << res;
    write(bytes.str());
    ex.all_queued = true;
    if (!writing_) on_all_written();
  }

  // --- the write queue ---

  void write(std::string bytes) {
    queue_.push_back(std::move(bytes));
    if (!writing_) write_next();
  }

  void write_next() {
    writing_ = true;
    stream_.expires_after(timeout());
    net::async_write(stream_, net::buffer(queue_.front()),
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->on_written(ec); });
  }

  void on_written(beast::error_code ec) {
    writing_ = false;
    queue_.pop_front();
    if (ec || (ex_ && ex_->client_gone.load())) {
      queue_.clear();
      return client_gone(ex_);
    }
    if (!queue_.empty()) return write_next();
    stream_.expires_never();
    on_all_written();
  }

  void on_all_written() {
    if (!ex_ || !ex_->all_queued || !queue_.empty() || ex_->response_done) return;
    ex_->response_done = true;
    maybe_complete(ex_);
  }

  // --- disconnects ---

  // Readable while a request is in flight means the peer closed (a peek reads end of stream or an error) or
  // pipelined its next request (it reads bytes). A readiness event can also be stale: another I/O thread's read
  // already took the bytes it announced (the peek would block), and the watch goes on. Taken for a close, such
  // events cancelled 4 of ~4,200 requests under 64 concurrent streams (plm bench serve); none of 3,072 since.
  void watch_for_disconnect(const std::shared_ptr<Exchange>& ex) {
    stream_.socket().async_wait(tcp::socket::wait_read, [self = shared_from_this(), ex](beast::error_code ec) {
      if (ec || ex != self->ex_ || ex->response_done) return;
      char byte = 0;
      const ssize_t n = ::recv(self->stream_.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      const bool would_block = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
      if (would_block) {
        self->watch_for_disconnect(ex);
      } else if (n <= 0) {
        self->client_gone(ex);
      }
    });
  }

  void client_gone(const std::shared_ptr<Exchange>& ex) {
    if (!ex || ex->client_gone.exchange(true)) return;
    if (ex->submitted && !ex->engine_done) server_.engine.cancel(ex->id);
    if (ex->status == 0) {
      ex->status = 499;  // nginx's "client closed request"
      server_.metrics.count_response(499);
    }
    ex->response_done = true;
    ex->keep_alive = false;
    // The write in progress still owns the front of the queue; on_written drops it.
    if (!writing_) queue_.clear();
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
    maybe_complete(ex);
  }

  // --- the end of an exchange ---

  void maybe_complete(const std::shared_ptr<Exchange>& ex) {
    if (!ex->engine_done || !ex->response_done || ex->completed) return;
    ex->completed = true;
    ex->session.reset();  // from here the pending handlers hold the connection
    if (ex->counted) {
      log_line(*ex);
      server_.request_done();
    }
    if (ex != ex_) return;
    if (ex->client_gone.load()) return;
    if (ex->keep_alive && !server_.draining.load()) return read_header();
    linger();
  }

  // Closes gracefully (RFC 9112 §9.6): stop sending, then read and drop what the client still sends (the rest
  // of a refused body) for a moment, so it gets to read the response instead of a connection reset.
  void linger() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(std::chrono::seconds(2));
    discard();
  }

  void discard() {
    static constexpr size_t kLingerBytes = size_t{4} << 20;
    stream_.async_read_some(net::buffer(discard_), [self = shared_from_this()](beast::error_code ec, size_t n) {
      self->lingered_ += n;
      if (ec || self->lingered_ > kLingerBytes) return self->close();
      self->discard();
    });
  }

  void log_line(const Exchange& ex) const {
    const RequestUpdate u = ex.final_update.value_or(RequestUpdate{});
    std::string line = absl::StrFormat(
        "request id=%s route=%s status=%d prompt_tokens=%d completion_tokens=%d media_cached=%d media_encoded=%d "
        "ttft_ms=%.1f latency_ms=%.1f finish=%s",
        ex.id, ex.route, ex.status, u.usage.prompt_tokens, u.usage.completion_tokens, u.usage.cached_media_items,
        u.usage.encoded_media_items, u.ttft_s * 1e3,
        std::chrono::duration<double, std::milli>(Clock::now() - ex.arrival).count(),
        u.finish ? finish_reason_name(*u.finish) : (ex.client_gone.load() ? "disconnected" : "none"));
    if (!ex.error.empty()) absl::StrAppend(&line, " error=", ex.error);
    server_.log(line);
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  std::chrono::milliseconds timeout() const {
    return std::chrono::milliseconds(static_cast<int64_t>(server_.config.read_timeout_s * 1000));
  }

  // Bytes read but not yet parsed: a header (Beast's 8 KiB header limit), a chunk header or trailer, the body
  // bytes of one read. Beast 1.74 bounds neither a chunk header nor a trailer, so without this limit a client could
  // make the buffer grow for as long as the read timeout lets it send.
  static constexpr size_t kMaxUnparsedBytes = size_t{1} << 20;

  beast::tcp_stream stream_;
  HttpServer::Impl& server_;
  beast::flat_buffer buffer_{kMaxUnparsedBytes};
  std::optional<Parser> parser_;
  std::shared_ptr<Exchange> ex_;      // the current request
  std::deque<std::string> queue_;     // bytes waiting to be written, front first
  bool writing_ = false;
  std::array<char, 16384> discard_;   // what linger() reads and drops
  size_t lingered_ = 0;
};

}  // namespace

void HttpServer::Impl::accept() {
  acceptor.async_accept(net::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
    if (!ec) {
      // Streams are many small writes: Nagle's algorithm would hold each behind the peer's delayed ACK (~40 ms).
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      std::make_shared<Session>(std::move(socket), *this)->start();
    }
    accept();
  });
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::start(const ServerConfig& config, Engine& engine,
                                                              PromptPreparer& preparer, Metrics& metrics) {
  if (config.num_io_threads < 1) return absl::InvalidArgumentError("num_io_threads must be >= 1");
  auto impl = std::make_unique<Impl>(config, engine, preparer, metrics);
  beast::error_code ec;
  const net::ip::address address = net::ip::make_address(config.host, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("--host ", config.host, ": not an IP address (", ec.message(), ")"));
  const tcp::endpoint endpoint(address, config.port);
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot listen on ", config.host, ":", config.port, ": ", ec.message()));
  impl->accept();
  for (int i = 0; i < config.num_io_threads; ++i) impl->threads.emplace_back([io = &impl->io] { io->run(); });
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::~HttpServer() {
  drain();
  impl_->cancel_all();
  wait();
  // The engine or the pool may still be leaving a callback that touched a connection.
  while (impl_->external_calls.load() != 0) std::this_thread::yield();
}

uint16_t HttpServer::port() const {
  beast::error_code ignored;
  return impl_->acceptor.local_endpoint(ignored).port();
}

std::string HttpServer::url() const {
  const bool v6 = impl_->config.host.find(':') != std::string::npos;
  return absl::StrCat("http://", v6 ? "[" : "", impl_->config.host, v6 ? "]" : "", ":", port());
}

void HttpServer::drain() { impl_->start_draining(); }

void HttpServer::drain_on_signals() {
  Impl& impl = *impl_;
  impl.signals.emplace(impl.io, SIGTERM, SIGINT);
  impl.on_signal = [&impl](beast::error_code ec, int signal) {
    if (ec) return;
    if (!impl.draining.load()) {
      impl.log(absl::StrCat("signal ", signal, ": draining ", impl.in_flight.load(), " requests in flight"));
      impl.start_draining();
    } else {
      impl.log(absl::StrCat("signal ", signal, ": cancelling ", impl.in_flight.load(), " requests in flight"));
      impl.cancel_all();
    }
    impl.signals->async_wait(impl.on_signal);
  };
  impl.signals->async_wait(impl.on_signal);
}

void HttpServer::wait() {
  for (std::thread& t : impl_->threads) {
    if (t.joinable()) t.join();
  }
}

int HttpServer::num_in_flight() const { return impl_->in_flight.load(); }

}  // namespace plm::serve::http
