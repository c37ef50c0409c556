#include "plugins/optimizers/fused_adam.h"

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <cmath>
#include <memory>
#include <string>

namespace ouroboros::optimizers {
namespace {

bool Fusable(const torch::Tensor& p) {
  const torch::Tensor& g = p.grad();
  return p.scalar_type() == at::kFloat && p.is_contiguous() &&
         g.scalar_type() == at::kFloat && g.is_contiguous() && !g.is_sparse();
}

// Both optimizers' step: `decoupled` for AdamW. The state is LibTorch's
// AdamParamState / AdamWParamState, keyed as LibTorch keys it, so that
// save() and load() are LibTorch's (Parent's).
template <typename Options, typename ParamState, typename Parent>
torch::Tensor FusedStep(Parent& optimizer, bool decoupled,
                        torch::optim::Optimizer::LossClosure closure) {
  for (const auto& group : optimizer.param_groups()) {
    const auto& options = static_cast<const Options&>(group.options());
    for (const auto& p : group.params()) {
      if (options.amsgrad() || (p.grad().defined() && !Fusable(p))) {
        return optimizer.Parent::step(closure);
      }
    }
  }
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : optimizer.param_groups()) {
    auto& options = static_cast<Options&>(group.options());
    const double beta1 = std::get<0>(options.betas());
    const double beta2 = std::get<1>(options.betas());
    for (torch::Tensor& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto& states = optimizer.state();
      const std::string key = c10::guts::to_string(p.unsafeGetTensorImpl());
      auto it = states.find(key);
      if (it == states.end()) {
        auto fresh = std::make_unique<ParamState>();
        fresh->step(0);
        fresh->exp_avg(torch::zeros_like(p, at::MemoryFormat::Preserve));
        fresh->exp_avg_sq(torch::zeros_like(p, at::MemoryFormat::Preserve));
        it = states.emplace(key, std::move(fresh)).first;
      }
      auto& state = static_cast<ParamState&>(*it->second);
      state.step(state.step() + 1);
      const double t = static_cast<double>(state.step());
      AdamStepScalars s;
      s.beta1 = static_cast<float>(beta1);
      s.beta2 = static_cast<float>(beta2);
      s.step_size = static_cast<float>(options.lr() / (1 - std::pow(beta1, t)));
      s.inv_sqrt_bias2 =
          static_cast<float>(1 / std::sqrt(1 - std::pow(beta2, t)));
      s.eps = static_cast<float>(options.eps());
      const double wd = options.weight_decay();
      s.l2 = decoupled ? 0.0f : static_cast<float>(wd);
      s.decay = decoupled ? static_cast<float>(1 - options.lr() * wd) : 1.0f;
      FusedAdamUpdate(p.data_ptr<float>(), p.grad().data_ptr<float>(),
                      state.exp_avg().template data_ptr<float>(),
                      state.exp_avg_sq().template data_ptr<float>(), p.numel(),
                      s);
    }
  }
  return loss;
}

}  // namespace

torch::Tensor FusedAdam::step(LossClosure closure) {
  return FusedStep<torch::optim::AdamOptions, torch::optim::AdamParamState,
                   torch::optim::Adam>(*this, /*decoupled=*/false, closure);
}

torch::Tensor FusedAdamW::step(LossClosure closure) {
  return FusedStep<torch::optim::AdamWOptions, torch::optim::AdamWParamState,
                   torch::optim::AdamW>(*this, /*decoupled=*/true, closure);
}

}  // namespace ouroboros::optimizers
