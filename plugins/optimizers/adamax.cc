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

void AdamaxOptions::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(lr);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(betas);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(eps);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(weight_decay);
}

void AdamaxOptions::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, lr);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(betas_t, betas);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, eps);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, weight_decay);
}

void AdamaxParamState::serialize(
    torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(step);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_inf);
}

void AdamaxParamState::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(int64_t, step);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_inf);
}

void Adamax::save(torch::serialize::OutputArchive& archive) const {
  torch::optim::serialize<AdamaxParamState, AdamaxOptions>(archive, *this);
}

void Adamax::load(torch::serialize::InputArchive& archive) {
  torch::optim::serialize<AdamaxParamState, AdamaxOptions>(archive, *this);
}

}  // namespace ouroboros::optimizers
