#include "tests/core/test_temp_dir.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <system_error>

#include "core/check.h"

namespace plm::testing {

namespace {

std::filesystem::path base_dir() {
  for (const char* variable : {"TEST_TMPDIR", "TMPDIR"}) {
    const char* value = std::getenv(variable);
    if (value != nullptr && *value != '\0') return value;
  }
  return "/tmp";
}

}  // namespace

std::filesystem::path test_temp_root() {
  // A pointer that is never freed: the exit handler registered during its initialisation runs after the
  // destructor of a static path would have.
  static const std::filesystem::path* const root = [] {
    const auto* dir = new std::filesystem::path(base_dir() / ("plm_" + std::to_string(::getpid())));
    std::error_code error;
    std::filesystem::remove_all(*dir, error);  // left over by a crashed process that had the same pid
    std::filesystem::create_directories(*dir, error);
    PLM_CHECK(!error) << "cannot create the test scratch directory " << *dir << ": " << error.message();
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(test_temp_root(), ignored);
    });
    return dir;
  }();
  return *root;
}

std::filesystem::path fresh_temp_dir(std::string_view name) {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::filesystem::path dir =
      test_temp_root() / (info != nullptr ? std::string(info->test_suite_name()) + "." + info->name() : "no_test");
  if (!name.empty()) dir /= name;
  std::error_code error;
  std::filesystem::remove_all(dir, error);
  std::filesystem::create_directories(dir, error);
  PLM_CHECK(!error) << "cannot create " << dir << ": " << error.message();
  return dir;
}

}  // namespace plm::testing
