#include "serve/media_key.h"

#include <openssl/evp.h>

#include <memory>

#include "core/check.h"

namespace plm::serve {

std::string MediaKey::hex() const {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(digest.size() * 2);
  for (uint8_t b : digest) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

std::vector<MediaKey> media_keys(Tensor pixels) {
  std::vector<MediaKey> keys;
  if (!pixels.defined() || pixels.numel() == 0) return keys;
  PLM_CHECK(pixels.rank() == 4 && pixels.dtype() == DType::kF32 && pixels.device().is_cpu() && pixels.is_contiguous())
      << "media_keys wants host f32 (N, 3, h, w), got " << pixels.describe();
  const int64_t n = pixels.size(0);
  const size_t row_bytes = pixels.nbytes() / static_cast<size_t>(n);
  // The shape goes into the digest so tiles of different sizes with equal bytes never share a key.
  const int64_t shape[3] = {pixels.size(1), pixels.size(2), pixels.size(3)};
  const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  PLM_CHECK(ctx != nullptr) << "EVP_MD_CTX_new failed";
  const auto* bytes = static_cast<const uint8_t*>(pixels.data());
  keys.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    unsigned int length = 0;
    PLM_CHECK(EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1 &&
              EVP_DigestUpdate(ctx.get(), shape, sizeof(shape)) == 1 &&
              EVP_DigestUpdate(ctx.get(), bytes + i * row_bytes, row_bytes) == 1 &&
              EVP_DigestFinal_ex(ctx.get(), keys[i].digest.data(), &length) == 1 && length == 32)
        << "SHA-256 failed";
  }
  return keys;
}

}  // namespace plm::serve
