// The planner end to end on the PLM configs (configs/plm-*): PLM-8B on 16 x 80 GB and PLM-1B on one GPU get a
// fitting layout with a memory breakdown, overrides and an sbatch line; the ranking puts fitting layouts first,
// fastest first; the memory arithmetic of a ZeRO-1 data-parallel layout is the textbook one; a request that no
// layout can satisfy is an error with the numbers; serving plans size the KV cache.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "plan/plan_report.h"
#include "plan/planner.h"

namespace plm::plan {
namespace {

using ::testing::HasSubstr;

model::PlmConfig plm_config(const std::string& name) {
  absl::StatusOr<model::PlmConfig> config = model::load_plm_config(std::string(PLM_SOURCE_DIR) + "/configs/" + name);
  PLM_CHECK(config.ok()) << config.status();
  return *config;
}

PlanRequest h100_request(int gpus) {
  absl::StatusOr<Hardware> h100 = hardware_preset("h100");
  PLM_CHECK(h100.ok());
  return {.num_devices = gpus, .devices_per_node = 8, .hardware = *h100};
}

TEST(Planner, Plm8bOnSixteenGpusGetsAFittingLayoutWithItsBreakdown) {
  const model::PlmConfig config = plm_config("plm-8b");
  const PlanRequest request = h100_request(16);
  const absl::StatusOr<std::vector<LayoutPlan>> plans = plan_layouts(config, request);
  ASSERT_TRUE(plans.ok()) << plans.status();
  ASSERT_EQ(plans->size(), 15u);
  const LayoutPlan& best = plans->front();
  ASSERT_TRUE(best.valid.ok() && best.fits);
  EXPECT_LE(best.peak_bytes, request.hardware.memory_bytes);
  EXPECT_EQ(best.peak_bytes, best.memory.total());
  // Ranked: every fitting layout before the others, fastest first.
  for (size_t i = 1; i < plans->size(); ++i) {
    const LayoutPlan &a = (*plans)[i - 1], &b = (*plans)[i];
    if (a.fits && b.fits) {
      EXPECT_GE(a.tokens_per_s, b.tokens_per_s);
    }
    if (!a.fits) {
      EXPECT_FALSE(b.fits);
    }
  }
  const std::string text = plan_text(config, request, "configs/plm-8b", *plans, 8);
  for (const char* line : {"best: ", "weights", "gradients", "optimizer", "activations", "total", "overrides: layout.tp=",
                           "sbatch -N 2 --ntasks-per-node=8 --gpus-per-task=1 slurm/finetune.sbatch", "ranking:"}) {
    EXPECT_THAT(text, HasSubstr(line));
  }
  const nlohmann::ordered_json json = plan_json(config, request, "configs/plm-8b", *plans);
  EXPECT_EQ(json["best"], 0);
  EXPECT_EQ(json["layouts"].size(), 15u);
  EXPECT_EQ(json["layouts"][0]["memory"]["total"], best.peak_bytes);
}

TEST(Planner, ZeroOneDataParallelMemoryIsTheTextbookArithmetic) {
  // PLM-1B, tp = pp = 1, dp = 8, ZeRO-1: 2 + 2 bytes of bf16 weights and gradients per parameter, and
  // 12 / 8 bytes of the f32 master and moments (spec/anchors_training.md §2.7: llm.c's 4 + 12 / d).
  const model::PlmConfig config = plm_config("plm-1b");
  PlanRequest request = h100_request(8);
  request.only_tp = 1;
  request.only_pp = 1;
  const absl::StatusOr<std::vector<LayoutPlan>> plans = plan_layouts(config, request);
  ASSERT_TRUE(plans.ok()) << plans.status();
  ASSERT_EQ(plans->size(), 1u);
  const int64_t n = model::count_parameters(config).total;
  const TrainingMemory& m = plans->front().memory;
  EXPECT_EQ(m.weights, 2 * n);
  EXPECT_EQ(m.gradients, 2 * n);
  EXPECT_EQ(m.optimizer, 12 * ((n + 7) / 8));
  EXPECT_EQ(plans->front().traffic.dp.payload.at("all_reduce"), 2 * n);
  EXPECT_EQ(plans->front().traffic.dp.payload.at("all_gather"), 2 * ((n + 7) / 8));
  EXPECT_DOUBLE_EQ(plans->front().traffic.dp.wire_bytes, 2.0 * 7.0 / 8.0 * 2.0 * n + 7.0 * 2.0 * ((n + 7) / 8));
}

TEST(Planner, Plm1bOnOneGpuFits) {
  const model::PlmConfig config = plm_config("plm-1b");
  const PlanRequest request = h100_request(1);
  const absl::StatusOr<std::vector<LayoutPlan>> plans = plan_layouts(config, request);
  ASSERT_TRUE(plans.ok()) << plans.status();
  ASSERT_EQ(plans->size(), 1u);
  EXPECT_TRUE(plans->front().fits);
  EXPECT_EQ(config_overrides(request, plans->front()),
            (std::vector<std::string>{"layout.tp=1", "layout.pp=1", "layout.dp=1", "layout.zero=1", "recompute=none",
                                      "batch.micro=1", "batch.global=1"}));
}

TEST(Planner, RecomputationIsTheCheapestThatFits) {
  // PLM-1B on one 32 GiB device at 8k tokens: 16 B per parameter of model state (24.5 GB) and the 2 GiB reserve
  // leave room for selective recomputation's activations (18.1 KiB per token and layer, model/recompute.h),
  // not for all of them (74.1 KiB).
  const model::PlmConfig config = plm_config("plm-1b");
  PlanRequest request = h100_request(1);
  request.hardware.memory_bytes = int64_t{32} << 30;
  request.seq_len = 8192;
  const absl::StatusOr<std::vector<LayoutPlan>> plans = plan_layouts(config, request);
  ASSERT_TRUE(plans.ok()) << plans.status();
  ASSERT_TRUE(plans->front().fits);
  EXPECT_EQ(plans->front().training.recompute, model::Recompute::kSelective);
  request.recompute = model::Recompute::kNone;
  const absl::StatusOr<std::vector<LayoutPlan>> forced = plan_layouts(config, request);
  ASSERT_TRUE(forced.ok());
  EXPECT_FALSE(forced->front().fits);
  EXPECT_THAT(plan_text(config, request, "configs/plm-1b", *forced, 8), HasSubstr("no layout fits"));
}

TEST(Planner, RejectsImpossibleRequestsWithTheNumbers) {
  const model::PlmConfig config = plm_config("plm-1b");
  PlanRequest request = h100_request(12);
  EXPECT_THAT(std::string(plan_layouts(config, request).status().message()),
              HasSubstr("--gpus (12) is not a whole number of nodes of 8"));
  request = h100_request(1);
  request.seq_len = 100;
  request.tiles_per_sample = 1;
  EXPECT_THAT(std::string(plan_layouts(config, request).status().message()),
              HasSubstr("--seq-len (100) leaves no text after 1 tile(s) x 256 placeholders"));
  request = h100_request(8);
  request.global_batch = 12;
  const absl::StatusOr<std::vector<LayoutPlan>> plans = plan_layouts(config, request);
  ASSERT_TRUE(plans.ok());
  for (const LayoutPlan& p : *plans) {
    if (p.layout.dp == 8) {
      EXPECT_THAT(std::string(p.valid.message()), HasSubstr("global batch (12) is not a multiple"));
    }
  }
}

TEST(Planner, ServingPlansSizeTheKvCache) {
  const model::PlmConfig config = plm_config("plm-8b");
  PlanRequest request = h100_request(8);
  request.task = Task::kServe;
  request.micro_batch = 64;
  request.seq_len = 8192;
  const absl::StatusOr<std::vector<LayoutPlan>> plans = plan_layouts(config, request);
  ASSERT_TRUE(plans.ok()) << plans.status();
  const LayoutPlan& best = plans->front();
  ASSERT_TRUE(best.fits);
  // Llama 3.1 8B: K and V of 8 heads x 128 in bf16 over 32 layers = 128 KiB per token, split over TP and PP.
  const int kv_split = std::min(best.layout.tp, 8) * best.layout.pp;
  EXPECT_EQ(best.serving_memory.kv_bytes_per_token, 128 * 1024 / kv_split);
  EXPECT_GE(best.kv_cache_budget, best.serving_memory.kv_cache);
  EXPECT_THAT(sbatch_line(request, "/models/plm-8b", best), HasSubstr("slurm/serve.sbatch /models/plm-8b --device cuda"));
}

}  // namespace
}  // namespace plm::plan
