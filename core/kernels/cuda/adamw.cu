// AdamW on CUDA over flat tensors, one thread per element: f32 master weights and moments updated in place,
// an f32 or bf16 gradient, and an optional f32 or bf16 working copy of the new weights. The order of
// operations follows torch.optim.AdamW, like the CPU oracle: decoupled decay, the moments (m by lerp), then
// master -= step_size * (m / denom), with the per-step scalars computed on the host in double.
#include <cmath>

#include "core/kernels/backends.h"
#include "core/kernels/cuda/cuda_common.cuh"

namespace plm::cuda {
namespace {

template <typename G, typename P>
struct AdamWUpdate {
  float* master;  // (N)
  float* m;       // (N)
  float* v;       // (N)
  const G* grad;  // (N)
  P* param_out;   // (N) or nullptr
  float decay;                  // 1 - lr * weight_decay
  float one_minus_beta1, beta2, one_minus_beta2;
  float step_size;              // lr / (1 - beta1^step)
  float bias_correction2_sqrt;  // sqrt(1 - beta2^step)
  float eps, grad_scale;
  __device__ void operator()(int64_t i) const {
    const float g = to_float(grad[i]) * grad_scale;
    const float m_new = m[i] + one_minus_beta1 * (g - m[i]);  // exp_avg.lerp_(grad, 1 - beta1)
    const float v_new = v[i] * beta2 + one_minus_beta2 * g * g;
    const float denom = sqrtf(v_new) / bias_correction2_sqrt + eps;
    const float weight = master[i] * decay - step_size * (m_new / denom);
    m[i] = m_new;
    v[i] = v_new;
    master[i] = weight;
    if (param_out != nullptr) param_out[i] = from_float<P>(weight);
  }
};

}  // namespace

void adamw_step(Tensor master, Tensor m, Tensor v, Tensor grad, Tensor param_out, const AdamWOptions& options,
                Stream s) {
  const char* op = "adamw_step";
  check_cuda_tensors(op, {master, m, v, grad, param_out});
  for (const Tensor& state : {master, m, v}) {
    check_dtype(op, state, DType::kF32);
    check_same_shape(op, state, grad);
  }
  if (param_out.defined()) check_same_shape(op, param_out, grad);
  PLM_CHECK(options.step >= 1) << op << ": step is 1-based, got " << options.step;
  // Scalars in double, rounded once, as torch does with its Python-float hyperparameters.
  const double lr = options.lr, beta1 = options.beta1, beta2 = options.beta2;
  const double step = static_cast<double>(options.step);
  const auto decay = static_cast<float>(1.0 - lr * options.weight_decay);
  const auto one_minus_beta1 = static_cast<float>(1.0 - beta1);
  const auto one_minus_beta2 = static_cast<float>(1.0 - beta2);
  const auto step_size = static_cast<float>(lr / (1.0 - std::pow(beta1, step)));
  const auto bias_correction2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(beta2, step)));
  // param_out's type is irrelevant when it is undefined: dispatch as f32 with a null pointer.
  const DType param_dtype = param_out.defined() ? param_out.dtype() : DType::kF32;
  dispatch_float(grad.dtype(), op, [&](auto grad_tag) {
    using G = typename decltype(grad_tag)::type;
    dispatch_float(param_dtype, op, [&](auto param_tag) {
      using P = typename decltype(param_tag)::type;
      const AdamWUpdate<G, P> update{
          data_ptr<float>(master), data_ptr<float>(m), data_ptr<float>(v), data_ptr<const G>(grad),
          data_ptr<P>(param_out), decay, one_minus_beta1, options.beta2, one_minus_beta2, step_size,
          bias_correction2_sqrt, options.eps, options.grad_scale};
      for_each_index(grad.numel(), update, s);
    });
  });
}

}  // namespace plm::cuda
