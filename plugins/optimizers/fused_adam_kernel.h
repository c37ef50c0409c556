// The element-wise pass of the fused Adam/AdamW step (fused_adam.h), in a
// library of its own for its flags (BUILD): -fno-math-errno, without which
// GCC keeps std::sqrt a scalar call with a branch around it and the whole
// loop runs one element at a time (4.6x slower; a per-function optimize
// attribute does not change that), and -fopenmp, without which ATen's
// at::parallel_for, inline in its headers, is a serial loop.
#ifndef PLUGINS_OPTIMIZERS_FUSED_ADAM_KERNEL_H_
#define PLUGINS_OPTIMIZERS_FUSED_ADAM_KERNEL_H_

#include <cstdint>

namespace ouroboros::optimizers {

struct AdamStepScalars {
  float beta1, beta2;
  float step_size;       // lr / (1 - beta1^t)
  float inv_sqrt_bias2;  // 1 / sqrt(1 - beta2^t)
  float eps;
  float l2;     // Adam: weight_decay; AdamW: 0
  float decay;  // AdamW: 1 - lr * weight_decay; Adam: 1
};

// One pass of the update over n floats of the four arrays, in place, split
// between LibTorch's threads for large parameters.
void FusedAdamUpdate(float* param, const float* grad, float* exp_avg,
                     float* exp_avg_sq, int64_t n, const AdamStepScalars& s);

// Elements [begin, end) by the calling thread.
void AdamUpdateRange(float* param, const float* grad, float* exp_avg,
                     float* exp_avg_sq, int64_t begin, int64_t end,
                     const AdamStepScalars& s);

}  // namespace ouroboros::optimizers

#endif  // PLUGINS_OPTIMIZERS_FUSED_ADAM_KERNEL_H_
