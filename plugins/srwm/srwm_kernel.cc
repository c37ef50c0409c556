#include "plugins/srwm/srwm_kernel.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

namespace ouroboros::srwm {
namespace {

// Everything below is inlined into the multiversioned entry points, so that
// it is compiled for each target.
#define SRWM_INLINE inline __attribute__((always_inline))

// The row loops below are written so that the compiler vectorises them over
// d (omp simd: built with -fopenmp-simd, no OpenMP runtime involved).
template <typename Scalar>
SRWM_INLINE Scalar Dot(const Scalar* __restrict a, const Scalar* __restrict b,
                       int64_t n) {
  Scalar sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) sum += a[j] * b[j];
  return sum;
}

// a += alpha * b
template <typename Scalar>
SRWM_INLINE void Axpy(Scalar alpha, const Scalar* __restrict b,
                      Scalar* __restrict a, int64_t n) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) a[j] += alpha * b[j];
}

template <typename Scalar>
SRWM_INLINE void Softmax(const Scalar* in, Scalar* out, int64_t n) {
  Scalar max = in[0];
  for (int64_t j = 1; j < n; ++j) max = std::max(max, in[j]);
  Scalar sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    out[j] = std::exp(in[j] - max);
    sum += out[j];
  }
  const Scalar inv = Scalar(1) / sum;
  for (int64_t j = 0; j < n; ++j) out[j] *= inv;
}

// dL/d(logits) of a softmax from its output p and dL/dp.
template <typename Scalar>
SRWM_INLINE void SoftmaxBackward(const Scalar* p, const Scalar* grad_p,
                                 Scalar* grad_in, int64_t n) {
  const Scalar inner = Dot(p, grad_p, n);
  for (int64_t j = 0; j < n; ++j) grad_in[j] = p[j] * (grad_p[j] - inner);
}

// Where the trace of one step keeps each part.
template <typename Scalar>
struct StepTrace {
  StepTrace(Scalar* base, int64_t d)
      : q(base), k(base + d), beta(base + 2 * d), z(base + 2 * d + 4) {}
  Scalar* q;
  Scalar* k;
  Scalar* beta;
  Scalar* z;
};

// W is kept by columns (W^T, d columns of r values) while a (b, h) pair
// runs: every per-step product then runs along a column of r = 3d + 4
// values, as axpys with no horizontal sums (at d = 16 a row is only two AVX
// registers, and a row-wise dot product spends as long on its horizontal
// sum as on its multiplies).
template <typename Scalar>
SRWM_INLINE void RowsToColumns(const Scalar* rows, Scalar* columns, int64_t r,
                               int64_t d) {
  for (int64_t i = 0; i < r; ++i) {
    for (int64_t j = 0; j < d; ++j) columns[j * r + i] = rows[i * d + j];
  }
}

template <typename Scalar>
SRWM_INLINE void ColumnsToRows(const Scalar* columns, Scalar* rows, int64_t r,
                               int64_t d) {
  for (int64_t i = 0; i < r; ++i) {
    for (int64_t j = 0; j < d; ++j) rows[i * d + j] = columns[j * r + i];
  }
}

// out[i] = s_i v[i], s_i the learning rate of row i's group.
template <typename Scalar>
SRWM_INLINE void ScaleByRowRate(const Scalar* beta, const Scalar* v,
                                Scalar* out, int64_t d) {
  for (int64_t group = 0; group < 3; ++group) {
    const Scalar rate = beta[group];
#pragma omp simd
    for (int64_t i = group * d; i < (group + 1) * d; ++i) out[i] = rate * v[i];
  }
  for (int64_t i = 3 * d; i < 3 * d + 4; ++i) out[i] = beta[3] * v[i];
}

template <typename Scalar, int kHeadDim>
SRWM_INLINE void ForwardOne(const SrwmShape& shape, const Scalar* x,
                            const Scalar* w0, Scalar* y, Scalar* w_final,
                            Scalar* trace, int64_t b, int64_t h) {
  // A compile-time head dim (kHeadDim > 0) lets the loops unroll.
  const int64_t T = shape.steps, H = shape.heads;
  const int64_t d = kHeadDim > 0 ? kHeadDim : shape.head_dim;
  const int64_t r = SrwmRows(d);
  const int64_t trace_size = SrwmTraceSize(d);
  std::vector<Scalar> w(r * d), o(r), scaled_z(r), u(d);
  RowsToColumns(w0, w.data(), r, d);
  auto x_at = [&](int64_t t) { return x + ((b * T + t) * H + h) * d; };
  auto column = [&](int64_t j) { return w.data() + j * r; };
  const Scalar* x0 = x_at(0);
  for (int64_t j = 0; j < d; ++j) Axpy(x0[j], column(j), o.data(), r);
  for (int64_t t = 0; t < T; ++t) {
    StepTrace<Scalar> step(trace + t * trace_size, d);
    std::copy(o.begin(), o.begin() + d, y + ((b * T + t) * H + h) * d);
    Softmax(o.data() + d, step.q, d);
    Softmax(o.data() + 2 * d, step.k, d);
    for (int64_t j = 0; j < 4; ++j) {
      step.beta[j] = Scalar(1) / (Scalar(1) + std::exp(-o[3 * d + j]));
    }
    for (int64_t j = 0; j < d; ++j) u[j] = step.q[j] - step.k[j];
    // z = W (q~ - k~), then W += (s (.) z) k~^T column by column, each
    // updated column already multiplied with the next step's input.
    std::fill(step.z, step.z + r, Scalar(0));
    for (int64_t j = 0; j < d; ++j) Axpy(u[j], column(j), step.z, r);
    ScaleByRowRate(step.beta, step.z, scaled_z.data(), d);
    const Scalar* x_next = t + 1 < T ? x_at(t + 1) : nullptr;
    std::fill(o.begin(), o.end(), Scalar(0));
    for (int64_t j = 0; j < d; ++j) {
      Axpy(step.k[j], scaled_z.data(), column(j), r);
      if (x_next != nullptr) Axpy(x_next[j], column(j), o.data(), r);
    }
  }
  ColumnsToRows(w.data(), w_final, r, d);
}

// Backward of one (b, h). Notation: G = dL/dW_t while going back in time.
// For step t (W = W_{t-1}, delta = s (.) z):
//   (A) dL/d delta = G k~, dL/dk~ += G^T delta, W_{t-1} = W_t - delta k~^T,
//       dL/dz = s (.) dL/d delta, dL/dbeta from z, dL/du = W^T dL/dz,
//       G += dL/dz u^T
//   then dL/do = [dL/dy, softmax'(dL/dq~), softmax'(dL/dk~), sigmoid'(..)]
//   (B) dL/dx_t = W^T dL/do, G += dL/do x_t^T.
// W and G are kept by columns. Per step, one pass over the columns does (B)
// of step t and sums dL/d delta = G k~ of step t-1; a second does the rest
// of (A) of step t-1.
template <typename Scalar, int kHeadDim>
SRWM_INLINE void BackwardOne(const SrwmShape& shape, const Scalar* x,
                             const Scalar* w_final, const Scalar* trace,
                             const Scalar* grad_y, Scalar* grad_x,
                             Scalar* grad_w0, int64_t b, int64_t h) {
  // A compile-time head dim (kHeadDim > 0) lets the loops unroll.
  const int64_t T = shape.steps, H = shape.heads;
  const int64_t d = kHeadDim > 0 ? kHeadDim : shape.head_dim;
  const int64_t r = SrwmRows(d);
  const int64_t trace_size = SrwmTraceSize(d);
  std::vector<Scalar> w(r * d), g(r * d, Scalar(0));
  RowsToColumns(w_final, w.data(), r, d);
  std::vector<Scalar> u(d), grad_u(d), grad_k(d), grad_k_total(d), grad_o(r),
      grad_delta(r, Scalar(0)), scaled_z(r), grad_z(r);
  Scalar grad_beta[4];
  auto step_at = [&](int64_t t) {
    return StepTrace<Scalar>(const_cast<Scalar*>(trace) + t * trace_size, d);
  };
  auto offset_at = [&](int64_t t) { return ((b * T + t) * H + h) * d; };
  auto w_column = [&](int64_t j) { return w.data() + j * r; };
  auto g_column = [&](int64_t j) { return g.data() + j * r; };

  // (A) of `step`, given grad_delta = G k~ of that step: leaves W_{t-1} in w
  // and dL/du, dL/dk~ (its G^T delta part) and dL/dbeta.
  auto pass_a = [&](const StepTrace<Scalar>& step) {
    for (int64_t j = 0; j < d; ++j) u[j] = step.q[j] - step.k[j];
    ScaleByRowRate(step.beta, step.z, scaled_z.data(), d);
    ScaleByRowRate(step.beta, grad_delta.data(), grad_z.data(), d);
    for (int64_t group = 0; group < 4; ++group) {
      const int64_t first = group * d, last = group < 3 ? first + d : r;
      grad_beta[group] =
          Dot(step.z + first, grad_delta.data() + first, last - first);
    }
    for (int64_t j = 0; j < d; ++j) {
      Scalar* w_j = w_column(j);
      Scalar* g_j = g_column(j);
      grad_k[j] = Dot(scaled_z.data(), g_j, r);
      Axpy(-step.k[j], scaled_z.data(), w_j, r);
      grad_u[j] = Dot(grad_z.data(), w_j, r);
      Axpy(u[j], grad_z.data(), g_j, r);
    }
  };

  if (T > 0) pass_a(step_at(T - 1));  // G = 0: only rebuilds W_{T-2}
  for (int64_t t = T - 1; t >= 0; --t) {
    StepTrace<Scalar> step = step_at(t);
    // dL/do of step t from the accumulators of its pass (A).
    std::copy(grad_y + offset_at(t), grad_y + offset_at(t) + d, grad_o.begin());
    for (int64_t j = 0; j < d; ++j) grad_k_total[j] = grad_k[j] - grad_u[j];
    SoftmaxBackward(step.q, grad_u.data(), grad_o.data() + d, d);
    SoftmaxBackward(step.k, grad_k_total.data(), grad_o.data() + 2 * d, d);
    for (int64_t j = 0; j < 4; ++j) {
      grad_o[3 * d + j] =
          grad_beta[j] * step.beta[j] * (Scalar(1) - step.beta[j]);
    }
    const Scalar* x_t = x + offset_at(t);
    Scalar* grad_x_t = grad_x + offset_at(t);
    const bool has_previous = t > 0;
    const Scalar* previous_k = has_previous ? step_at(t - 1).k : nullptr;
    std::fill(grad_delta.begin(), grad_delta.end(), Scalar(0));
    for (int64_t j = 0; j < d; ++j) {
      Scalar* g_j = g_column(j);
      grad_x_t[j] = Dot(grad_o.data(), w_column(j), r);  // (B) of step t
      Axpy(x_t[j], grad_o.data(), g_j, r);
      if (has_previous) Axpy(previous_k[j], g_j, grad_delta.data(), r);
    }
    if (has_previous) pass_a(step_at(t - 1));  // (A) of step t-1
  }
  ColumnsToRows(g.data(), grad_w0, r, d);
}

// Calls run(std::integral_constant<int, d>) for the common head dims (the
// loops then have a fixed length), run(std::integral_constant<int, 0>) (any
// d, read at run time) otherwise.
template <typename Run>
SRWM_INLINE void DispatchHeadDim(int64_t d, Run& run) {
  switch (d) {
    case 16:
      return run(std::integral_constant<int, 16>());
    case 32:
      return run(std::integral_constant<int, 32>());
    case 64:
      return run(std::integral_constant<int, 64>());
    default:
      return run(std::integral_constant<int, 0>());
  }
}

}  // namespace

// Compiled twice (AVX2+FMA and baseline x86-64), picked at load time by the
// CPU, so the .so still runs on machines without AVX2.
#define SRWM_MULTIVERSION \
  __attribute__((target_clones("arch=haswell", "default")))

template <typename Scalar>
SRWM_MULTIVERSION void SrwmForwardRange(const SrwmShape& shape, const Scalar* x,
                                        const Scalar* w0, Scalar* y,
                                        Scalar* w_final, Scalar* trace,
                                        int64_t begin, int64_t end) {
  const int64_t H = shape.heads, d = shape.head_dim, r = SrwmRows(d);
  auto run = [&](auto head_dim) {
    for (int64_t index = begin; index < end; ++index) {
      const int64_t b = index / H, h = index % H;
      ForwardOne<Scalar, decltype(head_dim)::value>(
          shape, x, w0 + h * r * d, y, w_final + index * r * d,
          trace + index * shape.steps * SrwmTraceSize(d), b, h);
    }
  };
  DispatchHeadDim(d, run);
}

template <typename Scalar>
SRWM_MULTIVERSION void SrwmBackwardRange(const SrwmShape& shape,
                                         const Scalar* x, const Scalar* w_final,
                                         const Scalar* trace,
                                         const Scalar* grad_y, Scalar* grad_x,
                                         Scalar* grad_w0_per_batch,
                                         int64_t begin, int64_t end) {
  const int64_t H = shape.heads, d = shape.head_dim, r = SrwmRows(d);
  auto run = [&](auto head_dim) {
    for (int64_t index = begin; index < end; ++index) {
      const int64_t b = index / H, h = index % H;
      BackwardOne<Scalar, decltype(head_dim)::value>(
          shape, x, w_final + index * r * d,
          trace + index * shape.steps * SrwmTraceSize(d), grad_y, grad_x,
          grad_w0_per_batch + index * r * d, b, h);
    }
  };
  DispatchHeadDim(d, run);
}

template void SrwmForwardRange<float>(const SrwmShape&, const float*,
                                      const float*, float*, float*, float*,
                                      int64_t, int64_t);
template void SrwmForwardRange<double>(const SrwmShape&, const double*,
                                       const double*, double*, double*, double*,
                                       int64_t, int64_t);
template void SrwmBackwardRange<float>(const SrwmShape&, const float*,
                                       const float*, const float*, const float*,
                                       float*, float*, int64_t, int64_t);
template void SrwmBackwardRange<double>(const SrwmShape&, const double*,
                                        const double*, const double*,
                                        const double*, double*, double*,
                                        int64_t, int64_t);

}  // namespace ouroboros::srwm
