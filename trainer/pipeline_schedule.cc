#include "trainer/pipeline_schedule.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "distributed/status_agreement.h"
#include "model/stage_pass.h"

namespace plm::trainer {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

bool has_media(const model::TrainingBatch& b) {
  return (b.image_pixels.defined() && b.image_pixels.size(0) > 0) ||
         (b.video_pixels.defined() && b.video_pixels.size(0) > 0);
}

// A transfer to or from a neighbouring stage; none when `t` is undefined.
struct Transfer {
  Tensor t;
  int peer = 0;
  int tag = 0;
  explicit operator bool() const { return t.defined(); }
};

}  // namespace

std::vector<PipeAction> one_f_one_b(int stage, int num_stages, int num_micro) {
  PLM_CHECK(stage >= 0 && stage < num_stages && num_micro >= 0) << "stage " << stage << " of " << num_stages;
  std::vector<PipeAction> actions;
  int forwards = 0, backwards = 0;
  // Warmup: fill the pipeline below this stage.
  for (const int warmup = std::min(num_stages - stage - 1, num_micro); forwards < warmup;) {
    actions.push_back({PipeOp::kForward, forwards++});
  }
  // Steady state: one forward, one backward.
  while (forwards < num_micro) {
    actions.push_back({PipeOp::kForward, forwards++});
    actions.push_back({PipeOp::kBackward, backwards++});
  }
  // Cooldown: drain the backwards still in flight.
  while (backwards < num_micro) actions.push_back({PipeOp::kBackward, backwards++});
  return actions;
}

absl::StatusOr<PipelineStats> run_one_f_one_b(const model::PlmModel& model, const model::PlmWeights& grad,
                                              const std::vector<model::TrainingBatch>& micro_batches,
                                              float loss_scale, distributed::Communicator& pp,
                                              const PipelineOptions& options, Stream s) {
  const model::ModelParallel& parallel = model.parallel();
  PLM_CHECK(pp.size() == parallel.pp_size() && pp.rank() == parallel.pp_rank())
      << "pipeline group of " << pp.size() << " ranks, the model's stage " << parallel.pp_rank() << " of "
      << parallel.pp_size();
  absl::Status checked;
  for (size_t m = 0; m < micro_batches.size() && checked.ok(); ++m) {
    const absl::Status c = model::StagePass::check(model, micro_batches[m]);
    if (!c.ok()) checked = absl::Status(c.code(), absl::StrCat("micro-batch ", m, ": ", c.message()));
  }
  if (pp.size() > 1) checked = distributed::agree_on_status(pp, checked, "pipeline stage", model.device(), s);
  PLM_RETURN_IF_ERROR(checked);

  const int stage = pp.rank(), num_stages = pp.size();
  const bool first = stage == 0, last = stage == num_stages - 1;
  const std::vector<PipeAction> actions = one_f_one_b(stage, num_stages, static_cast<int>(micro_batches.size()));
  std::vector<std::unique_ptr<model::StagePass>> passes(micro_batches.size());  // the micro-batches in flight
  std::vector<double> compute_s(micro_batches.size(), 0.0);
  std::vector<size_t> forward_bytes(micro_batches.size(), 0);  // each pass's activations after its forward
  std::unique_ptr<model::StagePass> sending;  // a finished pass whose input gradient is still to be sent
  Transfer outgoing;
  PipelineStats stats;
  int in_flight = 0;
  size_t in_flight_bytes = 0;
  for (size_t i = 0; i < actions.size(); ++i) {
    const PipeAction& a = actions[i];
    const bool forward = a.op == PipeOp::kForward;
    std::unique_ptr<model::StagePass>& pass = passes[a.micro];
    if (forward) {
      absl::StatusOr<std::unique_ptr<model::StagePass>> created =
          model::StagePass::create(model, micro_batches[a.micro], options.recompute);
      PLM_CHECK(created.ok()) << "micro-batch " << a.micro << " passed its check: " << created.status();
      pass = std::move(*created);
    }
    // This action's input: the previous stage's output, or the next stage's gradient of this stage's output.
    Transfer incoming;
    if (forward && !first) incoming = Transfer{pass->input(), stage - 1, kActivationTag};
    if (!forward && !last) incoming = Transfer{pass->output_grad(), stage + 1, kGradientTag};
    const Clock::time_point transfer_start = Clock::now();
    if (outgoing && incoming && outgoing.peer == incoming.peer) {
      pp.send_recv(outgoing.t, outgoing.tag, incoming.t, incoming.tag, incoming.peer, s);
    } else {
      if (outgoing) pp.send(outgoing.t, outgoing.peer, outgoing.tag, s);
      if (incoming) pp.recv(incoming.t, incoming.peer, incoming.tag, s);
    }
    stats.transfer_s += seconds_since(transfer_start);
    outgoing = {};
    sending.reset();

    const Clock::time_point compute_start = Clock::now();
    if (forward) {
      const absl::Status ran = pass->forward(s);
      PLM_CHECK(ran.ok()) << "micro-batch " << a.micro << " passed its check: " << ran;
      const model::MicroBatchLoss& r = pass->result();
      stats.loss_sum += r.loss_sum;
      stats.vision_tiles += r.vision_tiles;
      stats.vision_passes += r.vision_tiles > 0;
      ++in_flight;
      forward_bytes[a.micro] = r.arena_bytes;
      in_flight_bytes += r.arena_bytes;
      stats.peak_in_flight = std::max(stats.peak_in_flight, in_flight);
      stats.peak_in_flight_bytes = std::max(stats.peak_in_flight_bytes, in_flight_bytes);
      if (!last) outgoing = Transfer{pass->input(), stage + 1, kActivationTag};
    } else {
      const bool final_action = i + 1 == actions.size();
      pass->backward(grad, loss_scale, final_action ? options.gradients_final : nullptr, s);
      --in_flight;
      in_flight_bytes -= forward_bytes[a.micro];
      stats.peak_arena_bytes = std::max(stats.peak_arena_bytes, pass->result().arena_bytes);
      if (!first) outgoing = Transfer{pass->output_grad(), stage - 1, kGradientTag};
      sending = std::move(pass);
    }
    compute_s[a.micro] += seconds_since(compute_start);
  }
  const Clock::time_point transfer_start = Clock::now();
  if (outgoing) pp.send(outgoing.t, outgoing.peer, outgoing.tag, s);
  stats.transfer_s += seconds_since(transfer_start);
  for (size_t m = 0; m < micro_batches.size(); ++m) {
    const bool media = has_media(micro_batches[m]);
    (media ? stats.media_compute_s : stats.text_compute_s) += compute_s[m];
    ++(media ? stats.media_micro : stats.text_micro);
  }
  return stats;
}

}  // namespace plm::trainer
