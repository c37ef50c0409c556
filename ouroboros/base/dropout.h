// Dropout with a cheap mask: the distribution of torch::nn::Dropout, a
// fraction of the cost.
//
// LibTorch 1.13's CPU bernoulli_ (what torch::nn::Dropout draws its mask
// with) takes one Mersenne Twister number and one distribution object per
// element: about 12 ns each here, a fifth of the Fashion-MNIST MLP's step
// (#30). MaskedDropout draws a single 64-bit seed from the default CPU
// generator per call, then hashes (seed, element index) with SplitMix64, two
// elements per hash. Each element is dropped when its 32 random bits fall
// below p * 2^32: with probability p to within 2^-32 (torch draws a double
// uniform), independently of the others; the kept ones are scaled by
// 1 / (1 - p), as torch does.
//
// Because the global generator advances by one draw per call and the mask
// depends on nothing else, a run is deterministic for its seed whatever the
// thread count, and a resumed run (the generator's state is in the
// checkpoint) draws the very masks an uninterrupted one does. The stream
// differs from torch::nn::Dropout's: switching changes a run's numbers, not
// its distribution.
//
//   at::Tensor h = MaskedDropout(x, /*p=*/0.2, module.is_training());
#ifndef OUROBOROS_BASE_DROPOUT_H_
#define OUROBOROS_BASE_DROPOUT_H_

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace ouroboros {

// `input` in training mode with each element zeroed with probability p and
// the rest scaled by 1 / (1 - p); `input` itself when !training or p == 0.
// Differentiable (the gradient is masked the same way). Float tensors take
// the fast path; other dtypes fall back to at::dropout. p must be in [0, 1).
at::Tensor MaskedDropout(const at::Tensor& input, double p, bool training);

// The mask alone, from an explicit seed: 0 or 1 / (1 - p) per element of a
// float tensor with `numel` elements. Exposed for tests.
at::Tensor DropoutMask(int64_t numel, double p, uint64_t seed);

}  // namespace ouroboros

#endif  // OUROBOROS_BASE_DROPOUT_H_
