#include "core/json_depth.h"

#include <algorithm>

namespace plm {

int json_nesting_depth(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

std::string json_depth_problem(std::string_view text) {
  if (json_nesting_depth(text) <= kMaxJsonDepth) return "";
  return "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels";
}

}  // namespace plm
