#include "plugins/srwm/srwm_kernel.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

namespace ouroboros::srwm {
namespace {

// Everything below is inlined into the AVX2 and the baseline entry points
// (see SRWM_AVX2), so that it is compiled for each target.
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

// a . b and a . c in one pass over a.
template <typename Scalar>
SRWM_INLINE void TwoDots(const Scalar* __restrict a, const Scalar* __restrict b,
                         const Scalar* __restrict c, int64_t n, Scalar* a_dot_b,
                         Scalar* a_dot_c) {
  Scalar sum_b = 0, sum_c = 0;
#pragma omp simd reduction(+ : sum_b, sum_c)
  for (int64_t j = 0; j < n; ++j) {
    sum_b += a[j] * b[j];
    sum_c += a[j] * c[j];
  }
  *a_dot_b = sum_b;
  *a_dot_c = sum_c;
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

// Which of the 4 learning rates row i uses: the y, q, k or b sub-matrix.
SRWM_INLINE int64_t RowGroup(int64_t row, int64_t d) {
  return row < 3 * d ? row / d : 3;
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

template <typename Scalar, int kHeadDim>
SRWM_INLINE void ForwardOne(const SrwmShape& shape, const Scalar* x,
                            const Scalar* w0, Scalar* y, Scalar* w,
                            Scalar* trace, int64_t b, int64_t h) {
  // A compile-time head dim (kHeadDim > 0) lets the row loops unroll.
  const int64_t T = shape.steps, H = shape.heads;
  const int64_t d = kHeadDim > 0 ? kHeadDim : shape.head_dim;
  const int64_t r = SrwmRows(d);
  const int64_t trace_size = SrwmTraceSize(d);
  std::copy(w0, w0 + r * d, w);
  std::vector<Scalar> o(r), u(d);
  auto x_at = [&](int64_t t) { return x + ((b * T + t) * H + h) * d; };
  if (T == 0) return;  // w_final = w0; there is no x_0 to read
  for (int64_t i = 0; i < r; ++i) o[i] = Dot(w + i * d, x_at(0), d);
  for (int64_t t = 0; t < T; ++t) {
    StepTrace<Scalar> step(trace + t * trace_size, d);
    std::copy(o.begin(), o.begin() + d, y + ((b * T + t) * H + h) * d);
    Softmax(o.data() + d, step.q, d);
    Softmax(o.data() + 2 * d, step.k, d);
    for (int64_t j = 0; j < 4; ++j) {
      step.beta[j] = Scalar(1) / (Scalar(1) + std::exp(-o[3 * d + j]));
    }
    for (int64_t j = 0; j < d; ++j) u[j] = step.q[j] - step.k[j];
    // One pass over W per step: each row is read once, multiplied with u
    // and with the next step's input, and updated. The updated row's product
    // with x_next is (row + delta k~) . x_next = row . x_next + delta (k~ .
    // x_next), so both products come from the row as read and do not wait
    // for its update.
    if (t + 1 == T) {
      for (int64_t i = 0; i < r; ++i) {
        Scalar* row = w + i * d;
        const Scalar z = Dot(row, u.data(), d);
        step.z[i] = z;
        Axpy(step.beta[RowGroup(i, d)] * z, step.k, row, d);
      }
      break;
    }
    const Scalar* x_next = x_at(t + 1);
    const Scalar k_dot_x_next = Dot(step.k, x_next, d);
    for (int64_t i = 0; i < r; ++i) {
      Scalar* row = w + i * d;
      Scalar z, row_dot_x_next;
      TwoDots(row, u.data(), x_next, d, &z, &row_dot_x_next);
      step.z[i] = z;
      const Scalar delta = step.beta[RowGroup(i, d)] * z;
      Axpy(delta, step.k, row, d);
      o[i] = row_dot_x_next + delta * k_dot_x_next;
    }
  }
}

// Backward of one (b, h). Notation: G = dL/dW_t while going back in time.
// For step t (W = W_{t-1}, delta = s (.) z):
//   (A) dL/d delta = G k~, dL/dk~ += G^T delta, W_{t-1} = W_t - delta k~^T,
//       dL/dz = s (.) dL/d delta, dL/dbeta from z, dL/du = W^T dL/dz,
//       G += dL/dz u^T
//   then dL/do = [dL/dy, softmax'(dL/dq~), softmax'(dL/dk~), sigmoid'(..)]
//   (B) dL/dx_t = W^T dL/do, G += dL/do x_t^T.
// (A) of step t-1 only needs row i of G after (B) of step t, so both run in
// one pass over the rows.
template <typename Scalar, int kHeadDim>
SRWM_INLINE void BackwardOne(const SrwmShape& shape, const Scalar* x,
                             const Scalar* w_final, const Scalar* trace,
                             const Scalar* grad_y, const Scalar* grad_w_final,
                             Scalar* grad_x, Scalar* grad_w0, int64_t b,
                             int64_t h) {
  // A compile-time head dim (kHeadDim > 0) lets the row loops unroll.
  const int64_t T = shape.steps, H = shape.heads;
  const int64_t d = kHeadDim > 0 ? kHeadDim : shape.head_dim;
  const int64_t r = SrwmRows(d);
  const int64_t trace_size = SrwmTraceSize(d);
  std::vector<Scalar> w(w_final, w_final + r * d);
  Scalar* g = grad_w0;  // G lives in the output buffer; G = dL/dW_T first
  if (grad_w_final != nullptr) {
    std::copy(grad_w_final, grad_w_final + r * d, g);
  } else {
    std::fill(g, g + r * d, Scalar(0));
  }
  std::vector<Scalar> u(d), grad_u(d), grad_k(d), grad_o(r), grad_x_acc(d),
      grad_k_total(d);
  Scalar grad_beta[4];
  auto step_at = [&](int64_t t) {
    return StepTrace<Scalar>(const_cast<Scalar*>(trace) + t * trace_size, d);
  };
  auto offset_at = [&](int64_t t) { return ((b * T + t) * H + h) * d; };

  // Pass (A) for one row of step `step`: reads G row i and W_t row i, leaves
  // W_{t-1} row i and the accumulators.
  auto pass_a_row = [&](const StepTrace<Scalar>& step, int64_t i) {
    Scalar* w_row = w.data() + i * d;
    Scalar* g_row = g + i * d;
    const int64_t group = RowGroup(i, d);
    const Scalar s = step.beta[group];
    const Scalar delta = s * step.z[i];
    const Scalar grad_delta = Dot(g_row, step.k, d);
    Axpy(delta, g_row, grad_k.data(), d);
    Axpy(-delta, step.k, w_row, d);
    const Scalar grad_z = s * grad_delta;
    grad_beta[group] += step.z[i] * grad_delta;
    Axpy(grad_z, w_row, grad_u.data(), d);
    Axpy(grad_z, u.data(), g_row, d);
  };
  auto begin_pass_a = [&](const StepTrace<Scalar>& step) {
    std::fill(grad_u.begin(), grad_u.end(), Scalar(0));
    std::fill(grad_k.begin(), grad_k.end(), Scalar(0));
    std::fill(grad_beta, grad_beta + 4, Scalar(0));
    for (int64_t j = 0; j < d; ++j) u[j] = step.q[j] - step.k[j];
  };

  if (T > 0) {
    StepTrace<Scalar> last = step_at(T - 1);
    begin_pass_a(last);
    for (int64_t i = 0; i < r; ++i) pass_a_row(last, i);
  }
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
    std::fill(grad_x_acc.begin(), grad_x_acc.end(), Scalar(0));
    const bool has_previous = t > 0;
    StepTrace<Scalar> previous = step_at(has_previous ? t - 1 : 0);
    if (has_previous) begin_pass_a(previous);
    for (int64_t i = 0; i < r; ++i) {
      Scalar* w_row = w.data() + i * d;
      Axpy(grad_o[i], w_row, grad_x_acc.data(), d);  // (B) of step t
      Axpy(grad_o[i], x_t, g + i * d, d);
      if (has_previous) pass_a_row(previous, i);  // (A) of step t-1
    }
    std::copy(grad_x_acc.begin(), grad_x_acc.end(), grad_x + offset_at(t));
  }
}

template <typename Scalar, int kHeadDim>
SRWM_INLINE void ForwardPairs(const SrwmShape& shape, const Scalar* x,
                              const Scalar* w0, Scalar* y, Scalar* w_final,
                              Scalar* trace, int64_t begin, int64_t end) {
  const int64_t H = shape.heads, d = shape.head_dim, r = SrwmRows(d);
  for (int64_t index = begin; index < end; ++index) {
    const int64_t b = index / H, h = index % H;
    const int64_t w0_index = shape.initial_state_per_batch ? index : h;
    ForwardOne<Scalar, kHeadDim>(
        shape, x, w0 + w0_index * r * d, y, w_final + index * r * d,
        trace + index * shape.steps * SrwmTraceSize(d), b, h);
  }
}

template <typename Scalar, int kHeadDim>
SRWM_INLINE void BackwardPairs(const SrwmShape& shape, const Scalar* x,
                               const Scalar* w_final, const Scalar* trace,
                               const Scalar* grad_y, const Scalar* grad_w_final,
                               Scalar* grad_x, Scalar* grad_w0_per_batch,
                               int64_t begin, int64_t end) {
  const int64_t H = shape.heads, d = shape.head_dim, r = SrwmRows(d);
  for (int64_t index = begin; index < end; ++index) {
    const int64_t b = index / H, h = index % H;
    BackwardOne<Scalar, kHeadDim>(
        shape, x, w_final + index * r * d,
        trace + index * shape.steps * SrwmTraceSize(d), grad_y,
        grad_w_final == nullptr ? nullptr : grad_w_final + index * r * d,
        grad_x, grad_w0_per_batch + index * r * d, b, h);
  }
}

// The common head dims get loops of a fixed length (kHeadDim = d), any
// other d reads it at run time (kHeadDim = 0).
#define SRWM_DISPATCH_HEAD_DIM(d, Function, ...) \
  switch (d) {                                   \
    case 16:                                     \
      return Function<Scalar, 16>(__VA_ARGS__);  \
    case 32:                                     \
      return Function<Scalar, 32>(__VA_ARGS__);  \
    case 64:                                     \
      return Function<Scalar, 64>(__VA_ARGS__);  \
    default:                                     \
      return Function<Scalar, 0>(__VA_ARGS__);   \
  }

// Everything above is inlined into each of the two entry points below, so
// the whole kernel is compiled twice: for AVX2 + FMA and for baseline
// x86-64 (the .so still runs on machines without AVX2). Neither GCC's
// target_clones nor a lambda would do: a lambda is a function of its own,
// compiled once for the baseline (that is how an earlier version ran SSE
// code only), and on this machine's AMD EPYC GCC 12's target_clones
// resolver picked the baseline for "arch=haswell", "arch=x86-64-v3" and
// even "avx2" clones (a test program, 2026-11-29), while
// __builtin_cpu_supports, asked at run time, says AVX2 and FMA.
#define SRWM_AVX2 __attribute__((target("avx2,fma")))

template <typename Scalar>
SRWM_AVX2 void ForwardRangeAvx2(const SrwmShape& shape, const Scalar* x,
                                const Scalar* w0, Scalar* y, Scalar* w_final,
                                Scalar* trace, int64_t begin, int64_t end) {
  SRWM_DISPATCH_HEAD_DIM(shape.head_dim, ForwardPairs, shape, x, w0, y, w_final,
                         trace, begin, end);
}

template <typename Scalar>
void ForwardRangeBaseline(const SrwmShape& shape, const Scalar* x,
                          const Scalar* w0, Scalar* y, Scalar* w_final,
                          Scalar* trace, int64_t begin, int64_t end) {
  SRWM_DISPATCH_HEAD_DIM(shape.head_dim, ForwardPairs, shape, x, w0, y, w_final,
                         trace, begin, end);
}

template <typename Scalar>
SRWM_AVX2 void BackwardRangeAvx2(const SrwmShape& shape, const Scalar* x,
                                 const Scalar* w_final, const Scalar* trace,
                                 const Scalar* grad_y,
                                 const Scalar* grad_w_final, Scalar* grad_x,
                                 Scalar* grad_w0_per_batch, int64_t begin,
                                 int64_t end) {
  SRWM_DISPATCH_HEAD_DIM(shape.head_dim, BackwardPairs, shape, x, w_final,
                         trace, grad_y, grad_w_final, grad_x, grad_w0_per_batch,
                         begin, end);
}

template <typename Scalar>
void BackwardRangeBaseline(const SrwmShape& shape, const Scalar* x,
                           const Scalar* w_final, const Scalar* trace,
                           const Scalar* grad_y, const Scalar* grad_w_final,
                           Scalar* grad_x, Scalar* grad_w0_per_batch,
                           int64_t begin, int64_t end) {
  SRWM_DISPATCH_HEAD_DIM(shape.head_dim, BackwardPairs, shape, x, w_final,
                         trace, grad_y, grad_w_final, grad_x, grad_w0_per_batch,
                         begin, end);
}

bool CpuHasAvx2Fma() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return has;
}

}  // namespace

template <typename Scalar>
void SrwmForwardRange(const SrwmShape& shape, const Scalar* x, const Scalar* w0,
                      Scalar* y, Scalar* w_final, Scalar* trace, int64_t begin,
                      int64_t end) {
  if (CpuHasAvx2Fma()) {
    ForwardRangeAvx2(shape, x, w0, y, w_final, trace, begin, end);
  } else {
    ForwardRangeBaseline(shape, x, w0, y, w_final, trace, begin, end);
  }
}

template <typename Scalar>
void SrwmBackwardRange(const SrwmShape& shape, const Scalar* x,
                       const Scalar* w_final, const Scalar* trace,
                       const Scalar* grad_y, const Scalar* grad_w_final,
                       Scalar* grad_x, Scalar* grad_w0_per_batch, int64_t begin,
                       int64_t end) {
  if (CpuHasAvx2Fma()) {
    BackwardRangeAvx2(shape, x, w_final, trace, grad_y, grad_w_final, grad_x,
                      grad_w0_per_batch, begin, end);
  } else {
    BackwardRangeBaseline(shape, x, w_final, trace, grad_y, grad_w_final,
                          grad_x, grad_w0_per_batch, begin, end);
  }
}

template void SrwmForwardRange<float>(const SrwmShape&, const float*,
                                      const float*, float*, float*, float*,
                                      int64_t, int64_t);
template void SrwmForwardRange<double>(const SrwmShape&, const double*,
                                       const double*, double*, double*, double*,
                                       int64_t, int64_t);
template void SrwmBackwardRange<float>(const SrwmShape&, const float*,
                                       const float*, const float*, const float*,
                                       const float*, float*, float*, int64_t,
                                       int64_t);
template void SrwmBackwardRange<double>(const SrwmShape&, const double*,
                                        const double*, const double*,
                                        const double*, const double*, double*,
                                        double*, int64_t, int64_t);

}  // namespace ouroboros::srwm
