// Request validation of the OpenAI API (serve/http/openai_protocol.h) on bodies that the HTTP tests do not send:
// fields of the wrong JSON type and JSON nested past the depth limit must be a 400, never an exception or a stack
// overflow in a server thread (found by fuzz/openai_request and its review).
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

TEST(OpenAiProtocolTest, RefusesDeeplyNestedJsonBeforeParsingIt) {
  // 200,000 levels in a message's content used to overflow the stack while the content was copied.
  const std::string deep = std::string(200'000, '[') + std::string(200'000, ']');
  const absl::StatusOr<ApiRequest> parsed =
      parse_api_request(ApiKind::kChat, R"({"messages": [{"role": "user", "content": )" + deep + "}]}", {});
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(http_status_of(parsed.status()), 400);
  EXPECT_EQ(parsed.status().message(), "the request body is JSON nested deeper than 64 levels");
}

}  // namespace
}  // namespace plm::serve::http
