// Fused CPU kernels of the self-referential weight matrix (SRWM) layer of
// Irie et al. (ICML 2022), on raw arrays; srwm_layer.h wraps them as a
// LibTorch autograd Function.
//
// Per (batch b, head h), with head dim d and r = 3d + 4 rows, the state W is
// r x d and, for t = 0 .. T-1:
//   [y, q, k, b] = W x_t          (y, q, k: d values; b: 4)
//   q~ = softmax(q), k~ = softmax(k), beta = sigmoid(b)
//   z = W (q~ - k~)               (r values)
//   W <- W + (s (.) z) k~^T       (s_i = beta of row i's group: rows of y, of
//                                  q, of k, of b)
// and y_t is the output. The forward keeps only the final W and, per step,
// the small "trace" [q~, k~, beta, z] (2d + 4 + r values); the backward
// undoes the updates in reverse time (W_{t-1} = W_t - (s (.) z) k~^T), so the
// memory is O(B H r d + B H T r) instead of O(T B H r d).
#ifndef PLUGINS_SRWM_SRWM_KERNEL_H_
#define PLUGINS_SRWM_SRWM_KERNEL_H_

#include <cstdint>

namespace ouroboros::srwm {

// Rows of one head's weight matrix: y, q, k (d each) and 4 learning rates.
constexpr int64_t SrwmRows(int64_t head_dim) { return 3 * head_dim + 4; }
// Values stored per step and (b, h) for the backward: q~, k~, beta, z.
constexpr int64_t SrwmTraceSize(int64_t head_dim) {
  return 2 * head_dim + 4 + SrwmRows(head_dim);
}

struct SrwmShape {
  int64_t batch = 0;     // B
  int64_t steps = 0;     // T
  int64_t heads = 0;     // H
  int64_t head_dim = 0;  // d
  // False: one learned W_0 per head, shared by the batch (w0: H x r x d).
  // True: an initial state per batch element (w0: B x H x r x d), e.g. the
  // final state of the previous chunk of a long sequence.
  bool initial_state_per_batch = false;
};

// Layouts (all contiguous): x, y, grad_y, grad_x: B x T x H x d;
// w0: (B x) H x r x d as initial_state_per_batch says; w_final,
// grad_w_final, grad_w0_per_batch: B x H x r x d;
// trace: B x H x T x SrwmTraceSize(d).
//
// Runs the (b, h) pairs in [begin, end) (index b * H + h), each with its
// whole time loop; callers parallelise over that range.
template <typename Scalar>
void SrwmForwardRange(const SrwmShape& shape, const Scalar* x, const Scalar* w0,
                      Scalar* y, Scalar* w_final, Scalar* trace, int64_t begin,
                      int64_t end);

// From the forward's w_final and trace, dL/dy and dL/dW_final (nullptr:
// w_final is not used downstream, its gradient is zero): dL/dx, and dL/dW_0
// per batch element (grad_w0_per_batch; with a shared W_0 the caller sums
// it over b).
template <typename Scalar>
void SrwmBackwardRange(const SrwmShape& shape, const Scalar* x,
                       const Scalar* w_final, const Scalar* trace,
                       const Scalar* grad_y, const Scalar* grad_w_final,
                       Scalar* grad_x, Scalar* grad_w0_per_batch, int64_t begin,
                       int64_t end);

}  // namespace ouroboros::srwm

#endif  // PLUGINS_SRWM_SRWM_KERNEL_H_
