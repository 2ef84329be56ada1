// How deeply untrusted JSON text nests, checked before nlohmann parses it. nlohmann's parser is iterative, but
// copying, comparing and dumping a value recurse once per level, so a request of a few hundred KB of "[[[[" would
// overflow a thread's stack. No file or request plm reads nests deeper than a handful of levels.
#pragma once

#include <string>
#include <string_view>

namespace plm {

inline constexpr int kMaxJsonDepth = 64;

// The deepest nesting of arrays and objects in `text`, not counting brackets inside strings. Meaningful for
// well-formed JSON; for malformed text it is some number, and the parser refuses the text anyway.
int json_nesting_depth(std::string_view text);

// "JSON nested deeper than 64 levels" when `text` is, else empty; the caller says which text in its error.
std::string json_depth_problem(std::string_view text);

}  // namespace plm
