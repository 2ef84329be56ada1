#include "plan/communication_model.h"

#include "trainer/adamw_zero.h"

namespace plm::plan {

namespace {

constexpr int64_t kF32 = 4, kI32 = 4;

void add(Payload& payload, const std::string& op, int64_t bytes) {
  if (bytes > 0) payload[op] += bytes;
}

AxisTraffic axis(Payload payload, int group_size) {
  if (group_size == 1) return {};
  AxisTraffic a{.payload = std::move(payload)};
  a.wire_bytes = wire_bytes(a.payload, group_size);
  return a;
}

// Forward all-reduces of the blocks a stage runs, each of its (tokens, width) output: 2 per decoder layer
// (+ the vocab-parallel embedding's on the first stage) and 2 per vision block when the tower splits.
int64_t forward_all_reduce_bytes(const model::PlmConfig& config, const StageParameters& stage, int tp,
                                 int64_t tokens, int64_t tiles, int64_t e) {
  const int64_t hidden_state = tokens * config.text.hidden_size * e;
  int64_t bytes = 2 * stage.num_layers * hidden_state + (stage.first_stage ? hidden_state : 0);
  if (stage.first_stage && tiles > 0 && vision_widths(config.vision, tp).tp > 1) {
    const model::VisionConfig& v = config.vision;
    bytes += 2 * int64_t{v.depth} * tiles * v.seq_len() * v.embed_dim * e;
  }
  return bytes;
}

}  // namespace

double wire_bytes(const Payload& payload, int group_size) {
  const double p = group_size;
  double wire = 0.0;
  for (const auto& [op, bytes] : payload) {
    const double b = static_cast<double>(bytes);
    if (op == "all_reduce") wire += 2.0 * (p - 1.0) / p * b;
    else if (op == "reduce_scatter") wire += (p - 1.0) / p * b;
    else if (op == "all_gather") wire += (p - 1.0) * b;
    else if (op == "send" || op == "broadcast") wire += b;  // "recv" arrives: it is the sender's traffic
  }
  return wire;
}

Traffic training_traffic(const model::PlmConfig& config, const TrainingSetup& setup, int stage) {
  const Layout& l = setup.layout;
  const int64_t e = static_cast<int64_t>(dtype_size(setup.dtype)), t = setup.micro_batch.tokens;
  const int64_t m = setup.num_micro_batches;
  const StageParameters p = stage_parameters(config, l.tp, l.pp, stage, training_stage_layers(config, l.pp));
  Traffic traffic;

  Payload dp;
  const int64_t gradients = p.total() * e;
  add(dp, setup.zero_stage == 2 ? "reduce_scatter" : "all_reduce", gradients);
  if (setup.zero_stage >= 1) add(dp, "all_gather", trainer::shard_range(p.total(), 0, l.dp).size() * e);  // rank 0's
  traffic.dp = axis(std::move(dp), l.dp);

  // TP: the forward's all-reduces, their conjugates in the backward, and again when full recomputation reruns
  // the forward; the last stage's head input gradient and vocab-parallel loss statistics.
  const int64_t forward = forward_all_reduce_bytes(config, p, l.tp, t, setup.micro_batch.tiles, e);
  const int64_t embedding = p.first_stage ? t * config.text.hidden_size * e : 0;  // its backward is the identity
  const int64_t passes = setup.recompute == model::Recompute::kFull ? 3 : 2;
  int64_t tp_bytes = passes * forward - (passes - 1) * embedding;
  if (p.last_stage) tp_bytes += t * config.text.hidden_size * e + 3 * t * kF32;
  Payload tp;
  add(tp, "all_reduce", m * tp_bytes);
  traffic.tp = axis(std::move(tp), l.tp);

  Payload pp;
  const int64_t hidden_state = t * config.text.hidden_size * e;
  add(pp, "send", m * ((p.last_stage ? 0 : hidden_state) + (p.first_stage ? 0 : hidden_state)));
  add(pp, "recv", m * ((p.first_stage ? 0 : hidden_state) + (p.last_stage ? 0 : hidden_state)));
  traffic.pp = axis(std::move(pp), l.pp);
  return traffic;
}

Traffic forward_traffic(const model::PlmConfig& config, int tp, int pp, int stage, int64_t tokens, int64_t rows,
                        int64_t tiles, DType dtype) {
  const int64_t e = static_cast<int64_t>(dtype_size(dtype));
  const StageParameters p = stage_parameters(config, tp, pp, stage);
  Traffic traffic;
  Payload tp_payload;
  add(tp_payload, "all_reduce", forward_all_reduce_bytes(config, p, tp, tokens, tiles, e));
  if (p.last_stage) add(tp_payload, "all_gather", rows * (config.text.vocab_size / tp) * e);
  traffic.tp = axis(std::move(tp_payload), tp);

  Payload pp_payload;
  const int64_t hidden_state = tokens * config.text.hidden_size * e;
  add(pp_payload, "all_reduce", kI32);
  if (!p.last_stage) add(pp_payload, "send", hidden_state);
  if (!p.first_stage) add(pp_payload, "recv", hidden_state);
  add(pp_payload, "broadcast", rows * config.text.vocab_size * kF32);
  traffic.pp = axis(std::move(pp_payload), pp);
  return traffic;
}

}  // namespace plm::plan
