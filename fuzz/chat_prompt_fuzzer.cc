// Fuzzes conversations on their way to model inputs. The first byte picks the reader: '0' an OpenAI-style
// `messages` array (plm generate --messages, serve's parsed requests) through data::build_prompt; '1' / '3' one
// line of SFT JSONL (plm train, plm data pack) through build_sft_example, labelled assistant / all_but_media. Media parts are pointed
// at two tiny committed files (an image, a 4-frame video) instead of the paths the input names, so the whole
// pipeline runs (template, tokenizer, thumb+tile, frame sampling, placeholder expansion) without the input
// choosing which files of this machine are read. The tiny test model's processor keeps media cheap.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/check.h"
#include "data/chat_template.h"
#include "data/multimodal_prompt.h"
#include "data/processor_config.h"
#include "data/sft_jsonl.h"
#include "data/sft_sample.h"
#include "data/tokenizer.h"
#include "data/tokenizer_loader.h"
#include "fuzz/fuzz_scratch.h"

namespace {

using plm::data::ChatMessage;
using plm::data::ContentPart;

constexpr size_t kMaxMediaItems = 8;  // serve's default cap; more only repeats the same decode

struct Model {
  plm::data::Tokenizer tokenizer;
  plm::data::ProcessorConfig processor;
};

const Model& model() {
  static const Model* const m = [] {
    const std::filesystem::path dir = plm::fuzz::source_path("tests/fixtures/models/cls_tied");
    auto tokenizer = plm::data::load_tokenizer(dir);
    PLM_CHECK(tokenizer.ok()) << tokenizer.status();
    auto processor = plm::data::load_processor_config(dir);
    PLM_CHECK(processor.ok()) << processor.status();
    return new Model{*std::move(tokenizer), *processor};
  }();
  return *m;
}

// Points every media part at a committed file; false when there are more than kMaxMediaItems.
bool use_fixture_media(std::vector<ChatMessage>& messages) {
  static const std::string image = plm::fuzz::source_path("tests/fixtures/models/inputs/image_150x100.png").string();
  static const std::string video = plm::fuzz::source_path("tests/fixtures/models/inputs/video_64x48_4f.mp4").string();
  size_t count = 0;
  for (ChatMessage& message : messages) {
    for (ContentPart& part : message.parts) {
      if (part.type == ContentPart::Type::kText) continue;
      part.url = part.type == ContentPart::Type::kImage ? image : video;
      ++count;
    }
  }
  return count <= kMaxMediaItems;
}

void check_rendering(const std::vector<ChatMessage>& messages) {
  for (const bool add_generation_prompt : {false, true}) {
    std::string joined;
    for (const auto& segment : plm::data::render_chat_segments(messages, add_generation_prompt)) joined += segment.text;
    PLM_CHECK(joined == plm::data::render_chat_prompt(messages, add_generation_prompt))
        << "the segments do not add up to the prompt";
  }
}

void fuzz_messages(const std::string& text) {
  auto messages = plm::data::parse_chat_messages(text);
  if (!messages.ok()) return;
  check_rendering(*messages);
  if (!use_fixture_media(*messages)) return;
  (void)plm::data::build_prompt(*messages, /*add_generation_prompt=*/true, model().tokenizer, model().processor,
                                model().processor.image_tokens_per_tile());
}

void fuzz_sft_line(const std::string& line, plm::data::LabelMode mode) {
  static const std::filesystem::path base_dir = plm::fuzz::source_path("tests/fixtures/training/sft");
  auto messages = plm::data::parse_sft_line(line, base_dir);
  if (!messages.ok()) return;
  check_rendering(*messages);
  if (!use_fixture_media(*messages)) return;
  auto example = plm::data::build_sft_example(*messages, model().tokenizer, model().processor, {});
  if (!example.ok()) return;
  const size_t length = example->ids.size();
  PLM_CHECK(example->assistant_mask.size() == length && example->all_but_media_mask.size() == length)
      << "masks of " << example->assistant_mask.size() << " and " << example->all_but_media_mask.size()
      << " for " << length << " ids";
  const plm::data::SftSample sample = plm::data::select_labels(*std::move(example), mode);
  PLM_CHECK(sample.label_mask.size() == length && (length == 0 || sample.label_mask[0] == 0));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)model();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    fuzz_messages(text);
  } else {
    fuzz_sft_line(text, data[0] / 2 % 2 == 0 ? plm::data::LabelMode::kAssistant : plm::data::LabelMode::kAllButMedia);
  }
  return 0;
}
