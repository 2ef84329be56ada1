#include "trainer/train_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/model/model_test_util.h"

namespace plm::trainer {
namespace {

using ::plm::model::testing::FailsWith;
using ::plm::model::testing::fresh_temp_dir;
using ::plm::model::testing::write_file;

constexpr const char* kMinimal = R"(
model: models/tiny
data:
  train: data/sft.jsonl
steps: 20
output_dir: runs/tiny
)";

absl::StatusOr<TrainConfig> parse(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  return parse_train_config_text(yaml, "run.yaml", overrides);
}

TEST(TrainConfig, DefaultsAndRelativePathsResolveAgainstTheCurrentDirectory) {
  const absl::StatusOr<TrainConfig> config = parse(kMinimal);
  ASSERT_TRUE(config.ok()) << config.status();
  const std::filesystem::path cwd = std::filesystem::current_path();
  EXPECT_EQ(config->model, cwd / "models/tiny");
  EXPECT_EQ(config->data.train, cwd / "data/sft.jsonl");
  EXPECT_EQ(config->output_dir, cwd / "runs/tiny");
  EXPECT_EQ(config->steps, 20);
  EXPECT_TRUE(config->data.shuffle);
  EXPECT_FALSE(config->data.num_frames.has_value());
  EXPECT_EQ(config->data.labels, LabelMode::kAssistant);
  EXPECT_EQ(config->seed, 42u);
  EXPECT_FALSE(config->batch.global.has_value());
  EXPECT_EQ(config->batch.micro, 1);
  EXPECT_DOUBLE_EQ(config->optimizer.lr, 5e-5);
  EXPECT_EQ(config->optimizer.betas, (std::array<double, 2>{0.9, 0.999}));
  EXPECT_EQ(config->schedule.name, ScheduleName::kLinear);
  EXPECT_FALSE(config->layout.dp.has_value());
  EXPECT_EQ(config->lora.rank, 0);
  EXPECT_EQ(config->lora.targets, (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_EQ(config->device, DeviceType::kCpu);
  EXPECT_EQ(config->recompute, Recompute::kNone);
  EXPECT_EQ(config->dtype, DType::kF32);
  EXPECT_EQ(config->where("steps"), "run.yaml:5");
  EXPECT_EQ(config->where("seed"), "run.yaml (default)");
}

TEST(TrainConfig, EveryKeyParses) {
  const std::string yaml = R"(
model: /abs/model
data: {train: /abs/sft.h5, shuffle: false, num_frames: 8, labels: all_but_media}
seed: 7
steps: 100
batch: {global: 32, micro: 2}
optimizer: {lr: 2.0e-5, betas: [0.9, 0.95], eps: 1.0e-6, weight_decay: 0.1, grad_clip: 0.5}
schedule: {name: wsd, warmup_steps: 10, min_lr: 1.0e-6, decay_steps: 20}
layout: {tp: 1, pp: 1, dp: 4, zero: 2}
freeze: {vision: true, projector: false, llm: true}
lora: {rank: 16, alpha: 32, dropout: 0.05, targets: [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj], dora: true}
device: cuda
output_dir: /abs/out
checkpoint: {every: 50, keep: 3}
log_every: 5
resume: true
recompute: selective
)";
  const absl::StatusOr<TrainConfig> c = parse(yaml);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model, "/abs/model");
  EXPECT_EQ(c->data.train, "/abs/sft.h5");
  EXPECT_FALSE(c->data.shuffle);
  EXPECT_EQ(c->data.num_frames, 8);
  EXPECT_EQ(c->data.labels, LabelMode::kAllButMedia);
  EXPECT_EQ(c->seed, 7u);
  EXPECT_EQ(c->steps, 100);
  EXPECT_EQ(c->batch.global, 32);
  EXPECT_EQ(c->batch.micro, 2);
  EXPECT_DOUBLE_EQ(c->optimizer.lr, 2e-5);
  EXPECT_EQ(c->optimizer.betas, (std::array<double, 2>{0.9, 0.95}));
  EXPECT_DOUBLE_EQ(c->optimizer.eps, 1e-6);
  EXPECT_DOUBLE_EQ(c->optimizer.weight_decay, 0.1);
  EXPECT_DOUBLE_EQ(c->optimizer.grad_clip, 0.5);
  EXPECT_EQ(c->schedule.name, ScheduleName::kWsd);
  EXPECT_EQ(c->schedule.warmup_steps, 10);
  EXPECT_DOUBLE_EQ(c->schedule.min_lr, 1e-6);
  EXPECT_EQ(c->schedule.decay_steps, 20);
  EXPECT_EQ(c->layout.dp, 4);
  EXPECT_EQ(c->layout.zero, 2);
  EXPECT_TRUE(c->freeze.vision);
  EXPECT_FALSE(c->freeze.projector);
  EXPECT_TRUE(c->freeze.llm);
  EXPECT_EQ(c->lora.rank, 16);
  EXPECT_DOUBLE_EQ(c->lora.alpha, 32);
  EXPECT_DOUBLE_EQ(c->lora.dropout, 0.05);
  EXPECT_EQ(c->lora.targets.size(), 7u);
  EXPECT_TRUE(c->lora.dora);
  EXPECT_EQ(c->device, DeviceType::kCuda);
  EXPECT_EQ(c->checkpoint.every, 50);
  EXPECT_EQ(c->checkpoint.keep, 3);
  EXPECT_EQ(c->log_every, 5);
  EXPECT_TRUE(c->resume);
  EXPECT_EQ(c->recompute, Recompute::kSelective);

  const LrSchedule schedule = c->lr_schedule();
  EXPECT_EQ(schedule.name, ScheduleName::kWsd);
  EXPECT_EQ(schedule.total_steps, 100);
  EXPECT_EQ(schedule.decay_steps, 20);
}

TEST(TrainConfig, OverridesUseYamlTypesAndWinOverTheFile) {
  const absl::StatusOr<TrainConfig> c =
      parse(kMinimal, {"optimizer.lr=3e-4", "optimizer.betas=[0.8, 0.9]", "data.shuffle=false", "steps=7",
                       "lora.targets=[up_proj]", "output_dir=elsewhere", "steps=9", "dtype=bf16"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->dtype, DType::kBF16);
  EXPECT_DOUBLE_EQ(c->optimizer.lr, 3e-4);
  EXPECT_EQ(c->optimizer.betas, (std::array<double, 2>{0.8, 0.9}));
  EXPECT_FALSE(c->data.shuffle);
  EXPECT_EQ(c->steps, 9);  // the later override wins
  EXPECT_EQ(c->lora.targets, std::vector<std::string>{"up_proj"});
  EXPECT_EQ(c->output_dir, std::filesystem::current_path() / "elsewhere");
  EXPECT_EQ(c->where("steps"), "override 'steps=9'");
}

TEST(TrainConfig, ReadsTheFileAndNamesItInErrors) {
  const std::filesystem::path path = fresh_temp_dir() / "run.yaml";
  write_file(path, std::string(kMinimal) + "optimizer:\n  lr: fast\n");
  EXPECT_THAT(parse_train_config(path, {}), FailsWith(path.string() + ":8", "optimizer.lr", "'fast'"));
  EXPECT_TRUE(parse_train_config(path, {"optimizer.lr=1e-4"}).ok());
  EXPECT_THAT(parse_train_config(path.string() + ".missing", {}), FailsWith("run.yaml.missing"));
}

TEST(TrainConfig, UnknownKeysAreErrorsNamingTheKey) {
  EXPECT_THAT(parse(std::string(kMinimal) + "optimizer:\n  learning_rate: 1\n"),
              FailsWith("run.yaml:8", "unknown key 'optimizer.learning_rate'", "optimizer.lr"));
  EXPECT_THAT(parse(std::string(kMinimal) + "epochs: 3\n"), FailsWith("run.yaml:7", "unknown key 'epochs'"));
  EXPECT_THAT(parse(kMinimal, {"optimizer.lr.x=1"}), FailsWith("override 'optimizer.lr.x=1'", "unknown key"));
  EXPECT_THAT(parse(kMinimal, {"lr=1"}), FailsWith("unknown key 'lr'"));
  EXPECT_THAT(parse(kMinimal, {"steps"}), FailsWith("override 'steps'", "key.sub=value"));
  EXPECT_THAT(parse(std::string(kMinimal) + "layout: 4\n"), FailsWith("run.yaml:7", "layout", "mapping"));
}

TEST(TrainConfig, WrongTypesAreErrorsNamingTheKey) {
  EXPECT_THAT(parse(kMinimal, {"steps=2.5"}), FailsWith("override 'steps=2.5'", "steps", "integer"));
  EXPECT_THAT(parse(kMinimal, {"steps=\"20\""}), FailsWith("steps", "integer", "the string \"20\""));
  EXPECT_THAT(parse(kMinimal, {"data.shuffle=maybe"}), FailsWith("data.shuffle", "true or false"));
  EXPECT_THAT(parse(kMinimal, {"optimizer.betas=[0.9]"}), FailsWith("optimizer.betas", "list of 2"));
  EXPECT_THAT(parse(kMinimal, {"optimizer.lr=.nan"}), FailsWith("optimizer.lr", "finite number"));
  EXPECT_THAT(parse(kMinimal, {"schedule.name=step"}),
              FailsWith("schedule.name", "constant | cosine | linear | wsd", "'step'"));
  EXPECT_THAT(parse(kMinimal, {"device=tpu"}), FailsWith("device", "cpu | cuda"));
  EXPECT_THAT(parse(kMinimal, {"recompute=some"}), FailsWith("recompute", "none | selective | full"));
  EXPECT_THAT(parse(kMinimal, {"dtype=f16"}), FailsWith("dtype", "f32 | bf16", "'f16'"));
  EXPECT_THAT(parse(kMinimal, {"data.labels=user"}), FailsWith("data.labels", "assistant | all_but_media"));
  EXPECT_THAT(parse(kMinimal, {"lora.targets=q_proj"}), FailsWith("lora.targets", "a list"));
  EXPECT_THAT(parse(kMinimal, {"seed=-1"}), FailsWith("seed", "integer"));
  EXPECT_THAT(parse(kMinimal, {"layout.tp=99999999999"}), FailsWith("layout.tp", "integer"));
  EXPECT_THAT(parse(kMinimal, {"model=[a, b]"}), FailsWith("model", "a path", "a list"));
  EXPECT_THAT(parse("model: [unclosed\n"), FailsWith("run.yaml:", "malformed YAML"));
  EXPECT_THAT(parse("- a\n- b\n"), FailsWith("run.yaml", "mapping"));
}

TEST(TrainConfig, OutOfRangeValuesAreErrorsNamingTheKey) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"steps=0", "steps"},
      {"batch.micro=0", "batch.micro"},
      {"batch.global=0", "batch.global"},
      {"data.num_frames=0", "data.num_frames"},
      {"optimizer.lr=0", "optimizer.lr"},
      {"optimizer.betas=[0.9, 1.0]", "optimizer.betas"},
      {"optimizer.eps=0", "optimizer.eps"},
      {"optimizer.weight_decay=-0.1", "optimizer.weight_decay"},
      {"optimizer.grad_clip=-1", "optimizer.grad_clip"},
      {"schedule.warmup_steps=21", "schedule.warmup_steps"},
      {"schedule.min_lr=1", "schedule.min_lr"},
      {"schedule.decay_steps=5", "schedule.decay_steps"},  // not wsd
      {"layout.tp=0", "layout.tp"},
      {"layout.pp=0", "layout.pp"},
      {"layout.dp=0", "layout.dp"},
      {"layout.pp_layers=[1, 1]", "layout.pp_layers"},  // 2 counts for layout.pp 1
      {"layout.pp_layers=[-1]", "layout.pp_layers"},
      {"layout.pp_layers=2", "layout.pp_layers"},  // not a list
      {"layout.zero=3", "layout.zero"},
      {"lora.rank=-1", "lora.rank"},
      {"lora.alpha=0", "lora.alpha"},
      {"lora.dropout=1", "lora.dropout"},
      {"lora.targets=[]", "lora.targets"},
      {"lora.targets=[qkv_proj]", "lora.targets"},
      {"lora.targets=[q_proj, q_proj]", "lora.targets"},
      {"lora.dora=true", "lora.dora"},
      {"checkpoint.every=-1", "checkpoint.every"},
      {"checkpoint.keep=-1", "checkpoint.keep"},
      {"log_every=0", "log_every"},
  };
  for (const auto& [override_text, key] : cases) {
    EXPECT_THAT(parse(kMinimal, {override_text}), FailsWith("override '" + override_text + "'", key + ": "))
        << override_text;
  }
  EXPECT_THAT(parse("data: {train: a}\nsteps: 1\noutput_dir: o\n"), FailsWith("run.yaml: model is required"));
  EXPECT_THAT(parse("model: m\nsteps: 1\noutput_dir: o\n"), FailsWith("data.train", "required"));
  EXPECT_THAT(parse("model: m\ndata: {train: a}\nsteps: 1\n"), FailsWith("output_dir", "required"));
  EXPECT_THAT(parse("model: m\ndata: {train: a}\noutput_dir: o\n"), FailsWith("steps", "required"));
  EXPECT_THAT(parse(kMinimal, {"schedule.name=wsd"}), FailsWith("run.yaml: schedule.decay_steps is required", "wsd"));
  EXPECT_THAT(parse(kMinimal, {"schedule.name=wsd", "schedule.warmup_steps=5", "schedule.decay_steps=16"}),
              FailsWith("schedule.decay_steps", "[1, steps - schedule.warmup_steps = 20 - 5 = 15]"));
  EXPECT_THAT(parse(kMinimal, {"freeze.vision=true", "freeze.projector=true", "freeze.llm=true"}),
              FailsWith("nothing would be trained"));
  EXPECT_TRUE(parse(kMinimal, {"freeze.vision=true", "freeze.projector=true", "freeze.llm=true", "lora.rank=8"}).ok());
  EXPECT_TRUE(parse(kMinimal, {"optimizer.grad_clip=0"}).ok());  // 0: no clipping
  EXPECT_TRUE(parse(kMinimal, {"schedule.warmup_steps=20"}).ok());
  EXPECT_TRUE(parse(kMinimal, {"layout.pp=2", "layout.pp_layers=[3, 0]"}).ok());
}

TEST(TrainConfig, NullValuesKeepTheDefault) {
  const absl::StatusOr<TrainConfig> c = parse(std::string(kMinimal) + "seed:\nbatch:\n", {"data.num_frames="});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->seed, 42u);
  EXPECT_FALSE(c->data.num_frames.has_value());
}

TEST(ValidateLayout, ResolvesDpAndAccumulation) {
  const absl::StatusOr<TrainConfig> c = parse(kMinimal, {"batch.global=16", "batch.micro=2"});
  ASSERT_TRUE(c.ok()) << c.status();
  const absl::StatusOr<TrainLayout> layout = validate_layout(*c, 4);
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->dims.dp, 4);
  EXPECT_EQ(layout->dims.tp, 1);
  EXPECT_EQ(layout->global_batch, 16);
  EXPECT_EQ(layout->micro_batch, 2);
  EXPECT_EQ(layout->accumulation_steps, 2);

  const absl::StatusOr<TrainConfig> no_global = parse(kMinimal, {"batch.micro=3"});
  ASSERT_TRUE(no_global.ok());
  const absl::StatusOr<TrainLayout> defaulted = validate_layout(*no_global, 2);
  ASSERT_TRUE(defaulted.ok()) << defaulted.status();
  EXPECT_EQ(defaulted->global_batch, 6);
  EXPECT_EQ(defaulted->accumulation_steps, 1);
}

TEST(ValidateLayout, LayoutsThatDoNotFitNameKeyAndArithmetic) {
  const absl::StatusOr<TrainConfig> dp3 = parse(kMinimal, {"layout.dp=3"});
  ASSERT_TRUE(dp3.ok());
  EXPECT_THAT(validate_layout(*dp3, 4),
              FailsWith("override 'layout.dp=3'", "layout.dp", "layout.pp(1) * layout.dp(3) = 3 != world size (4)"));
  EXPECT_TRUE(validate_layout(*dp3, 3).ok());

  const absl::StatusOr<TrainConfig> batch = parse(kMinimal, {"batch.global=10", "batch.micro=2"});
  ASSERT_TRUE(batch.ok());
  EXPECT_THAT(validate_layout(*batch, 4),
              FailsWith("batch.global", "10 is not divisible by batch.micro(2) * dp(4) = 8"));

  const absl::StatusOr<TrainConfig> tp2 = parse(kMinimal, {"layout.tp=2", "layout.zero=2"});
  ASSERT_TRUE(tp2.ok());
  const absl::StatusOr<TrainLayout> tp2_dp2 = validate_layout(*tp2, 4);
  ASSERT_TRUE(tp2_dp2.ok()) << tp2_dp2.status();
  EXPECT_EQ(tp2_dp2->dims.tp, 2);
  EXPECT_EQ(tp2_dp2->dims.dp, 2);
  EXPECT_THAT(validate_layout(*tp2, 3), FailsWith("layout.tp", "world size (3) is not divisible by layout.tp(2)"));
  const absl::StatusOr<TrainConfig> tp2_lora = parse(kMinimal, {"layout.tp=2", "lora.rank=4"});
  ASSERT_TRUE(tp2_lora.ok());
  EXPECT_THAT(validate_layout(*tp2_lora, 2), FailsWith("lora.rank", "layout.tp 1 and layout.pp 1 only"));
  const absl::StatusOr<TrainConfig> pp2 = parse(std::string(kMinimal) + "layout:\n  pp: 2\n");
  ASSERT_TRUE(pp2.ok());
  const absl::StatusOr<TrainLayout> pp2_dp2 = validate_layout(*pp2, 4);
  ASSERT_TRUE(pp2_dp2.ok()) << pp2_dp2.status();
  EXPECT_EQ(pp2_dp2->dims.pp, 2);
  EXPECT_EQ(pp2_dp2->dims.dp, 2);
  EXPECT_THAT(validate_layout(*pp2, 3),
              FailsWith("layout.tp", "world size (3) is not divisible by layout.tp(1) * layout.pp(2) = 2"));
}

}  // namespace
}  // namespace plm::trainer
