#include "data/step_split.h"

#include <algorithm>
#include <numeric>

#include "core/check.h"

namespace plm::data {
namespace {

// LPT over `bins`: items (positions into costs) in decreasing cost, each to the least-loaded bin.
std::vector<std::vector<int>> longest_first(const std::vector<int>& items, const std::vector<double>& costs, int bins,
                                            std::vector<double>* load) {
  std::vector<int> order = items;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return costs[a] > costs[b]; });
  std::vector<std::vector<int>> out(static_cast<size_t>(bins));
  load->assign(static_cast<size_t>(bins), 0.0);
  for (int item : order) {
    const int bin = static_cast<int>(std::min_element(load->begin(), load->end()) - load->begin());  // first of equals
    out[bin].push_back(item);
    (*load)[bin] += costs[item];
  }
  for (std::vector<int>& bin : out) std::sort(bin.begin(), bin.end());
  return out;
}

}  // namespace

double sample_cost(const SampleExtent& extent, double tile_cost) {
  return static_cast<double>(extent.num_tokens) + tile_cost * static_cast<double>(extent.num_vision_tiles);
}

StepSplit split_step(const std::vector<double>& costs, int dp_size, int num_micro_batches) {
  PLM_CHECK(dp_size >= 1 && num_micro_batches >= 1) << dp_size << " ranks, " << num_micro_batches << " micro-batches";
  std::vector<int> all(costs.size());
  std::iota(all.begin(), all.end(), 0);  // sorted, so stable_sort breaks ties by position
  StepSplit split;
  const std::vector<std::vector<int>> per_rank = longest_first(all, costs, dp_size, &split.rank_cost);
  for (const std::vector<int>& samples : per_rank) {
    std::vector<double> micro_load;
    split.micro_batches.push_back(longest_first(samples, costs, num_micro_batches, &micro_load));
  }
  return split;
}

}  // namespace plm::data
