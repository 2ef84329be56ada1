// Fuzzes what a resume or `plm convert` reads from a training checkpoint before any tensor: the first byte picks
// the file ('0' COMPLETE, the marker with the layout and every file's size and CRC-32; '1' train_state.json;
// '2' run.json, whose "lora" object becomes a LoRA spec). A marker is also read the way a resume finds it:
// latest_complete_checkpoint over an output_dir whose checkpoints/step-00000001/ holds it beside one 4-byte file.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "fuzz/fuzz_scratch.h"
#include "trainer/checkpoint_io.h"
#include "trainer/peft_adapter.h"
#include "trainer/train_state.h"
#include "trainer/training_checkpoint.h"

namespace {

namespace fs = std::filesystem;

struct Dirs {
  fs::path output_dir;
  fs::path checkpoint;  // output_dir/checkpoints/step-00000001
};

const Dirs& dirs() {
  static const Dirs d = [] {
    Dirs made{.output_dir = plm::fuzz::scratch_dir("run"), .checkpoint = {}};
    made.checkpoint = plm::trainer::checkpoints_dir(made.output_dir) / plm::trainer::step_dir_name(1);
    fs::create_directories(made.checkpoint);
    plm::fuzz::write_file(made.checkpoint / "model-rank00000.safetensors", "abcd");
    return made;
  }();
  return d;
}

void fuzz_marker(std::string_view text) {
  plm::fuzz::write_file(dirs().checkpoint / plm::trainer::kCompleteMarker, text);
  const auto marker = plm::trainer::read_checkpoint_marker(dirs().checkpoint);
  const bool usable = marker.ok() && marker->step == 1 &&
                      plm::trainer::verify_checkpoint_files(dirs().checkpoint, *marker,
                                                            plm::trainer::Verify::kSizesAndCrcs).ok();
  const auto scan = plm::trainer::latest_complete_checkpoint(dirs().output_dir);
  PLM_CHECK(scan.ok()) << "a bad marker must be passed over, not fail the scan: " << scan.status();
  PLM_CHECK(scan->latest.has_value() == usable) << "the scan and the marker disagree";
}

void fuzz_run_info(std::string_view text) {
  plm::fuzz::write_file(dirs().checkpoint / plm::trainer::kRunInfoFile, text);
  const auto info = plm::trainer::read_run_info(dirs().checkpoint);
  if (!info.ok() || !info->contains("lora") || (*info)["lora"].is_null()) return;
  (void)plm::trainer::peft_config_spec((*info)["lora"], "run.json \"lora\"");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
      fuzz_marker(text);
      return 0;
    case 1:
      plm::fuzz::write_file(dirs().checkpoint / plm::trainer::kTrainStateFile, text);
      (void)plm::trainer::read_train_state(dirs().checkpoint);
      return 0;
    case 2:
      fuzz_run_info(text);
      return 0;
  }
  return 0;
}
