#include "plan/layout.h"

#include "absl/strings/str_cat.h"
#include "model/parallel.h"

namespace plm::plan {

namespace {

// An axis whose groups span `span` consecutive ranks stays in a node when the span fits and tiles it.
Link link_for_span(int axis_size, int span, int devices_per_node) {
  if (axis_size == 1) return Link::kNone;
  return span <= devices_per_node && devices_per_node % span == 0 ? Link::kIntraNode : Link::kInterNode;
}

}  // namespace

std::string Layout::to_string() const { return absl::StrCat("tp", tp, " pp", pp, " dp", dp); }

std::vector<Layout> all_layouts(int num_devices) {
  std::vector<Layout> layouts;
  for (int pp = 1; pp <= num_devices; ++pp) {
    for (int tp = 1; tp * pp <= num_devices; ++tp) {
      if (num_devices % (tp * pp) == 0) layouts.push_back({.tp = tp, .pp = pp, .dp = num_devices / (tp * pp)});
    }
  }
  return layouts;
}

absl::Status check_layout(const model::PlmConfig& config, const Layout& layout, int devices_per_node) {
  if (absl::Status s = model::validate_parallel_layout(config, layout.tp, layout.pp); !s.ok()) return s;
  if (devices_per_node % layout.tp != 0) {
    return absl::InvalidArgumentError(absl::StrCat("tp (", layout.tp, ") does not divide the ", devices_per_node,
                                                   " devices of a node: a TP group would straddle two nodes"));
  }
  return absl::OkStatus();
}

AxisLinks axis_links(const Layout& layout, int devices_per_node) {
  return {.tp = link_for_span(layout.tp, layout.tp, devices_per_node),
          .pp = link_for_span(layout.pp, layout.tp * layout.pp, devices_per_node),
          .dp = link_for_span(layout.dp, layout.num_devices(), devices_per_node)};
}

}  // namespace plm::plan
