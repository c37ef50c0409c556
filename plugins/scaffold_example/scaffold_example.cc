#include "plugins/scaffold_example/scaffold_example.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "ouroboros/api/plugin_api.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/config/config.h"
#include "ouroboros/config/config_checks.h"
#include "plugins/scaffold_example/default_config.h"

namespace ouroboros::scaffold_example {
namespace {

constexpr char kSourceSection[] = "data_config.source_config";

class ScaffoldExample : public Model {
 public:
  ScaffoldExample(const ScaffoldExampleConfig& config, const DataSpec& data)
      : logit_scale_(config.logit_scale()) {
    int64_t in_features = 1;
    for (int64_t d : data.input_shape) in_features *= d;
    hidden_ = module_.register_module(
        "hidden", torch::nn::Linear(in_features, config.hidden_size()));
    output_ = module_.register_module(
        "output", torch::nn::Linear(config.hidden_size(), data.num_classes));
  }

  torch::nn::Module& module() override { return module_; }

  at::Tensor Forward(const at::Tensor& inputs) override {
    return output_->forward(at::tanh(hidden_->forward(inputs.flatten(1)))) *
           logit_scale_;
  }

  // The family's own optimizer step: here the core's standard one (Forward,
  // Loss, backward, gradient averaging across ranks, clipping, the
  // optimizer's step). Add the family's work before or after it, e.g.
  // rewrite the weights after the step with training.optimizer() at hand,
  // or write a step of its own (training.SynchronizeGradients() between
  // backward and the optimizer step).
  absl::StatusOr<double> TrainStep(const Batch& batch,
                                   TrainingContext& training) override {
    return training.StandardTrainStep(batch);
  }

 private:
  double logit_scale_;
  torch::nn::Module module_;
  torch::nn::Linear hidden_{nullptr}, output_{nullptr};
};

absl::Status ValidateScaffoldExampleConfig(const RunConfig& config) {
  return ParseScaffoldExampleConfig(config).status();
}

absl::StatusOr<RingsConfig> ParseRings(const RunConfig& config) {
  ASSIGN_OR_RETURN(RingsConfig rings,
                   ParseSection<RingsConfig>(
                       config.data_config().source_config(), kSourceSection));
  // config_checks.h words a bad value the same way everywhere.
  RETURN_IF_ERROR(CheckAtLeast(absl::StrCat(kSourceSection, ".num_samples"),
                               rings.num_samples(), 4));
  RETURN_IF_ERROR(CheckFiniteAtLeast(absl::StrCat(kSourceSection, ".noise"),
                                     rings.noise(), 0));
  return rings;
}

// n points, alternately on the inner and the outer ring, from `seed`.
Dataset RingPoints(int64_t n, double noise, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Tensor labels = at::arange(n, at::kLong) % 2;
  at::Tensor angle = at::rand({n}, gen) * (2 * M_PI);
  at::Tensor radius = 1.0 + labels.to(at::kFloat) + noise * at::randn({n}, gen);
  Dataset points;
  points.inputs =
      at::stack({radius * at::cos(angle), radius * at::sin(angle)}, 1);
  points.targets = labels;
  points.spec = DataSpec{{2}, 2};
  return points;
}

}  // namespace

absl::StatusOr<ScaffoldExampleConfig> ParseScaffoldExampleConfig(
    const RunConfig& config) {
  ASSIGN_OR_RETURN(ScaffoldExampleConfig parsed,
                   ParseSection<ScaffoldExampleConfig>(config.model_config(),
                                                       "model_config"));
  RETURN_IF_ERROR(
      CheckAtLeast("model_config.hidden_size", parsed.hidden_size(), 1));
  RETURN_IF_ERROR(
      CheckAbove("model_config.logit_scale", parsed.logit_scale(), 0.0));
  return parsed;
}

absl::StatusOr<std::unique_ptr<Model>> MakeScaffoldExample(
    const ModelContext& context) {
  absl::StatusOr<ScaffoldExampleConfig> config =
      ParseScaffoldExampleConfig(*context.config);
  if (!config.ok()) return WithContext(config.status(), context.config_source);
  std::unique_ptr<Model> model;
  RETURN_IF_ERROR(CallTorch("building scaffold_example", [&] {
    model = std::make_unique<ScaffoldExample>(*config, context.data);
  }));
  return model;
}

absl::StatusOr<DataSplits> MakeRings(const DataSourceContext& context) {
  absl::StatusOr<RingsConfig> rings = ParseRings(*context.config);
  if (!rings.ok()) return WithContext(rings.status(), context.config_source);
  const uint64_t seed = context.config->seed();
  const int64_t n = rings->num_samples();
  DataSplits splits;
  RETURN_IF_ERROR(CallTorch("making rings", [&] {
    splits.train = RingPoints(n, rings->noise(), seed);
    splits.val = RingPoints(n / 4, rings->noise(), seed + 1);
    splits.test = RingPoints(n / 4, rings->noise(), seed + 2);
    splits.spec = splits.train.spec;
  }));
  return splits;
}

absl::Status ValidateRings(const RunConfig& config) {
  return ParseRings(config).status();
}

OUROBOROS_REGISTER_MODEL("scaffold_example",
                         "ScaffoldExample (generated by tools/new_plugin)",
                         MakeScaffoldExample, kDefaultConfigJson,
                         ValidateScaffoldExampleConfig,
                         SectionDefaultsOf<ScaffoldExampleConfig>());
OUROBOROS_REGISTER_DATA_SOURCE(kRingsDataSource,
                               "Two rings of 2-d points (generated by "
                               "tools/new_plugin)",
                               MakeRings, ValidateRings,
                               SectionDefaultsOf<RingsConfig>());

}  // namespace ouroboros::scaffold_example
