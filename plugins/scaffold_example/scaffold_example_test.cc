#include "plugins/scaffold_example/scaffold_example.h"

#include <ATen/ATen.h>
#include <torch/optim/adam.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "ouroboros/config.h"
#include "ouroboros/data.h"
#include "ouroboros/plugin_api.h"
#include "ouroboros/registry.h"
#include "ouroboros/trainer.h"
#include "plugins/scaffold_example/default_config.h"

namespace ouroboros::scaffold_example {
namespace {

RunConfig DefaultConfig(const std::vector<std::string>& overrides = {}) {
  absl::StatusOr<RunConfig> config =
      ParseRunConfig(kDefaultConfigJson, "default_config.json", overrides);
  EXPECT_TRUE(config.ok()) << config.status();
  return *config;
}

TEST(ScaffoldExampleTest, DefaultConfigBuildsAModelWithLogitsPerClass) {
  RunConfig config = DefaultConfig();
  ModelContext context{&config, "default_config.json", DataSpec{{2, 3}, 4}};
  absl::StatusOr<std::unique_ptr<Model>> model = MakeScaffoldExample(context);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->Forward(at::randn({5, 2, 3})).sizes(),
            (at::IntArrayRef{5, 4}));
}

TEST(ScaffoldExampleTest, RejectsBadSettings) {
  EXPECT_EQ(std::string(ParseScaffoldExampleConfig(
                            DefaultConfig({"model_config.logit_scale=0"}))
                            .status()
                            .message()),
            "model_config.logit_scale: must be > 0 (got 0)");
  EXPECT_EQ(
      std::string(
          ValidateRings(DefaultConfig({"data_config.source_config.noise=-1"}))
              .message()),
      "data_config.source_config.noise: must be a finite number >= 0 "
      "(got -1)");
}

// The plugin as main loads it (its own registrations), trained by the
// core's Trainer on its own data source: the scaffold cannot rot silently.
TEST(ScaffoldExampleTest, TrainsOnItsOwnDataUnderThePlainTrainer) {
  PluginRegistry registry;
  ASSERT_TRUE(RegisterBuiltinDataSources(registry).ok());
  ASSERT_TRUE(ouroboros_plugin_info()->register_all(registry, "test").ok());
  // LibTorch's Adam standing in for the optimizers plugin.
  OptimizerFactory adam = [](const OptimizerContext& context)
      -> absl::StatusOr<std::unique_ptr<torch::optim::Optimizer>> {
    return std::make_unique<torch::optim::Adam>(context.parameters,
                                                context.config->lr());
  };
  ASSERT_TRUE(
      registry.Register(OptimizerEntry{"adam", "", adam, nullptr, "test"})
          .ok());
  RunConfig config = DefaultConfig();
  config.set_pipeline(kDefaultPipeline);
  PipelineEntry train{kDefaultPipeline, "", nullptr, nullptr, "test"};
  train.factory =
      [](const PipelineContext&) -> absl::StatusOr<std::unique_ptr<Pipeline>> {
    return nullptr;
  };
  ASSERT_TRUE(registry.Register(std::move(train)).ok());
  absl::Status checked = registry.CheckConfig(config);
  ASSERT_TRUE(checked.ok()) << checked;
  PipelineContext context;
  context.config = &config;
  context.config_source = "default_config.json";
  context.run_dir = std::string(std::getenv("TEST_TMPDIR")) + "/run";
  context.registry = &registry;
  Trainer trainer(context);
  absl::StatusOr<TrainResult> result = trainer.Run();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_GT(result->test.at("accuracy"), 0.9);  // chance: 0.5
}

}  // namespace
}  // namespace ouroboros::scaffold_example
