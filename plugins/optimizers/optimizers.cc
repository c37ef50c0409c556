// LibTorch's optimizers (and Adamax) as optimizer plugins. optim_config.lr and
// weight_decay are common; the rest comes from optim_config.params.
#include <torch/optim/adagrad.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/rmsprop.h>
#include <torch/optim/sgd.h>

#include <memory>
#include <tuple>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "ouroboros/api/plugin_api.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/config/config.h"
#include "ouroboros/config/config_checks.h"
#include "plugins/optimizers/adamax.h"
#include "plugins/optimizers/fused_adam.h"
#include "plugins/optimizers/optimizers.pb.h"

namespace ouroboros::optimizers {
namespace {

template <typename Params>
absl::StatusOr<Params> ParseParams(const OptimConfig& config) {
  return ParseSection<Params>(config.params(), "optim_config.params");
}

absl::Status Positive(double value, absl::string_view field) {
  return CheckAbove(absl::StrCat("optim_config.params.", field), value, 0.0);
}

absl::StatusOr<std::tuple<double, double>> Betas(const AdamParams& params) {
  if (params.betas_size() != 2) {
    return ConfigFieldError(
        "optim_config.params.betas",
        absl::StrCat("needs exactly 2 values (got ", params.betas_size(), ")"));
  }
  for (double b : params.betas()) {
    if (!(b >= 0 && b < 1)) {
      return ConfigFieldError(
          "optim_config.params.betas",
          absl::StrCat("each must be in [0, 1) (got ", b, ")"));
    }
  }
  return std::make_tuple(params.betas(0), params.betas(1));
}

absl::StatusOr<torch::optim::SGDOptions> SgdOptions(const OptimConfig& c) {
  absl::StatusOr<SgdParams> params = ParseParams<SgdParams>(c);
  if (!params.ok()) return params.status();
  RETURN_IF_ERROR(
      CheckAtLeast("optim_config.params.momentum", params->momentum(), 0.0));
  if (params->nesterov() &&
      (params->momentum() <= 0 || params->dampening() != 0)) {
    return ConfigFieldError("optim_config.params.nesterov",
                            "needs momentum > 0 and dampening = 0");
  }
  return torch::optim::SGDOptions(c.lr())
      .momentum(params->momentum())
      .dampening(params->dampening())
      .nesterov(params->nesterov())
      .weight_decay(c.weight_decay());
}

template <typename Options>
absl::StatusOr<Options> AdamLikeOptions(const OptimConfig& c) {
  absl::StatusOr<AdamParams> params = ParseParams<AdamParams>(c);
  if (!params.ok()) return params.status();
  absl::StatusOr<std::tuple<double, double>> betas = Betas(*params);
  if (!betas.ok()) return betas.status();
  RETURN_IF_ERROR(Positive(params->eps(), "eps"));
  Options options(c.lr());
  options.betas(*betas).eps(params->eps()).weight_decay(c.weight_decay());
  if constexpr (std::is_same_v<Options, AdamaxOptions>) {
    if (params->amsgrad()) {
      return ConfigFieldError("optim_config.params.amsgrad",
                              "adamax has no amsgrad variant");
    }
    if (!params->fused()) {
      return ConfigFieldError("optim_config.params.fused",
                              "adamax has only its own step (for adam and "
                              "adamw)");
    }
  } else {
    options.amsgrad(params->amsgrad());
  }
  return options;
}

absl::StatusOr<torch::optim::AdagradOptions> AdagradOptions(
    const OptimConfig& c) {
  absl::StatusOr<AdagradParams> params = ParseParams<AdagradParams>(c);
  if (!params.ok()) return params.status();
  RETURN_IF_ERROR(Positive(params->eps(), "eps"));
  torch::optim::AdagradOptions options(c.lr());
  options.lr_decay(params->lr_decay())
      .initial_accumulator_value(params->initial_accumulator_value())
      .eps(params->eps())
      .weight_decay(c.weight_decay());
  return options;
}

absl::StatusOr<torch::optim::RMSpropOptions> RmspropOptions(
    const OptimConfig& c) {
  absl::StatusOr<RmspropParams> params = ParseParams<RmspropParams>(c);
  if (!params.ok()) return params.status();
  RETURN_IF_ERROR(Positive(params->eps(), "eps"));
  RETURN_IF_ERROR(Positive(params->alpha(), "alpha"));
  torch::optim::RMSpropOptions options(c.lr());
  options.momentum(params->momentum())
      .centered(params->centered())
      .eps(params->eps())
      .alpha(params->alpha())
      .weight_decay(c.weight_decay());
  return options;
}

// Adam and AdamW: the fused one-pass step unless params.fused is false.
template <typename LibTorch, typename Fused, typename Options>
struct AdamPlugin {
  static absl::StatusOr<std::unique_ptr<torch::optim::Optimizer>> Make(
      const OptimizerContext& context) {
    absl::StatusOr<Options> options = AdamLikeOptions<Options>(*context.config);
    if (!options.ok()) {
      return WithContext(options.status(), context.config_source);
    }
    ASSIGN_OR_RETURN(AdamParams params,
                     ParseParams<AdamParams>(*context.config));
    std::unique_ptr<torch::optim::Optimizer> optimizer;
    RETURN_IF_ERROR(CallTorch(
        absl::StrCat("creating optimizer ", context.config->name()), [&] {
          if (params.fused()) {
            optimizer = std::make_unique<Fused>(context.parameters, *options);
          } else {
            optimizer =
                std::make_unique<LibTorch>(context.parameters, *options);
          }
        }));
    return optimizer;
  }
  static absl::Status Validate(const RunConfig& config) {
    return AdamLikeOptions<Options>(config.optim_config()).status();
  }
};

// The factory and the validator of one optimizer, from its options parser.
template <typename Optim, auto kOptionsFrom>
struct Plugin {
  static absl::StatusOr<std::unique_ptr<torch::optim::Optimizer>> Make(
      const OptimizerContext& context) {
    auto options = kOptionsFrom(*context.config);
    if (!options.ok()) {
      return WithContext(options.status(), context.config_source);
    }
    std::unique_ptr<torch::optim::Optimizer> optimizer;
    absl::Status status = CallTorch(
        absl::StrCat("creating optimizer ", context.config->name()), [&] {
          optimizer = std::make_unique<Optim>(context.parameters, *options);
        });
    if (!status.ok()) return status;
    return optimizer;
  }
  static absl::Status Validate(const RunConfig& config) {
    return kOptionsFrom(config.optim_config()).status();
  }
};

using Sgd = Plugin<torch::optim::SGD, SgdOptions>;
using Adam =
    AdamPlugin<torch::optim::Adam, FusedAdam, torch::optim::AdamOptions>;
using AdamW =
    AdamPlugin<torch::optim::AdamW, FusedAdamW, torch::optim::AdamWOptions>;
using AdamaxPlugin = Plugin<Adamax, AdamLikeOptions<AdamaxOptions>>;
using Adagrad = Plugin<torch::optim::Adagrad, AdagradOptions>;
using Rmsprop = Plugin<torch::optim::RMSprop, RmspropOptions>;

}  // namespace

OUROBOROS_REGISTER_OPTIMIZER("sgd", "SGD with optional (Nesterov) momentum",
                             Sgd::Make, Sgd::Validate,
                             SectionDefaultsOf<SgdParams>());
OUROBOROS_REGISTER_OPTIMIZER("adam", "Adam (Kingma & Ba)", Adam::Make,
                             Adam::Validate, SectionDefaultsOf<AdamParams>());
OUROBOROS_REGISTER_OPTIMIZER("adamw", "AdamW, decoupled weight decay",
                             AdamW::Make, AdamW::Validate,
                             SectionDefaultsOf<AdamParams>());
OUROBOROS_REGISTER_OPTIMIZER("adamax", "Adamax, Adam with the infinity norm",
                             AdamaxPlugin::Make, AdamaxPlugin::Validate,
                             SectionDefaultsOf<AdamParams>());
OUROBOROS_REGISTER_OPTIMIZER("adagrad", "Adagrad", Adagrad::Make,
                             Adagrad::Validate,
                             SectionDefaultsOf<AdagradParams>());
OUROBOROS_REGISTER_OPTIMIZER("rmsprop", "RMSprop", Rmsprop::Make,
                             Rmsprop::Validate,
                             SectionDefaultsOf<RmspropParams>());

}  // namespace ouroboros::optimizers
