// The two BPE merge loops agree, and the whole-piece lookup reaches tokens that merging cannot.
#include "data/bpe.h"

#include <gtest/gtest.h>

#include <random>

#include "tests/data/tokenizer_test_util.h"

namespace plm::data {
namespace {

std::vector<int32_t> merge(void (*merge_fn)(const Vocab&, std::string_view, BpeScratch&, std::vector<int32_t>*),
                           std::string_view piece) {
  BpeScratch scratch;
  std::vector<int32_t> ids;
  merge_fn(::plm::testing::llama3_tokenizer().vocab(), piece, scratch, &ids);
  return ids;
}

TEST(BpeTest, WholePieceLookupComesFirst) {
  const Vocab& vocab = ::plm::testing::llama3_tokenizer().vocab();
  BpeScratch scratch;
  std::vector<int32_t> ids;
  bpe_encode(vocab, " Vi\xE1\xBB\x87t", scratch, &ids);  // " Việt"
  EXPECT_EQ(ids, (std::vector<int32_t>{101798}));
  // spec/tokenizer.md §3.5: merging alone cannot reach it.
  EXPECT_EQ(merge(bpe_merge_scan, " Vi\xE1\xBB\x87t"), (std::vector<int32_t>{11655, 26298, 83}));
}

TEST(BpeTest, ScanAndHeapAgree) {
  std::vector<std::string> pieces = {"", "a", "hello", " unbelievably", "aaaaaaaaaaaaaaaaaaaaaaa", std::string(300, ' '),
                                     std::string(1000, '='), "\xF0\x9F\x9A\x80\xF0\x9F\x9A\x80"};
  std::mt19937 rng(11);
  const std::string alphabet[] = {" ", "=", "-", "a", "b", "ab", "\n", "\xC3\xA9", "\xE4\xB8\xAD", "\xFF", "0"};
  std::uniform_int_distribution<size_t> pick(0, std::size(alphabet) - 1);
  std::uniform_int_distribution<int> length(1, 400);
  for (int trial = 0; trial < 300; ++trial) {
    std::string piece;
    for (int i = length(rng); i > 0; --i) piece += alphabet[pick(rng)];
    pieces.push_back(piece);
  }
  for (const auto& test_case : ::plm::testing::read_tokenizer_cases("llama3_edge_cases")) pieces.push_back(test_case.text);
  for (const std::string& piece : pieces) {
    ASSERT_EQ(merge(bpe_merge_scan, piece), merge(bpe_merge_heap, piece)) << piece;
  }
}

}  // namespace
}  // namespace plm::data
