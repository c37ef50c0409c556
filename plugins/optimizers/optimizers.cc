// LibTorch's optimizers (and Adamax) as optimizer plugins. optim_config.lr and
// weight_decay are common; the rest comes from optim_config.params.
#include <torch/optim/adagrad.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/rmsprop.h>
#include <torch/optim/sgd.h>

#include <memory>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "ouroboros/config.h"
#include "ouroboros/errors.h"
#include "ouroboros/plugin_api.h"
#include "plugins/optimizers/adamax.h"
#include "plugins/optimizers/optimizers.pb.h"

namespace ouroboros::optimizers {
namespace {

using OptimizerOr = absl::StatusOr<std::unique_ptr<torch::optim::Optimizer>>;

template <typename Params>
absl::StatusOr<Params> ParseParams(const OptimizerContext& context) {
  Params params;
  absl::Status status = ParseConfigSection(context.config->params(),
                                           "optim_config.params", &params);
  if (!status.ok()) return WithContext(status, context.config_source);
  return params;
}

absl::Status PositiveIfSet(bool has, double value, absl::string_view field,
                           const OptimizerContext& context) {
  if (!has || value > 0) return absl::OkStatus();
  return WithContext(
      ConfigFieldError(absl::StrCat("optim_config.params.", field),
                       absl::StrCat("must be > 0 (got ", value, ")")),
      context.config_source);
}

absl::StatusOr<std::tuple<double, double>> Betas(
    const AdamParams& params, const OptimizerContext& context) {
  if (params.betas().empty()) return std::make_tuple(0.9, 0.999);
  if (params.betas_size() != 2) {
    return WithContext(
        ConfigFieldError("optim_config.params.betas",
                         absl::StrCat("needs exactly 2 values (got ",
                                      params.betas_size(), ")")),
        context.config_source);
  }
  for (double b : params.betas()) {
    if (!(b >= 0 && b < 1)) {
      return WithContext(
          ConfigFieldError("optim_config.params.betas",
                           absl::StrCat("each must be in [0, 1) (got ", b, ")")),
          context.config_source);
    }
  }
  return std::make_tuple(params.betas(0), params.betas(1));
}

// Builds the optimizer inside CallTorch: LibTorch checks options by throwing.
template <typename Make>
OptimizerOr Build(absl::string_view name, Make make) {
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  absl::Status status =
      CallTorch(absl::StrCat("creating optimizer ", name),
                [&] { optimizer = make(); });
  if (!status.ok()) return status;
  return optimizer;
}

OptimizerOr MakeSgd(const OptimizerContext& context) {
  absl::StatusOr<SgdParams> params = ParseParams<SgdParams>(context);
  if (!params.ok()) return params.status();
  if (params->nesterov() &&
      (params->momentum() <= 0 || params->dampening() != 0)) {
    return WithContext(
        ConfigFieldError("optim_config.params.nesterov",
                         "needs momentum > 0 and dampening = 0"),
        context.config_source);
  }
  const OptimConfig& c = *context.config;
  return Build("sgd", [&] {
    return std::make_unique<torch::optim::SGD>(
        context.parameters, torch::optim::SGDOptions(c.lr())
                                .momentum(params->momentum())
                                .dampening(params->dampening())
                                .nesterov(params->nesterov())
                                .weight_decay(c.weight_decay()));
  });
}

template <typename Optim, typename Options>
OptimizerOr MakeAdamLike(absl::string_view name,
                         const OptimizerContext& context) {
  absl::StatusOr<AdamParams> params = ParseParams<AdamParams>(context);
  if (!params.ok()) return params.status();
  absl::StatusOr<std::tuple<double, double>> betas = Betas(*params, context);
  if (!betas.ok()) return betas.status();
  if (absl::Status s = PositiveIfSet(params->has_eps(), params->eps(), "eps",
                                     context);
      !s.ok()) {
    return s;
  }
  const OptimConfig& c = *context.config;
  Options options(c.lr());
  options.betas(*betas).weight_decay(c.weight_decay());
  if (params->has_eps()) options.eps(params->eps());
  if constexpr (std::is_same_v<Optim, Adamax>) {
    if (params->amsgrad()) {
      return WithContext(ConfigFieldError("optim_config.params.amsgrad",
                                          "adamax has no amsgrad variant"),
                         context.config_source);
    }
  } else {
    options.amsgrad(params->amsgrad());
  }
  return Build(name, [&] {
    return std::make_unique<Optim>(context.parameters, options);
  });
}

OptimizerOr MakeAdam(const OptimizerContext& context) {
  return MakeAdamLike<torch::optim::Adam, torch::optim::AdamOptions>("adam",
                                                                     context);
}
OptimizerOr MakeAdamW(const OptimizerContext& context) {
  return MakeAdamLike<torch::optim::AdamW, torch::optim::AdamWOptions>(
      "adamw", context);
}
OptimizerOr MakeAdamax(const OptimizerContext& context) {
  return MakeAdamLike<Adamax, AdamaxOptions>("adamax", context);
}

OptimizerOr MakeAdagrad(const OptimizerContext& context) {
  absl::StatusOr<AdagradParams> params = ParseParams<AdagradParams>(context);
  if (!params.ok()) return params.status();
  if (absl::Status s = PositiveIfSet(params->has_eps(), params->eps(), "eps",
                                     context);
      !s.ok()) {
    return s;
  }
  const OptimConfig& c = *context.config;
  torch::optim::AdagradOptions options(c.lr());
  options.lr_decay(params->lr_decay())
      .initial_accumulator_value(params->initial_accumulator_value())
      .weight_decay(c.weight_decay());
  if (params->has_eps()) options.eps(params->eps());
  return Build("adagrad", [&] {
    return std::make_unique<torch::optim::Adagrad>(context.parameters, options);
  });
}

OptimizerOr MakeRmsprop(const OptimizerContext& context) {
  absl::StatusOr<RmspropParams> params = ParseParams<RmspropParams>(context);
  if (!params.ok()) return params.status();
  for (auto [has, value, field] :
       {std::make_tuple(params->has_eps(), params->eps(), "eps"),
        std::make_tuple(params->has_alpha(), params->alpha(), "alpha")}) {
    if (absl::Status s = PositiveIfSet(has, value, field, context); !s.ok()) {
      return s;
    }
  }
  const OptimConfig& c = *context.config;
  torch::optim::RMSpropOptions options(c.lr());
  options.momentum(params->momentum())
      .centered(params->centered())
      .weight_decay(c.weight_decay());
  if (params->has_eps()) options.eps(params->eps());
  if (params->has_alpha()) options.alpha(params->alpha());
  return Build("rmsprop", [&] {
    return std::make_unique<torch::optim::RMSprop>(context.parameters, options);
  });
}

}  // namespace

OUROBOROS_REGISTER_OPTIMIZER("sgd", "SGD with optional (Nesterov) momentum",
                             MakeSgd);
OUROBOROS_REGISTER_OPTIMIZER("adam", "Adam (Kingma & Ba)", MakeAdam);
OUROBOROS_REGISTER_OPTIMIZER("adamw", "AdamW, decoupled weight decay",
                             MakeAdamW);
OUROBOROS_REGISTER_OPTIMIZER("adamax", "Adamax, Adam with the infinity norm",
                             MakeAdamax);
OUROBOROS_REGISTER_OPTIMIZER("adagrad", "Adagrad", MakeAdagrad);
OUROBOROS_REGISTER_OPTIMIZER("rmsprop", "RMSprop", MakeRmsprop);

}  // namespace ouroboros::optimizers
