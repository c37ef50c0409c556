// Forward declarations of the LibTorch types the core's headers name, so that
// a header can take a torch::nn::Module& without <torch/torch.h> (a
// translation unit with it costs ~12 s and ~1 GiB to compile). Include the
// torch header you use in the .cc.
#ifndef OUROBOROS_BASE_TORCH_FWD_H_
#define OUROBOROS_BASE_TORCH_FWD_H_

namespace torch {
namespace nn {
class Module;
}  // namespace nn
namespace optim {
class Optimizer;
}  // namespace optim
}  // namespace torch

#endif  // OUROBOROS_BASE_TORCH_FWD_H_
