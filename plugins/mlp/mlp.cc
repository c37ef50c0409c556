#include "plugins/mlp/mlp.h"

#include <torch/nn/module.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "ouroboros/api/plugin_api.h"
#include "ouroboros/base/dropout.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/config/config.h"
#include "ouroboros/config/config_checks.h"
#include "plugins/mlp/default_config.h"

namespace ouroboros::mlp {
namespace {

// torch::nn::Dropout's distribution with a cheaper mask (dropout.h): on the
// Fashion-MNIST MLP LibTorch's mask was a fifth of the step.
class MaskedDropoutLayerImpl : public torch::nn::Module {
 public:
  explicit MaskedDropoutLayerImpl(double p) : p_(p) {}
  at::Tensor forward(const at::Tensor& input) {
    return MaskedDropout(input, p_, is_training());
  }

 private:
  double p_;
};
TORCH_MODULE(MaskedDropoutLayer);

class Mlp : public Model {
 public:
  Mlp(const MlpConfig& config, const DataSpec& data) {
    int64_t in_features = 1;
    for (int64_t d : data.input_shape) in_features *= d;
    int index = 0;
    for (int32_t width : config.layer_sizes()) {
      layers_->push_back(absl::StrCat("linear", index),
                         torch::nn::Linear(in_features, width));
      AddActivation(config.activation(), index);
      if (config.dropout() > 0) {
        layers_->push_back(absl::StrCat("dropout", index),
                           MaskedDropoutLayer(config.dropout()));
      }
      in_features = width;
      ++index;
    }
    layers_->push_back("output",
                       torch::nn::Linear(in_features, data.num_classes));
    module_.register_module("layers", layers_);
  }

  torch::nn::Module& module() override { return module_; }

  at::Tensor Forward(const at::Tensor& inputs) override {
    return layers_->forward(inputs.flatten(1));
  }

 private:
  void AddActivation(const std::string& name, int index) {
    std::string key = absl::StrCat("activation", index);
    if (name == "tanh") {
      layers_->push_back(std::string(key), torch::nn::Tanh());
    } else if (name == "selu") {
      layers_->push_back(std::string(key), torch::nn::SELU());
    } else if (name == "gelu") {
      layers_->push_back(std::string(key), torch::nn::GELU());
    } else if (name == "sigmoid") {
      layers_->push_back(std::string(key), torch::nn::Sigmoid());
    } else {
      layers_->push_back(std::string(key), torch::nn::ReLU());
    }
  }

  torch::nn::Module module_;
  torch::nn::Sequential layers_;
};

}  // namespace

absl::StatusOr<MlpConfig> ParseMlpConfig(const RunConfig& config) {
  ASSIGN_OR_RETURN(MlpConfig mlp, ParseSection<MlpConfig>(config.model_config(),
                                                          "model_config"));
  if (mlp.layer_sizes().empty()) {
    return ConfigFieldError("model_config.layer_sizes",
                            "must list at least one hidden layer width");
  }
  for (int i = 0; i < mlp.layer_sizes_size(); ++i) {
    RETURN_IF_ERROR(
        CheckAtLeast(absl::StrCat("model_config.layer_sizes[", i, "]"),
                     mlp.layer_sizes(i), 1));
  }
  RETURN_IF_ERROR(CheckOneOf("model_config.activation", mlp.activation(),
                             {"relu", "tanh", "selu", "gelu", "sigmoid"},
                             "activation"));
  RETURN_IF_ERROR(CheckInRange("model_config.dropout", mlp.dropout(), 0.0, 1.0,
                               Interval::kClosedOpen));
  return mlp;
}

absl::StatusOr<std::unique_ptr<Model>> MakeMlp(const ModelContext& context) {
  absl::StatusOr<MlpConfig> config = ParseMlpConfig(*context.config);
  if (!config.ok()) return WithContext(config.status(), context.config_source);
  if (context.data.num_classes < 1 || context.data.input_shape.empty()) {
    return absl::InvalidArgumentError(
        "mlp: the dataset gives no input shape or classes");
  }
  std::unique_ptr<Model> model;
  absl::Status status = CallTorch("building the mlp", [&] {
    model = std::make_unique<Mlp>(*config, context.data);
  });
  if (!status.ok()) return status;
  return model;
}

absl::Status ValidateMlpConfig(const RunConfig& config) {
  return ParseMlpConfig(config).status();
}

OUROBOROS_REGISTER_MODEL("mlp",
                         "Multi-layer perceptron, the classical baseline",
                         MakeMlp, kDefaultConfigJson, ValidateMlpConfig,
                         SectionDefaultsOf<MlpConfig>());

}  // namespace ouroboros::mlp
