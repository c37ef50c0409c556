// The SRWM layer's core operation as LibTorch functions: the fused CPU
// kernel behind a custom autograd Function, and the naive per-step LibTorch
// reference it is tested against.
//
//   at::Tensor x = ...;   // B x T x H x d, the per-head inputs
//   at::Tensor w0 = ...;  // H x (3d + 4) x d, the learned initial matrices
//   at::Tensor y = SrwmFused(x, w0);  // B x T x H x d; y.sum().backward()
//
// Both compute the same function (srwm_kernel.h has the equations).
#ifndef PLUGINS_SRWM_SRWM_LAYER_H_
#define PLUGINS_SRWM_SRWM_LAYER_H_

#include <ATen/core/Tensor.h>

namespace ouroboros::srwm {

// Fused forward and reverse-in-time backward (float32 or float64, CPU).
// Differentiable in x and w0, once (no double backward).
at::Tensor SrwmFused(const at::Tensor& x, const at::Tensor& w0);

// The same with one LibTorch op per step and autograd keeping every W_t:
// slow and O(T) memory; the reference for tests and benchmarks.
at::Tensor SrwmNaive(const at::Tensor& x, const at::Tensor& w0);

// "Fake-SR": the same parameters, no self-modification (y_t = W_0[y] x_t).
at::Tensor SrwmFrozen(const at::Tensor& x, const at::Tensor& w0);

}  // namespace ouroboros::srwm

#endif  // PLUGINS_SRWM_SRWM_LAYER_H_
