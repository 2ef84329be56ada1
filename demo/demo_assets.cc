#include "demo/demo_assets.h"

#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace plm::demo {
namespace {

namespace fs = std::filesystem;

constexpr const char* kConfigSubdir = "configs/demo";
constexpr const char* kTrainConfig = "configs/train/demo.yaml";
constexpr const char* kTokenizerSubdir = "tests/fixtures/models/tokenizer";

bool holds_assets(const fs::path& root) {
  std::error_code error;
  bool ok = fs::is_regular_file(root / kConfigSubdir / "config.json", error) &&
            fs::is_regular_file(root / kTrainConfig, error);
  for (const char* file : kTokenizerFiles) ok = ok && fs::is_regular_file(root / kTokenizerSubdir / file, error);
  return ok;
}

}  // namespace

absl::StatusOr<DemoAssets> find_demo_assets(const fs::path& executable) {
  std::vector<fs::path> roots;
  std::error_code error;
  const fs::path exe = fs::weakly_canonical(executable, error);
  for (fs::path dir = exe.parent_path(); !dir.empty() && roots.size() < 4; dir = dir.parent_path()) {
    roots.push_back(dir);
    if (dir == dir.root_path()) break;
  }
  roots.push_back(PLM_SOURCE_DIR);
  for (const fs::path& root : roots) {
    if (holds_assets(root)) return DemoAssets{root / kConfigSubdir, root / kTrainConfig, root / kTokenizerSubdir};
  }
  std::vector<std::string> tried;
  for (const fs::path& root : roots) tried.push_back(root.string());
  return absl::NotFoundError(absl::StrCat("the demo's files (", kConfigSubdir, "/config.json, ", kTrainConfig, ", ",
                                          kTokenizerSubdir, "/) are in none of: ", absl::StrJoin(tried, ", "),
                                          "; run the plm built in a plm source tree"));
}

}  // namespace plm::demo
