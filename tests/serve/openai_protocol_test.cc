// Request validation of the OpenAI API (serve/http/openai_protocol.h) on bodies that the HTTP tests do not send:
// fields of the wrong JSON type must be a 400, never an exception out of a server thread (found by
// fuzz/openai_request).
#include "serve/http/openai_protocol.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace plm::serve::http {
namespace {

absl::StatusOr<ApiRequest> chat_with(const std::string& extra_fields) {
  return parse_api_request(ApiKind::kChat, R"({"messages": [{"role": "user", "content": "hi"}])" + extra_fields + "}", {});
}

TEST(OpenAiProtocolTest, ResponseFormatOfAnyShapeIsValidatedWithoutThrowing) {
  EXPECT_TRUE(chat_with(R"(, "response_format": {"type": "text"})").ok());
  for (const char* format : {R"({"type": 5})", R"({"type": null})", R"({})", R"({"type": "json_object"})", R"("text")"}) {
    SCOPED_TRACE(format);
    const absl::StatusOr<ApiRequest> parsed = chat_with(std::string(R"(, "response_format": )") + format);
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(http_status_of(parsed.status()), 400);
    EXPECT_THAT(std::string(parsed.status().message()), ::testing::HasSubstr("response_format"));
  }
}

}  // namespace
}  // namespace plm::serve::http
