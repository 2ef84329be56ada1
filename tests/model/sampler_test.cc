// The sampler's distribution against an exact softmax computed here in double: temperature T draws from
// softmax(logits / T), top-k and top-p draw only from their candidates, renormalised. Frequencies over many
// seeded draws must lie within 5 binomial standard deviations of the exact probabilities.
#include "model/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace plm::model {
namespace {

constexpr int kDraws = 40000;

// Logits with distinct values and no ties anywhere near a cut.
const std::vector<float> kLogits = {0.3f, 2.1f, -1.2f, 1.4f, 0.9f, -0.4f, 1.8f, 0.0f};

// softmax(logits / temperature) in double.
std::vector<double> softmax(const std::vector<float>& logits, double temperature) {
  const double max_logit = *std::max_element(logits.begin(), logits.end()) / temperature;
  std::vector<double> p(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) p[i] = std::exp(logits[i] / temperature - max_logit);
  const double total = std::accumulate(p.begin(), p.end(), 0.0);
  for (double& x : p) x /= total;
  return p;
}

// `p` with only the ids in `keep` left, renormalised.
std::vector<double> restrict_to(const std::vector<double>& p, const std::vector<int>& keep) {
  std::vector<double> q(p.size(), 0.0);
  double total = 0.0;
  for (int i : keep) total += p[i];
  for (int i : keep) q[i] = p[i] / total;
  return q;
}

// Ids by probability, largest first.
std::vector<int> ranked(const std::vector<double>& p) {
  std::vector<int> order(p.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return p[a] > p[b]; });
  return order;
}

std::vector<double> frequencies(const SamplingParams& params, const std::vector<float>& logits) {
  Sampler sampler(params);
  std::vector<int> counts(logits.size(), 0);
  for (int d = 0; d < kDraws; ++d) {
    const int32_t id = sampler.sample(logits);
    EXPECT_GE(id, 0);
    EXPECT_LT(id, static_cast<int32_t>(logits.size()));
    if (id >= 0 && id < static_cast<int32_t>(logits.size())) ++counts[id];
  }
  std::vector<double> f(logits.size());
  for (size_t i = 0; i < f.size(); ++i) f[i] = static_cast<double>(counts[i]) / kDraws;
  return f;
}

// Every id drawn with its probability: never when it is 0, else within 5 binomial standard deviations.
void expect_distribution(const std::vector<double>& freq, const std::vector<double>& p) {
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == 0.0) {
      EXPECT_EQ(freq[i], 0.0) << "id " << i << " lies outside the candidates but was drawn";
      continue;
    }
    const double sigma = std::sqrt(p[i] * (1.0 - p[i]) / kDraws);
    EXPECT_NEAR(freq[i], p[i], 5.0 * sigma) << "id " << i;
  }
}

// How far apart two distributions are, in units of the test's tolerance: a test of "T changes the
// distribution" means something only if the distributions differ by much more than the tolerance.
double separation(const std::vector<double>& p, const std::vector<double>& q) {
  double worst = 0.0;
  for (size_t i = 0; i < p.size(); ++i) {
    const double sigma = std::sqrt(std::max(p[i] * (1.0 - p[i]), 1e-12) / kDraws);
    worst = std::max(worst, std::abs(p[i] - q[i]) / (5.0 * sigma));
  }
  return worst;
}

TEST(Sampler, GreedyIsTheFirstMaximalIndex) {
  const std::vector<float> logits = {0.1f, 2.0f, 1.9f, -1.0f, 2.0f};
  EXPECT_EQ(Sampler({}).sample(logits), 1);  // like torch.argmax
  EXPECT_EQ(Sampler({.temperature = 1.0f, .top_k = 1, .seed = 7}).sample(logits), 1);
  EXPECT_EQ(Sampler({.temperature = 1.0f, .top_p = 1e-6f, .seed = 7}).sample(logits), 1);
}

TEST(Sampler, TemperatureDrawsFromTheScaledSoftmax) {
  const std::vector<double> cold = softmax(kLogits, 0.5), warm = softmax(kLogits, 1.0), hot = softmax(kLogits, 3.0);
  ASSERT_GT(separation(cold, warm), 4.0);
  ASSERT_GT(separation(hot, warm), 4.0);
  expect_distribution(frequencies({.temperature = 0.5f, .seed = 1}, kLogits), cold);
  expect_distribution(frequencies({.temperature = 1.0f, .seed = 2}, kLogits), warm);
  expect_distribution(frequencies({.temperature = 3.0f, .seed = 3}, kLogits), hot);
}

TEST(Sampler, TopKDrawsOnlyTheKLargest) {
  for (const int k : {1, 3, 5}) {
    const std::vector<double> p = softmax(kLogits, 1.5);
    std::vector<int> keep = ranked(p);
    keep.resize(k);
    const std::vector<double> want = restrict_to(p, keep);
    ASSERT_GT(separation(want, p), 4.0) << "k " << k;
    SCOPED_TRACE(::testing::Message() << "top_k " << k);
    expect_distribution(frequencies({.temperature = 1.5f, .top_k = k, .seed = 10u + k}, kLogits), want);
  }
}

TEST(Sampler, TopPDrawsOnlyTheNucleus) {
  // The nucleus is the smallest set of most likely ids whose mass reaches top_p, on the temperature-scaled
  // probabilities (HF: temperature, then top-k, then top-p). At temperature 0.7 and 2 the same top_p
  // keeps different sets.
  for (const float temperature : {0.7f, 2.0f}) {
    for (const float top_p : {0.5f, 0.8f, 0.95f}) {
      const std::vector<double> p = softmax(kLogits, temperature);
      const std::vector<int> order = ranked(p);
      std::vector<int> keep;
      double mass = 0.0;
      for (int id : order) {
        keep.push_back(id);
        mass += p[id];
        if (mass >= top_p) break;
      }
      // The cut must not be a near tie of the cumulative mass with top_p, or float rounding could move it.
      ASSERT_GT(mass - top_p, 1e-3);
      ASSERT_GT(top_p - (mass - p[keep.back()]), 1e-3);
      const std::vector<double> want = restrict_to(p, keep);
      SCOPED_TRACE(::testing::Message() << "temperature " << temperature << ", top_p " << top_p << ", nucleus "
                                        << keep.size());
      expect_distribution(frequencies({.temperature = temperature, .top_p = top_p, .seed = 20}, kLogits), want);
    }
  }
}

TEST(Sampler, TopKThenTopP) {
  // top-p renormalises over the k survivors: at T = 2 the 3 largest hold 0.59 of the mass; of that the
  // largest holds 0.39 and the first two 0.73, so top_p 0.6 keeps two (over all 8 ids it would keep four).
  const std::vector<double> p = softmax(kLogits, 2.0);
  std::vector<int> top3 = ranked(p);
  top3.resize(3);
  const std::vector<double> within = restrict_to(p, top3);
  const std::vector<int> top2(top3.begin(), top3.begin() + 2);
  ASSERT_GT(within[top2[0]] + within[top2[1]], 0.6 + 1e-3);
  ASSERT_LT(within[top2[0]], 0.6 - 1e-3);
  expect_distribution(frequencies({.temperature = 2.0f, .top_k = 3, .top_p = 0.6f, .seed = 30}, kLogits),
                      restrict_to(p, top2));
}

TEST(Sampler, SameSeedSameDraws) {
  Sampler a({.temperature = 1.0f, .top_k = 3, .seed = 42}), b({.temperature = 1.0f, .top_k = 3, .seed = 42});
  Sampler c({.temperature = 1.0f, .top_k = 3, .seed = 43});
  int differ = 0;
  for (int i = 0; i < 100; ++i) {
    const int32_t x = a.sample(kLogits);
    EXPECT_EQ(x, b.sample(kLogits));
    differ += x != c.sample(kLogits);
  }
  EXPECT_GT(differ, 0) << "another seed must give other draws";
}

}  // namespace
}  // namespace plm::model
