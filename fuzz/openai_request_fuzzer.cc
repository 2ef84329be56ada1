// Fuzzes what `plm serve` does with a request body after HTTP: the first byte picks the route ('0'
// /v1/chat/completions, '1' /v1/completions), the rest is the body. parse_api_request validates it; an error must
// still render as a JSON error body, and an accepted chat request's media go through LocalMedia::localize under a
// media root holding a file, a subfolder, and symlinks that point inside and outside it. Whatever the URLs say
// (data:, file://, "..", absolute paths, percent escapes), every media part must end up naming a file under the
// canonical root or a data: URL's scratch file: anything else is the confinement broken, and aborts.
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "fuzz/fuzz_scratch.h"
#include "serve/http/openai_protocol.h"
#include "serve/media_source.h"

namespace {

namespace fs = std::filesystem;
using plm::serve::http::ApiKind;

// root/{image.png, sub/inner.png, link_in -> image.png, link_out -> the scratch folder's secret.png}.
plm::serve::MediaPolicy make_policy() {
  const fs::path root = plm::fuzz::scratch_dir("media_root");
  const fs::path outside = plm::fuzz::scratch_dir("outside");
  plm::fuzz::write_file(root / "image.png", "not really a PNG");
  fs::create_directories(root / "sub");
  plm::fuzz::write_file(root / "sub" / "inner.png", "nor this");
  plm::fuzz::write_file(outside / "secret.png", "outside the root");
  fs::create_symlink("image.png", root / "link_in");
  fs::create_symlink(outside / "secret.png", root / "link_out");
  return {.media_root = fs::canonical(root), .scratch_dir = plm::fuzz::scratch_dir("scratch"), .max_media_items = 8};
}

bool is_under(const fs::path& file, const fs::path& dir) {
  const auto [d, f] = std::mismatch(dir.begin(), dir.end(), file.begin(), file.end());
  return d == dir.end();
}

void check_error_body(const absl::Status& status) {
  const int http_status = plm::serve::http::http_status_of(status);
  PLM_CHECK(http_status >= 400) << status;
  const std::string body = plm::serve::http::error_body(http_status, std::string(status.message()));
  PLM_CHECK(nlohmann::json::accept(body)) << "error body is not JSON: " << body;
}

void localize(std::vector<plm::data::ChatMessage> messages) {
  static const plm::serve::MediaPolicy policy = make_policy();
  const auto local = plm::serve::LocalMedia::localize(messages, policy);
  if (!local.ok()) return check_error_body(local.status());
  for (const plm::data::ChatMessage& message : messages) {
    for (const plm::data::ContentPart& part : message.parts) {
      if (part.type == plm::data::ContentPart::Type::kText) continue;
      const fs::path file(part.url);
      PLM_CHECK(is_under(file, *policy.media_root) || is_under(file, policy.scratch_dir))
          << "media escaped the root: " << part.url;
    }
  }
  (void)local->client_message("media error at " + policy.scratch_dir.string());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const ApiKind kind = data[0] % 2 == 0 ? ApiKind::kChat : ApiKind::kCompletion;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto request = plm::serve::http::parse_api_request(kind, body, {});
  if (!request.ok()) {
    check_error_body(request.status());
  } else if (kind == ApiKind::kChat) {
    localize(std::move(request->messages));
  }
  return 0;
}
