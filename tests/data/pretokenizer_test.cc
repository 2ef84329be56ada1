// The pre-tokenizer's pieces on the examples of spec/tokenizer.md §3.3, and full coverage of arbitrary bytes.
#include "data/pretokenizer.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace plm::data {
namespace {

std::vector<std::string> pieces(std::string_view text) {
  static const Pretokenizer pretokenizer;
  PieceSplitter splitter(pretokenizer);
  splitter.reset(text);
  std::vector<std::string> result;
  for (std::string_view piece; splitter.next(&piece);) result.emplace_back(piece);
  return result;
}

using Pieces = std::vector<std::string>;

TEST(PretokenizerTest, SpecExamples) {
  EXPECT_EQ(pieces("Hello    World"), (Pieces{"Hello", "   ", " World"}));
  EXPECT_EQ(pieces("    Hello"), (Pieces{"   ", " Hello"}));
  EXPECT_EQ(pieces("x  \n"), (Pieces{"x", "  \n"}));
  EXPECT_EQ(pieces("In 2024"), (Pieces{"In", " ", "202", "4"}));
  EXPECT_EQ(pieces("1234567"), (Pieces{"123", "456", "7"}));
  EXPECT_EQ(pieces("I'M"), (Pieces{"I", "'M"}));
  EXPECT_EQ(pieces("line1\r\nline2"), (Pieces{"line", "1", "\r\n", "line", "2"}));
  EXPECT_EQ(pieces("a  b   c"), (Pieces{"a", " ", " b", "  ", " c"}));
  EXPECT_EQ(pieces("  \n  x"), (Pieces{"  \n", " ", " x"}));
  EXPECT_EQ(pieces("):\n!!!\n\n ..."), (Pieces{"):\n", "!!!\n\n", " ..."}));
  EXPECT_EQ(pieces("$hello (x"), (Pieces{"$hello", " (", "x"}));  // one prefix character only
  EXPECT_EQ(pieces("(x"), (Pieces{"(x"}));
}

TEST(PretokenizerTest, UnicodeClasses) {
  EXPECT_EQ(pieces("'\xC5\xBFt"), (Pieces{"'\xC5\xBF", "t"}));             // 'ſ folds to 's
  EXPECT_EQ(pieces("he\xE2\x80\x99s"), (Pieces{"he", "\xE2\x80\x99s"}));  // U+2019 is not an apostrophe
  EXPECT_EQ(pieces("x\xC2\x85\xC2\x85y"), (Pieces{"x", "\xC2\x85", "\xC2\x85y"}));  // NEL is White_Space
  EXPECT_EQ(pieces("x\x1C\x1Cy"), (Pieces{"x", "\x1C\x1C", "y"}));   // U+001C is not
  EXPECT_EQ(pieces("\xC2\xBD\xC2\xB2"), (Pieces{"\xC2\xBD\xC2\xB2"}));  // ½ ² are numbers
  EXPECT_EQ(pieces("e\xCC\x81"), (Pieces{"e", "\xCC\x81"}));         // a combining mark is "other"
}

TEST(PretokenizerTest, InvalidUtf8IsItsOwnPiece) {
  EXPECT_EQ(pieces("ab\xFF\xFE" "cd"), (Pieces{"ab", "\xFF\xFE", "cd"}));
  EXPECT_EQ(pieces("\xC3"), (Pieces{"\xC3"}));
}

TEST(PretokenizerTest, PiecesCoverRandomBytes) {
  std::mt19937 rng(7);
  const std::string alphabet[] = {"a", "Z", " ", "\n", "\r", "\t", "7", "'", "s", "!", "\xC2\xA0", "\xE2\x80\x99",
                                  "\xC3\xA9", "\xFF", "\x80", "\xE4\xB8\xAD", "\xF0\x9F\x9A\x80", "\xCC\x81"};
  std::uniform_int_distribution<size_t> pick(0, std::size(alphabet) - 1);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string text;
    for (int i = 0; i < 40; ++i) text += alphabet[pick(rng)];
    std::string joined;
    for (const std::string& piece : pieces(text)) {
      ASSERT_FALSE(piece.empty());
      joined += piece;
    }
    ASSERT_EQ(joined, text);
  }
}

}  // namespace
}  // namespace plm::data
