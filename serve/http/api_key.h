// Bearer API-key check in constant time: both sides are hashed with SHA-256 and the digests compared with
// CRYPTO_memcmp, so neither the key's length nor how many leading bytes match shows in the timing.
#pragma once

#include <string>
#include <string_view>

namespace plm::serve::http {

class ApiKeyCheck {
 public:
  // An empty key accepts every request.
  explicit ApiKeyCheck(std::string_view key);
  bool enabled() const { return enabled_; }
  // `authorization`: the request's Authorization header value ("Bearer <key>"), or empty.
  bool accepts(std::string_view authorization) const;

 private:
  bool enabled_;
  std::string digest_;  // SHA-256 of the key
};

}  // namespace plm::serve::http
