// json_nesting_depth counts array and object levels, never brackets inside strings (escaped quotes included).
#include "core/json_depth.h"

#include <gtest/gtest.h>

#include <string>

namespace plm {
namespace {

TEST(JsonDepthTest, CountsArraysAndObjectsOutsideStrings) {
  EXPECT_EQ(json_nesting_depth("1"), 0);
  EXPECT_EQ(json_nesting_depth(R"({"a": [1, {"b": []}], "c": {}})"), 4);
  EXPECT_EQ(json_nesting_depth(R"(["[[[", "\"[[[{", "\\", [[]]])"), 3);
}

TEST(JsonDepthTest, ProblemOnlyPastTheLimit) {
  const auto nested = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  EXPECT_EQ(json_depth_problem(nested(kMaxJsonDepth)), "");
  EXPECT_EQ(json_depth_problem(nested(kMaxJsonDepth + 1)), "JSON nested deeper than 64 levels");
}

}  // namespace
}  // namespace plm
