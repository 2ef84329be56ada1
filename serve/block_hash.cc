#include "serve/block_hash.h"

#include <openssl/evp.h>

#include <memory>

#include "core/check.h"

namespace plm::serve {

BlockHash hash_block(const BlockHash& previous, std::span<const int32_t> tokens, std::span<const PlaceholderRow> rows) {
  const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  PLM_CHECK(ctx != nullptr) << "EVP_MD_CTX_new failed";
  bool ok = EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1 &&
            EVP_DigestUpdate(ctx.get(), previous.digest.data(), previous.digest.size()) == 1 &&
            EVP_DigestUpdate(ctx.get(), tokens.data(), tokens.size_bytes()) == 1;
  for (const PlaceholderRow& r : rows) {
    ok = ok && EVP_DigestUpdate(ctx.get(), r.key.digest.data(), r.key.digest.size()) == 1 &&
         EVP_DigestUpdate(ctx.get(), &r.row, sizeof(r.row)) == 1;
  }
  BlockHash out;
  unsigned int length = 0;
  PLM_CHECK(ok && EVP_DigestFinal_ex(ctx.get(), out.digest.data(), &length) == 1 && length == 32) << "SHA-256 failed";
  return out;
}

}  // namespace plm::serve
