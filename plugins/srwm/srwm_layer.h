// The SRWM layer's core operation as LibTorch functions: the fused CPU
// kernel behind a custom autograd Function, and the naive per-step LibTorch
// reference it is tested against.
//
//   at::Tensor x = ...;   // B x T x H x d, the per-head inputs
//   at::Tensor w0 = ...;  // H x (3d + 4) x d, the learned initial matrices
//   at::Tensor y = SrwmFused(x, w0);  // B x T x H x d; y.sum().backward()
//
// All compute the same function (srwm_kernel.h has the equations). They
// need LibTorch only (not the Ouroboros core), so srwm_op.cc can offer them
// to Python as torch.ops.ouroboros.*. Bad arguments throw c10::Error
// (TORCH_CHECK) naming the argument and the shape it must have.
#ifndef PLUGINS_SRWM_SRWM_LAYER_H_
#define PLUGINS_SRWM_SRWM_LAYER_H_

#include <ATen/core/Tensor.h>

#include <tuple>

namespace ouroboros::srwm {

// Fused forward and reverse-in-time backward (float32 or float64, CPU, any
// strides). Differentiable in x and w0, once (a double backward, i.e. a
// backward with create_graph, throws).
at::Tensor SrwmFused(const at::Tensor& x, const at::Tensor& w0);

// The same from one initial state per batch element, w_init: B x H x r x d
// (say the final state of the previous chunk of a long sequence). Returns y
// and the final state W_T (B x H x r x d); differentiable in x and w_init
// through both, so a sequence run chunk by chunk, each chunk starting from
// the last one's W_T, has the values and gradients of the whole.
std::tuple<at::Tensor, at::Tensor> SrwmFusedWithState(const at::Tensor& x,
                                                      const at::Tensor& w_init);

// The same with one LibTorch op per step and autograd keeping every W_t:
// slow and O(T) memory; the reference for tests and benchmarks.
at::Tensor SrwmNaive(const at::Tensor& x, const at::Tensor& w0);

// "Fake-SR": the same parameters, no self-modification (y_t = W_0[y] x_t).
at::Tensor SrwmFrozen(const at::Tensor& x, const at::Tensor& w0);

}  // namespace ouroboros::srwm

#endif  // PLUGINS_SRWM_SRWM_LAYER_H_
