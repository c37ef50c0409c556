#include "plugins/optimizers/adamax.h"

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <memory>
#include <utility>

namespace ouroboros::optimizers {

Adamax::Adamax(std::vector<torch::Tensor> params, AdamaxOptions defaults)
    : Optimizer({torch::optim::OptimizerParamGroup(std::move(params))},
                std::make_unique<AdamaxOptions>(defaults)) {}

torch::Tensor Adamax::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups_) {
    auto& options = static_cast<AdamaxOptions&>(group.options());
    const double beta1 = std::get<0>(options.betas());
    const double beta2 = std::get<1>(options.betas());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      torch::Tensor grad = p.grad();
      if (options.weight_decay() != 0) {
        grad = grad.add(p, options.weight_decay());
      }
      auto key = c10::guts::to_string(p.unsafeGetTensorImpl());
      auto it = state_.find(key);
      if (it == state_.end()) {
        auto fresh = std::make_unique<AdamaxParamState>();
        fresh->exp_avg(at::zeros_like(p, at::MemoryFormat::Preserve));
        fresh->exp_inf(at::zeros_like(p, at::MemoryFormat::Preserve));
        it = state_.emplace(key, std::move(fresh)).first;
      }
      auto& state = static_cast<AdamaxParamState&>(*it->second);
      state.step(state.step() + 1);
      state.exp_avg().mul_(beta1).add_(grad, 1 - beta1);
      torch::Tensor bound = grad.abs().add_(options.eps());
      at::maximum_out(state.exp_inf(), state.exp_inf().mul_(beta2), bound);
      const double bias_correction =
          1 - std::pow(beta1, static_cast<double>(state.step()));
      p.addcdiv_(state.exp_avg(), state.exp_inf(),
                 -options.lr() / bias_correction);
    }
  }
  return loss;
}

}  // namespace ouroboros::optimizers
