#include "plugins/srwm/srwm_kernel.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

namespace ouroboros::srwm {
namespace {

// Everything below is inlined into the AVX2 and the baseline entry points
// (see SRWM_AVX2), so that it is compiled for each target.
#define SRWM_INLINE inline __attribute__((always_inline))
// A lambda is a function of its own: inlined, it is compiled for the target
// of the entry point it ends up in.
#define SRWM_LAMBDA_INLINE __attribute__((always_inline))

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

// Rows whose dot products are taken together (RowBlockDots): each dot of a
// row ends in a horizontal sum across vector lanes, which costs as much as
// the products at d = 16; four rows share one.
constexpr int64_t kRowBlock = 4;

// Eight floats in one vector, as GCC's vector extension: the same code
// compiles to AVX (one register) in the AVX2 build and to two SSE registers
// in the baseline one.
using Float8 = float __attribute__((vector_size(32)));
// GCC warns that passing such vectors by value has another ABI without AVX;
// these helpers are always inlined, so no call ever passes one.
#pragma GCC diagnostic ignored "-Wpsabi"
using Int8 = int __attribute__((vector_size(32)));

SRWM_INLINE Float8 LoadFloat8(const float* p) {
  Float8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// [a0 + a1, a2 + a3, b0 + b1, b2 + b3] in each half of 4 lanes (vhaddps).
SRWM_INLINE Float8 PairSums(Float8 a, Float8 b) {
  const Int8 even = {0, 2, 8, 10, 4, 6, 12, 14};
  const Int8 odd = {1, 3, 9, 11, 5, 7, 13, 15};
  return __builtin_shuffle(a, b, even) + __builtin_shuffle(a, b, odd);
}

// out[m] = rows[16 m .. 16 m + 15] . v for m < 4: the four 8-lane partial
// sums are reduced together.
SRWM_INLINE void FourDotsOf16(const float* rows, const float* v, float* out) {
  const Float8 v_low = LoadFloat8(v), v_high = LoadFloat8(v + 8);
  Float8 partial[kRowBlock];
  for (int m = 0; m < kRowBlock; ++m) {
    partial[m] = LoadFloat8(rows + 16 * m) * v_low +
                 LoadFloat8(rows + 16 * m + 8) * v_high;
  }
  // Lane m: row m's lanes 0-3 summed; lane 4 + m: its lanes 4-7.
  const Float8 sums = PairSums(PairSums(partial[0], partial[1]),
                               PairSums(partial[2], partial[3]));
  for (int m = 0; m < kRowBlock; ++m) out[m] = sums[m] + sums[m + 4];
}

// out[m] = (row m of the `count` rows at `rows`, n values each) . v, for
// count <= kRowBlock.
template <typename Scalar, int kHeadDim>
SRWM_INLINE void RowBlockDots(const Scalar* rows, const Scalar* v, int64_t n,
                              int64_t count, Scalar* out) {
  if constexpr (std::is_same_v<Scalar, float> && kHeadDim == 16) {
    if (count == kRowBlock) return FourDotsOf16(rows, v, out);
  }
  for (int64_t m = 0; m < count; ++m) out[m] = Dot(rows + m * n, v, n);
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
    // One pass over W per step, kRowBlock rows at a time: the rows are
    // multiplied with u and with the next step's input, then updated. The
    // updated row's product with x_next is (row + delta k~) . x_next =
    // row . x_next + delta (k~ . x_next), so both products come from the
    // rows as read.
    const Scalar* x_next = t + 1 < T ? x_at(t + 1) : nullptr;
    const Scalar k_dot_x_next =
        x_next != nullptr ? Dot(step.k, x_next, d) : Scalar(0);
    for (int64_t first = 0; first < r; first += kRowBlock) {
      const int64_t count = std::min(kRowBlock, r - first);
      Scalar* rows = w + first * d;
      Scalar z[kRowBlock], rows_dot_x_next[kRowBlock];
      RowBlockDots<Scalar, kHeadDim>(rows, u.data(), d, count, z);
      if (x_next != nullptr) {
        RowBlockDots<Scalar, kHeadDim>(rows, x_next, d, count, rows_dot_x_next);
      }
      for (int64_t m = 0; m < count; ++m) {
        const int64_t i = first + m;
        step.z[i] = z[m];
        const Scalar delta = step.beta[RowGroup(i, d)] * z[m];
        Axpy(delta, step.k, rows + m * d, d);
        if (x_next != nullptr) o[i] = rows_dot_x_next[m] + delta * k_dot_x_next;
      }
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
  std::vector<Scalar> u(d), grad_o(r), grad_k_total(d);
  // The sums over rows: on the stack when d is known at compile time, where
  // nothing can alias them, so the compiler keeps them in registers across
  // the row loop instead of storing and reloading them for every row.
  constexpr int64_t kStackSize = kHeadDim > 0 ? kHeadDim : 1;
  Scalar grad_u_stack[kStackSize], grad_k_stack[kStackSize],
      grad_x_stack[kStackSize];
  std::vector<Scalar> sums_heap(kHeadDim > 0 ? 0 : 3 * d);
  Scalar* grad_u = kHeadDim > 0 ? grad_u_stack : sums_heap.data();
  Scalar* grad_k = kHeadDim > 0 ? grad_k_stack : sums_heap.data() + d;
  Scalar* grad_x_acc = kHeadDim > 0 ? grad_x_stack : sums_heap.data() + 2 * d;
  Scalar grad_beta[4];
  auto step_at = [&](int64_t t) {
    return StepTrace<Scalar>(const_cast<Scalar*>(trace) + t * trace_size, d);
  };
  auto offset_at = [&](int64_t t) { return ((b * T + t) * H + h) * d; };

  // Pass (A) for row i of step `step`, given dL/d delta_i = (G k~)_i: reads
  // G row i and W_t row i, leaves W_{t-1} row i and the accumulators.
  auto pass_a_row = [&](const StepTrace<Scalar>& step, int64_t i,
                        Scalar grad_delta) SRWM_LAMBDA_INLINE {
    Scalar* w_row = w.data() + i * d;
    Scalar* g_row = g + i * d;
    const int64_t group = RowGroup(i, d);
    const Scalar s = step.beta[group];
    const Scalar delta = s * step.z[i];
    Axpy(delta, g_row, grad_k, d);
    Axpy(-delta, step.k, w_row, d);
    const Scalar grad_z = s * grad_delta;
    grad_beta[group] += step.z[i] * grad_delta;
    Axpy(grad_z, w_row, grad_u, d);
    Axpy(grad_z, u.data(), g_row, d);
  };
  // The same for `count` <= kRowBlock rows from row `first`.
  auto pass_a_rows = [&](const StepTrace<Scalar>& step, int64_t first,
                         int64_t count) SRWM_LAMBDA_INLINE {
    Scalar grad_deltas[kRowBlock];
    RowBlockDots<Scalar, kHeadDim>(g + first * d, step.k, d, count,
                                   grad_deltas);
    for (int64_t m = 0; m < count; ++m) {
      pass_a_row(step, first + m, grad_deltas[m]);
    }
  };
  auto begin_pass_a = [&](const StepTrace<Scalar>& step) {
    std::fill(grad_u, grad_u + d, Scalar(0));
    std::fill(grad_k, grad_k + d, Scalar(0));
    std::fill(grad_beta, grad_beta + 4, Scalar(0));
    for (int64_t j = 0; j < d; ++j) u[j] = step.q[j] - step.k[j];
  };

  if (T > 0) {
    StepTrace<Scalar> last = step_at(T - 1);
    begin_pass_a(last);
    for (int64_t first = 0; first < r; first += kRowBlock) {
      pass_a_rows(last, first, std::min(kRowBlock, r - first));
    }
  }
  for (int64_t t = T - 1; t >= 0; --t) {
    StepTrace<Scalar> step = step_at(t);
    // dL/do of step t from the accumulators of its pass (A).
    std::copy(grad_y + offset_at(t), grad_y + offset_at(t) + d, grad_o.begin());
    for (int64_t j = 0; j < d; ++j) grad_k_total[j] = grad_k[j] - grad_u[j];
    SoftmaxBackward(step.q, grad_u, grad_o.data() + d, d);
    SoftmaxBackward(step.k, grad_k_total.data(), grad_o.data() + 2 * d, d);
    for (int64_t j = 0; j < 4; ++j) {
      grad_o[3 * d + j] =
          grad_beta[j] * step.beta[j] * (Scalar(1) - step.beta[j]);
    }
    const Scalar* x_t = x + offset_at(t);
    std::fill(grad_x_acc, grad_x_acc + d, Scalar(0));
    const bool has_previous = t > 0;
    StepTrace<Scalar> previous = step_at(has_previous ? t - 1 : 0);
    if (has_previous) begin_pass_a(previous);
    for (int64_t first = 0; first < r; first += kRowBlock) {
      const int64_t count = std::min(kRowBlock, r - first);
      for (int64_t i = first; i < first + count; ++i) {  // (B) of step t
        Axpy(grad_o[i], w.data() + i * d, grad_x_acc, d);
        Axpy(grad_o[i], x_t, g + i * d, d);
      }
      if (has_previous) pass_a_rows(previous, first, count);  // (A) of t-1
    }
    std::copy(grad_x_acc, grad_x_acc + d, grad_x + offset_at(t));
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
