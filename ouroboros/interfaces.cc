#include "ouroboros/interfaces.h"

#include <ATen/ATen.h>

namespace ouroboros {

at::Tensor Model::Loss(const at::Tensor& outputs, const at::Tensor& targets) {
  return at::nll_loss(at::log_softmax(outputs, 1), targets);
}

}  // namespace ouroboros
