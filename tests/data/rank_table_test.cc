// RankTable against a std::map on keys that differ only in zero bytes, length, or far into a long tail.
#include "data/rank_table.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>

namespace plm::data {
namespace {

TEST(RankTableTest, MatchesAMap) {
  std::vector<std::string> keys = {std::string(1, '\0'), std::string(2, '\0'), "a", std::string("a\0", 2),
                                   "abcdefgh", "abcdefghi", std::string(255, 'x'), std::string(254, 'x') + "y"};
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> length(1, 40), byte(0, 3);
  for (int i = 0; i < 5000; ++i) {
    std::string key;
    for (int n = length(rng); n > 0; --n) key += static_cast<char>(byte(rng));
    keys.push_back(key);
  }
  RankTable table(keys.size());
  std::map<std::string, int32_t> expected;
  for (const std::string& key : keys) {
    const int32_t rank = static_cast<int32_t>(expected.size());
    const bool is_new = expected.emplace(key, rank).second;
    EXPECT_EQ(table.insert(key, rank), is_new);
  }
  EXPECT_EQ(table.size(), expected.size());
  for (const auto& [key, rank] : expected) ASSERT_EQ(table.find(key), rank);
  for (int i = 0; i < 5000; ++i) {
    std::string probe;
    for (int n = length(rng) + 1; n > 0; --n) probe += static_cast<char>(byte(rng));
    const auto it = expected.find(probe);
    ASSERT_EQ(table.find(probe), it == expected.end() ? RankTable::kNotFound : it->second);
  }
  EXPECT_EQ(table.find(""), RankTable::kNotFound);
  EXPECT_EQ(table.find(std::string(256, 'x')), RankTable::kNotFound);
  EXPECT_EQ(RankTable().find("a"), RankTable::kNotFound);
}

}  // namespace
}  // namespace plm::data
