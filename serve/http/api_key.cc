#include "serve/http/api_key.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <cctype>

namespace plm::serve::http {

namespace {

std::string sha256(std::string_view text) {
  std::string digest(SHA256_DIGEST_LENGTH, '\0');
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), reinterpret_cast<unsigned char*>(digest.data()));
  return digest;
}

}  // namespace

ApiKeyCheck::ApiKeyCheck(std::string_view key) : enabled_(!key.empty()), digest_(sha256(key)) {}

bool ApiKeyCheck::accepts(std::string_view authorization) const {
  if (!enabled_) return true;
  constexpr std::string_view kScheme = "bearer ";
  bool bearer = authorization.size() > kScheme.size();
  for (size_t i = 0; bearer && i < kScheme.size(); ++i) {
    bearer = std::tolower(static_cast<unsigned char>(authorization[i])) == kScheme[i];
  }
  const std::string given = sha256(bearer ? authorization.substr(kScheme.size()) : std::string_view());
  return CRYPTO_memcmp(given.data(), digest_.data(), digest_.size()) == 0 && bearer;
}

}  // namespace plm::serve::http
