// plm::cpu::layernorm_forward/backward against a double-precision reference and finite differences, the
// optional statistics (inference), and the parameter-grad accumulation rule (dw, db +=).
#include <cmath>
#include <string>
#include <vector>

#include "core/kernels/backends.h"
#include "tests/core/kernels/reference_check.h"
#include "tests/core/test_util.h"

namespace plm {
namespace {

using testing::close_to_reference;
using testing::random_tensor;
using testing::to_doubles;

constexpr float kEps = 1e-5f;

struct Reference {
  std::vector<double> y, mean, rstd, dx, dw, db;
};

// Forward and backward of y = (x - mean) * rstd * w + b in double; dw, db are the gradients alone.
Reference reference(Tensor x, Tensor w, Tensor b, Tensor dy) {
  const int64_t num_rows = x.size(0), dim = x.size(1);
  const std::vector<double> xv = to_doubles(x), wv = to_doubles(w), bv = to_doubles(b), g = to_doubles(dy);
  Reference ref{std::vector<double>(xv.size()), std::vector<double>(num_rows), std::vector<double>(num_rows),
                std::vector<double>(xv.size()), std::vector<double>(dim), std::vector<double>(dim)};
  for (int64_t n = 0; n < num_rows; ++n) {
    const double* xr = xv.data() + n * dim;
    const double* gr = g.data() + n * dim;
    double mu = 0.0, var = 0.0;
    for (int64_t d = 0; d < dim; ++d) mu += xr[d] / dim;
    for (int64_t d = 0; d < dim; ++d) var += (xr[d] - mu) * (xr[d] - mu) / dim;
    const double r = 1.0 / std::sqrt(var + kEps);
    ref.mean[n] = mu;
    ref.rstd[n] = r;
    double mean_wg = 0.0, mean_wg_xhat = 0.0;
    for (int64_t d = 0; d < dim; ++d) {
      const double x_hat = (xr[d] - mu) * r;
      ref.y[n * dim + d] = x_hat * wv[d] + bv[d];
      mean_wg += wv[d] * gr[d] / dim;
      mean_wg_xhat += wv[d] * gr[d] * x_hat / dim;
      ref.dw[d] += gr[d] * x_hat;
      ref.db[d] += gr[d];
    }
    for (int64_t d = 0; d < dim; ++d) {
      const double x_hat = (xr[d] - mu) * r;
      ref.dx[n * dim + d] = r * (wv[d] * gr[d] - mean_wg - x_hat * mean_wg_xhat);
    }
  }
  return ref;
}

// The last shape exceeds kMinParallelWork, so the threaded path runs too.
const int64_t kShapes[][2] = {{1, 1}, {3, 17}, {17, 65}, {4, 33}, {65, 3}, {257, 129}, {5, 2049}};

std::string shape_label(const char* what, int64_t rows, int64_t dim) {
  return std::string(what) + "_" + std::to_string(rows) + "x" + std::to_string(dim);
}

// The operands of one layer: x (rows, dim) with a nonzero mean, w, b (dim).
struct Inputs {
  OwnedTensor x, w, b, dy;
  Inputs(int64_t rows, int64_t dim, uint64_t seed)
      : x(random_tensor({rows, dim}, seed, -1.0f, 3.0f)),
        w(random_tensor({dim}, seed + 1)),
        b(random_tensor({dim}, seed + 2)),
        dy(random_tensor({rows, dim}, seed + 3)) {}
};

TEST(CpuLayerNormTest, ForwardMatchesReference) {
  for (const auto& [rows, dim] : kShapes) {
    const Inputs in(rows, dim, 1);
    OwnedTensor y({rows, dim}, DType::kF32), mean({rows}, DType::kF32), rstd({rows}, DType::kF32);
    cpu::layernorm_forward(y, mean, rstd, in.x, in.w, in.b, kEps);
    const Reference ref = reference(in.x, in.w, in.b, in.dy);
    EXPECT_TRUE(close_to_reference(y, ref.y, 1e-5, 1e-5, shape_label("err_y", rows, dim)));
    EXPECT_TRUE(close_to_reference(mean, ref.mean, 1e-6, 1e-6, shape_label("err_mean", rows, dim)));
    EXPECT_TRUE(close_to_reference(rstd, ref.rstd, 0.0, 1e-5, shape_label("err_rstd", rows, dim)));
  }
}

TEST(CpuLayerNormTest, InferenceWithoutStatisticsGivesTheSameOutput) {
  const Inputs in(5, 33, 2);
  OwnedTensor y({5, 33}, DType::kF32), y_inference({5, 33}, DType::kF32);
  OwnedTensor mean({5}, DType::kF32), rstd({5}, DType::kF32);
  cpu::layernorm_forward(y, mean, rstd, in.x, in.w, in.b, kEps);
  cpu::layernorm_forward(y_inference, Tensor(), Tensor(), in.x, in.w, in.b, kEps);
  EXPECT_EQ(testing::max_abs_diff(y, y_inference), 0.0f);
}

TEST(CpuLayerNormTest, BackwardMatchesReference) {
  for (const auto& [rows, dim] : kShapes) {
    const Inputs in(rows, dim, 3);
    OwnedTensor y({rows, dim}, DType::kF32), mean({rows}, DType::kF32), rstd({rows}, DType::kF32);
    OwnedTensor dx({rows, dim}, DType::kF32), dw({dim}, DType::kF32), db({dim}, DType::kF32);
    cpu::fill(dw, 0.0f);
    cpu::fill(db, 0.0f);
    cpu::layernorm_forward(y, mean, rstd, in.x, in.w, in.b, kEps);
    cpu::layernorm_backward(dx, dw, db, in.dy, in.x, in.w, mean, rstd);
    const Reference ref = reference(in.x, in.w, in.b, in.dy);
    EXPECT_TRUE(close_to_reference(dx, ref.dx, 1e-5, 1e-5, shape_label("err_dx", rows, dim)));
    EXPECT_TRUE(close_to_reference(dw, ref.dw, 1e-5, 1e-5, shape_label("err_dw", rows, dim)));
    EXPECT_TRUE(close_to_reference(db, ref.db, 1e-5, 1e-6, shape_label("err_db", rows, dim)));
  }
}

TEST(CpuLayerNormTest, BackwardMatchesFiniteDifferences) {
  Inputs in(3, 17, 4);
  OwnedTensor y({3, 17}, DType::kF32), mean({3}, DType::kF32), rstd({3}, DType::kF32);
  const auto loss = [&] {
    cpu::layernorm_forward(y, mean, rstd, in.x, in.w, in.b, kEps);
    return testing::dot(y, in.dy);
  };
  const std::vector<double> numeric_dx = testing::finite_difference(in.x, loss, 1e-2f);
  const std::vector<double> numeric_dw = testing::finite_difference(in.w, loss, 1e-2f);
  const std::vector<double> numeric_db = testing::finite_difference(in.b, loss, 1e-2f);
  OwnedTensor dx({3, 17}, DType::kF32), dw({17}, DType::kF32), db({17}, DType::kF32);
  cpu::fill(dw, 0.0f);
  cpu::fill(db, 0.0f);
  loss();  // statistics of the unperturbed x
  cpu::layernorm_backward(dx, dw, db, in.dy, in.x, in.w, mean, rstd);
  EXPECT_TRUE(close_to_reference(dx, numeric_dx, 1e-3, 1e-2, "err_dx_vs_fd"));
  EXPECT_TRUE(close_to_reference(dw, numeric_dw, 1e-3, 1e-2, "err_dw_vs_fd"));
  EXPECT_TRUE(close_to_reference(db, numeric_db, 1e-3, 1e-2, "err_db_vs_fd"));
}

TEST(CpuLayerNormTest, BackwardTwiceDoublesDwAndDb) {
  const Inputs in(17, 33, 5);
  OwnedTensor y({17, 33}, DType::kF32), mean({17}, DType::kF32), rstd({17}, DType::kF32), dx({17, 33}, DType::kF32);
  OwnedTensor dw_once({33}, DType::kF32), db_once({33}, DType::kF32);
  OwnedTensor dw_twice({33}, DType::kF32), db_twice({33}, DType::kF32);
  for (Tensor t : {Tensor(dw_once), Tensor(db_once), Tensor(dw_twice), Tensor(db_twice)}) cpu::fill(t, 0.0f);
  cpu::layernorm_forward(y, mean, rstd, in.x, in.w, in.b, kEps);
  cpu::layernorm_backward(dx, dw_once, db_once, in.dy, in.x, in.w, mean, rstd);
  cpu::layernorm_backward(dx, dw_twice, db_twice, in.dy, in.x, in.w, mean, rstd);
  cpu::layernorm_backward(dx, dw_twice, db_twice, in.dy, in.x, in.w, mean, rstd);
  std::vector<double> dw_doubled = to_doubles(dw_once), db_doubled = to_doubles(db_once);
  for (double& v : dw_doubled) v *= 2.0;
  for (double& v : db_doubled) v *= 2.0;
  EXPECT_TRUE(close_to_reference(dw_twice, dw_doubled, 1e-6, 1e-6, "err_dw_twice"));
  EXPECT_TRUE(close_to_reference(db_twice, db_doubled, 1e-6, 1e-6, "err_db_twice"));
}

}  // namespace
}  // namespace plm
