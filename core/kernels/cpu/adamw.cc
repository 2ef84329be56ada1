// CPU AdamW in torch.optim.AdamW's order: decoupled decay (master *= 1 - lr * wd) first, then the moments,
// then master += -step_size * (m / denom). Scalars are computed in double and rounded once, as torch does
// with its Python-float hyperparameters.
#include <cmath>

#include "core/kernels/backends.h"
#include "core/kernels/cpu/checks.h"
#include "core/kernels/cpu/parallel.h"

namespace plm::cpu {

namespace {

// Per-step scalars shared by every element.
struct AdamWScalars {
  float decay;  // 1 - lr * weight_decay
  float one_minus_beta1, beta2, one_minus_beta2;
  float step_size;              // lr / (1 - beta1^step)
  float bias_correction2_sqrt;  // sqrt(1 - beta2^step)
  float eps, grad_scale;
};

AdamWScalars adamw_scalars(const AdamWOptions& o) {
  const double lr = o.lr, beta1 = o.beta1, beta2 = o.beta2, step = static_cast<double>(o.step);
  return {static_cast<float>(1.0 - lr * o.weight_decay),
          static_cast<float>(1.0 - beta1),
          o.beta2,
          static_cast<float>(1.0 - beta2),
          static_cast<float>(lr / (1.0 - std::pow(beta1, step))),
          static_cast<float>(std::sqrt(1.0 - std::pow(beta2, step))),
          o.eps,
          o.grad_scale};
}

// param_out may be null.
template <typename Grad, typename Param>
void adamw_elements(const AdamWScalars& c, int64_t n, float* master, float* m, float* v, const Grad* grad,
                    Param* param_out) {
#pragma omp parallel for if (n >= kMinParallelWork)
  for (int64_t i = 0; i < n; ++i) {
    const float g = static_cast<float>(grad[i]) * c.grad_scale;
    master[i] *= c.decay;
    m[i] += c.one_minus_beta1 * (g - m[i]);  // exp_avg.lerp_(grad, 1 - beta1)
    v[i] = v[i] * c.beta2 + c.one_minus_beta2 * g * g;
    const float denom = std::sqrt(v[i]) / c.bias_correction2_sqrt + c.eps;
    master[i] += -c.step_size * (m[i] / denom);
    if (param_out) param_out[i] = Param(master[i]);
  }
}

template <typename Grad>
void adamw_with_grad(const AdamWScalars& c, Tensor master, Tensor m, Tensor v, Tensor grad, Tensor param_out) {
  float* const master_data = master.data_as<float>();
  float* const m_data = m.data_as<float>();
  float* const v_data = v.data_as<float>();
  const Grad* const grad_data = grad.data_as<Grad>();
  const int64_t n = master.numel();
  if (!param_out.defined()) {
    adamw_elements<Grad, float>(c, n, master_data, m_data, v_data, grad_data, nullptr);
  } else if (param_out.dtype() == DType::kBF16) {
    adamw_elements(c, n, master_data, m_data, v_data, grad_data, param_out.data_as<bf16>());
  } else {
    adamw_elements(c, n, master_data, m_data, v_data, grad_data, param_out.data_as<float>());
  }
}

void check_f32_or_bf16(const char* op, const char* name, const Tensor& t, const Shape& shape) {
  PLM_CHECK(t.defined() && (t.dtype() == DType::kF32 || t.dtype() == DType::kBF16))
      << op << ": " << name << " must be f32 or bf16, got " << t.describe();
  check_tensor(op, name, t, t.dtype());
  check_shape(op, name, t, shape);
}

}  // namespace

void adamw_step(Tensor master, Tensor m, Tensor v, Tensor grad, Tensor param_out, const AdamWOptions& options, Stream) {
  const char* op = "adamw_step";
  check_tensor(op, "master", master, DType::kF32);
  check_rank(op, "master (N)", master, 1);
  check_f32(op, "m", m, master.shape());
  check_f32(op, "v", v, master.shape());
  check_f32_or_bf16(op, "grad", grad, master.shape());
  if (param_out.defined()) check_f32_or_bf16(op, "param_out", param_out, master.shape());
  PLM_CHECK_GE(options.step, 1) << op << ": step is 1-based";

  const AdamWScalars scalars = adamw_scalars(options);
  if (grad.dtype() == DType::kBF16) {
    adamw_with_grad<bf16>(scalars, master, m, v, grad, param_out);
  } else {
    adamw_with_grad<float>(scalars, master, m, v, grad, param_out);
  }
}

}  // namespace plm::cpu
