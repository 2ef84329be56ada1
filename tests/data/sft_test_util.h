// Helpers for the SFT data tests: the tiny fixture model's processor settings (56-pixel tiles, 4 tokens per
// tile), its media inputs, and scratch directories holding a JSONL file next to copies of those media.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "data/processor_config.h"
#include "data/tokenizer.h"

namespace plm::testing {

std::filesystem::path fixtures_dir();  // tests/fixtures ($PLM_TEST_DATA_DIR)
const data::ProcessorConfig& tiny_processor();  // tests/fixtures/models/cls_tied

// A fresh scratch dir with media/image.png (150x100) and media/clip.mp4 (64x48, 4 frames) copied in, and
// train.jsonl holding `lines` (each a JSON object text) joined by newlines.
std::filesystem::path make_sft_dir(const std::string& name, const std::vector<std::string>& lines);

}  // namespace plm::testing
