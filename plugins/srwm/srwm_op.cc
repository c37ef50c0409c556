// The fused SRWM layer as PyTorch operators, for Python (and TorchScript):
//
//   torch.ops.load_library("bazel-bin/plugins/srwm/libsrwm_op.so")
//   y = torch.ops.ouroboros.srwm(x, w0)
//   y, w_final = torch.ops.ouroboros.srwm_with_state(x, w_init)
//   y = torch.ops.ouroboros.srwm_frozen(x, w0)
//
// x: B x T x H x d; w0: H x (3d + 4) x d; w_init, w_final: B x H x (3d + 4)
// x d (srwm_layer.h; python/ouroboros_srwm.py wraps them in a module).
//
// The kernels are registered as CompositeImplicitAutograd: the dispatcher
// calls them for every backend and with autograd on, and they run the
// torch::autograd::Function of srwm_layer.cc, whose backward is the fused
// one (srwm_frozen's is ATen's, through einsum). The checks that give
// non-CPU tensors a clear error live there too.
#include <torch/library.h>

#include "plugins/srwm/srwm_layer.h"

namespace ouroboros::srwm {
namespace {

TORCH_LIBRARY(ouroboros, m) {
  m.def("srwm(Tensor x, Tensor w0) -> Tensor");
  m.def(
      "srwm_with_state(Tensor x, Tensor w_init) -> (Tensor y, Tensor w_final)");
  m.def("srwm_frozen(Tensor x, Tensor w0) -> Tensor");
}

TORCH_LIBRARY_IMPL(ouroboros, CompositeImplicitAutograd, m) {
  m.impl("srwm", &SrwmFused);
  m.impl("srwm_with_state", &SrwmFusedWithState);
  m.impl("srwm_frozen", &SrwmFrozen);
}

}  // namespace
}  // namespace ouroboros::srwm
