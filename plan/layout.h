// Layout: one TP x PP x DP decomposition of a job in Megatron order (distributed/parallel_dims.h: TP the
// fastest-varying, so a TP group is adjacent ranks of one node), checked against the model's divisibility rules
// and the node size before anything is estimated, and which link each axis's collectives cross.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "model/config.h"

namespace plm::plan {

struct Layout {
  int tp = 1;
  int pp = 1;
  int dp = 1;

  int num_devices() const { return tp * pp * dp; }
  std::string to_string() const;  // "tp2 pp1 dp8"
};

// Every tp x pp x dp == num_devices, tp fastest-growing.
std::vector<Layout> all_layouts(int num_devices);

// OK, or InvalidArgument with the arithmetic: the model must split (model::validate_parallel_layout: heads,
// KV heads, MLP width and vocabulary over tp; at least one decoder layer per stage) and a TP group must not
// straddle nodes (devices_per_node divisible by tp).
absl::Status check_layout(const model::PlmConfig& config, const Layout& layout, int devices_per_node);

// The link an axis's traffic crosses: none for a size-1 axis, the node's interconnect while every group of
// the axis lies in one node, else the network between nodes (the slowest hop paces a ring).
enum class Link { kNone, kIntraNode, kInterNode };

struct AxisLinks {
  Link tp = Link::kNone;
  Link pp = Link::kNone;
  Link dp = Link::kNone;
};

AxisLinks axis_links(const Layout& layout, int devices_per_node);

}  // namespace plm::plan
