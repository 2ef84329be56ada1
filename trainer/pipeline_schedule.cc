#include "trainer/pipeline_schedule.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/cpu_time.h"
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

std::vector<PipeAction> one_f_one_b_program(int stage, int num_stages, int num_micro) {
  const bool first = stage == 0, last = stage == num_stages - 1;
  const std::vector<PipeAction> actions = one_f_one_b(stage, num_stages, num_micro);
  std::vector<PipeAction> program;
  if (!first && num_micro > 0) program.push_back({PipeOp::kRecvActivation, 0});
  for (size_t i = 0; i < actions.size(); ++i) {
    const PipeAction a = actions[i];
    if (a.op == PipeOp::kForward) {
      if (!first && a.micro + 1 < num_micro) program.push_back({PipeOp::kRecvActivation, a.micro + 1});
      program.push_back(a);
      if (!last) program.push_back({PipeOp::kSendActivation, a.micro});
    } else {
      program.push_back(a);
      if (!first) program.push_back({PipeOp::kSendGradient, a.micro});
    }
    const bool backward_next = i + 1 < actions.size() && actions[i + 1].op == PipeOp::kBackward;
    if (backward_next && !last) program.push_back({PipeOp::kRecvGradient, actions[i + 1].micro});
  }
  return program;
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
  const int num_micro = static_cast<int>(micro_batches.size());
  const std::vector<PipeAction> program = one_f_one_b_program(stage, num_stages, num_micro);
  const int final_backward = num_micro - 1;  // 1F1B's backwards run in micro-batch order
  const int64_t hidden = model.config().text.hidden_size;
  std::vector<std::unique_ptr<model::StagePass>> passes(num_micro);  // the micro-batches in flight
  std::vector<double> compute_s(num_micro, 0.0);
  std::vector<size_t> forward_bytes(num_micro, 0);  // each pass's activations after its forward
  // The transfers in flight and the buffers the schedule owns for them: a forward's input arrives before its pass
  // exists, and a backward's input gradient leaves after its pass is gone (a copy, so the pass's arena goes at once).
  std::vector<OwnedTensor> activation_in(num_micro), gradient_out(num_micro);  // (T_m, H)
  std::vector<distributed::P2pRequest> activation_recv(num_micro), activation_send(num_micro),
      gradient_recv(num_micro), gradient_send(num_micro);
  PipelineStats stats;
  int in_flight = 0;
  size_t in_flight_bytes = 0;
  const auto timed_wait = [&](distributed::P2pRequest& request) {
    const Clock::time_point start = Clock::now();
    request.wait();
    stats.transfer_s += seconds_since(start);
  };
  for (const PipeAction& a : program) {
    const int m = a.micro;
    const int64_t tokens = static_cast<int64_t>(micro_batches[m].ids.size());
    const Clock::time_point start = Clock::now();
    switch (a.op) {
      case PipeOp::kRecvActivation:
        activation_in[m] = OwnedTensor({tokens, hidden}, model.dtype(), model.device());
        activation_recv[m] = pp.irecv(activation_in[m], stage - 1, kActivationTag, s);
        stats.transfer_s += seconds_since(start);
        break;
      case PipeOp::kRecvGradient:
        gradient_recv[m] = pp.irecv(passes[m]->output_grad(), stage + 1, kGradientTag, s);
        stats.transfer_s += seconds_since(start);
        break;
      case PipeOp::kSendActivation:
        activation_send[m] = pp.isend(passes[m]->input(), stage + 1, kActivationTag, s);
        stats.transfer_s += seconds_since(start);
        break;
      case PipeOp::kSendGradient:
        // One gradient send in flight: the previous one's buffer goes before this one's is filled.
        if (m > 0) {
          timed_wait(gradient_send[m - 1]);
          gradient_out[m - 1] = OwnedTensor();
        }
        gradient_out[m] = OwnedTensor({tokens, hidden}, model.dtype(), model.device());
        copy_tensor(gradient_out[m], passes[m]->output_grad(), s);
        passes[m].reset();
        gradient_send[m] = pp.isend(gradient_out[m], stage - 1, kGradientTag, s);
        stats.transfer_s += seconds_since(start);
        break;
      case PipeOp::kForward: {
        absl::StatusOr<std::unique_ptr<model::StagePass>> created =
            model::StagePass::create(model, micro_batches[m], options.recompute);
        PLM_CHECK(created.ok()) << "micro-batch " << m << " passed its check: " << created.status();
        std::unique_ptr<model::StagePass>& pass = passes[m] = std::move(*created);
        if (stage > 0) {  // the previous stage's output, received into the schedule's buffer
          timed_wait(activation_recv[m]);
          copy_tensor(pass->input(), activation_in[m], s);
          activation_in[m] = OwnedTensor();
        }
        const Clock::time_point compute_start = Clock::now();
        const double cpu_start = process_cpu_seconds();
        const absl::Status ran = pass->forward(s);
        PLM_CHECK(ran.ok()) << "micro-batch " << m << " passed its check: " << ran;
        const model::MicroBatchLoss& r = pass->result();
        stats.loss_sum += r.loss_sum;
        stats.vision_tiles += r.vision_tiles;
        stats.vision_passes += r.vision_tiles > 0;
        ++in_flight;
        forward_bytes[m] = r.arena_bytes;
        in_flight_bytes += r.arena_bytes;
        stats.peak_in_flight = std::max(stats.peak_in_flight, in_flight);
        stats.peak_in_flight_bytes = std::max(stats.peak_in_flight_bytes, in_flight_bytes);
        compute_s[m] += seconds_since(compute_start);
        stats.compute_cpu_s += process_cpu_seconds() - cpu_start;
        break;
      }
      case PipeOp::kBackward: {
        timed_wait(gradient_recv[m]);
        timed_wait(activation_send[m]);  // the pass's buffers are reused from here on
        const Clock::time_point compute_start = Clock::now();
        const double cpu_start = process_cpu_seconds();
        passes[m]->backward(grad, loss_scale, m == final_backward ? options.gradients_final : nullptr, s);
        --in_flight;
        in_flight_bytes -= forward_bytes[m];
        stats.peak_arena_bytes = std::max(stats.peak_arena_bytes, passes[m]->result().arena_bytes);
        if (stage == 0) passes[m].reset();  // nothing to send back
        compute_s[m] += seconds_since(compute_start);
        stats.compute_cpu_s += process_cpu_seconds() - cpu_start;
        break;
      }
    }
  }
  for (distributed::P2pRequest& send : gradient_send) timed_wait(send);
  for (size_t m = 0; m < micro_batches.size(); ++m) {
    const bool media = has_media(micro_batches[m]);
    (media ? stats.media_compute_s : stats.text_compute_s) += compute_s[m];
    ++(media ? stats.media_micro : stats.text_micro);
  }
  return stats;
}

}  // namespace plm::trainer
