// Scratch directories for tests, private to one test process: <base>/plm_<pid>/<Suite.Test>[/<name>], where
// <base> is $TEST_TMPDIR (ctest sets it to build/test_tmp), else $TMPDIR, else /tmp. The plm_<pid> root is
// removed when the process exits, so two builds or two ctest runs testing at once never share, or delete,
// each other's files.
#pragma once

#include <filesystem>
#include <string_view>

namespace plm::testing {

// This process's root, created on first use and removed at exit.
std::filesystem::path test_temp_root();

// A fresh, empty directory for the running test (named <Suite.Test>, or <Suite.Test>/<name> when given).
std::filesystem::path fresh_temp_dir(std::string_view name = {});

}  // namespace plm::testing
