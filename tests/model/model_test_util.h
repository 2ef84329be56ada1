// Helpers for the model tests: paths of the committed configs, a fresh temporary directory per test, and
// a gmock matcher for a failed status whose message contains every given substring.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/core/test_temp_dir.h"

namespace plm::model::testing {

inline std::string config_dir(const std::string& name) { return std::string(PLM_SOURCE_DIR) + "/configs/" + name; }

using ::plm::testing::fresh_temp_dir;  // a fresh directory for the running test, private to this process

inline void write_file(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  ASSERT_TRUE(out.good()) << path;
}

inline const absl::Status& status_of(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& status_of(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

MATCHER_P(FailsWithAll, substrings, "") {
  const absl::Status& status = status_of(arg);
  if (status.ok()) {
    *result_listener << "status is OK";
    return false;
  }
  const std::string message(status.message());
  for (const std::string& s : substrings) {
    if (message.find(s) == std::string::npos) {
      *result_listener << "message \"" << message << "\" lacks \"" << s << "\"";
      return false;
    }
  }
  return true;
}

// EXPECT_THAT(result, FailsWith("config.json", "hidden_size")): not OK, and the message has each string.
template <typename... Strings>
auto FailsWith(const Strings&... substrings) {
  return FailsWithAll(std::vector<std::string>{std::string(substrings)...});
}

}  // namespace plm::model::testing
