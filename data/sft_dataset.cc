#include "data/sft_dataset.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "data/sft_jsonl.h"
#include "data/sft_store_reader.h"

namespace plm::data {

absl::StatusOr<std::unique_ptr<SftDataset>> open_sft_dataset(const std::filesystem::path& path,
                                                             const Tokenizer& tokenizer,
                                                             const ProcessorConfig& processor,
                                                             const SftDataConfig& config) {
  const std::string extension = absl::AsciiStrToLower(path.extension().string());
  if (extension == ".jsonl") {
    absl::StatusOr<std::unique_ptr<SftJsonlDataset>> jsonl = SftJsonlDataset::open(path, tokenizer, processor, config);
    if (!jsonl.ok()) return jsonl.status();
    return std::unique_ptr<SftDataset>(*std::move(jsonl));
  }
  if (extension == ".h5" || extension == ".hdf5") {
    absl::StatusOr<std::unique_ptr<SftStoreDataset>> store = SftStoreDataset::open(path, tokenizer, processor, config);
    if (!store.ok()) return store.status();
    return std::unique_ptr<SftDataset>(*std::move(store));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(path.string(), ": training data must be SFT JSONL (.jsonl) or a plm data pack store (.h5)"));
}

}  // namespace plm::data
