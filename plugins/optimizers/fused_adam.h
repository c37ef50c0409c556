// Adam and AdamW in one pass over each parameter: the moments and the
// weights are updated element by element in a single loop, with no
// temporary tensors (LibTorch's step makes four or five, each the size of
// the parameter; for a large one those are fresh pages every step). Same
// options, state and checkpoint format as torch::optim::Adam / AdamW, whose
// update it computes (in float, in another order of the same operations, so
// results agree to rounding, not bit for bit):
//   g <- grad (+ weight_decay * p for Adam; AdamW first scales p by
//        1 - lr * weight_decay)
//   m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
//   p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// Parameters that are not contiguous float32 with a dense gradient, and
// amsgrad, take LibTorch's own step.
#ifndef PLUGINS_OPTIMIZERS_FUSED_ADAM_H_
#define PLUGINS_OPTIMIZERS_FUSED_ADAM_H_

#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>

#include <vector>

#include "plugins/optimizers/fused_adam_kernel.h"

namespace ouroboros::optimizers {

class FusedAdam : public torch::optim::Adam {
 public:
  using torch::optim::Adam::Adam;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace ouroboros::optimizers

#endif  // PLUGINS_OPTIMIZERS_FUSED_ADAM_H_
