#include "plugins/scaffold_example/scaffold_example.h"

#include <ATen/ATen.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "ouroboros/api/data.h"
#include "ouroboros/api/plugin_api.h"
#include "ouroboros/api/registry.h"
#include "ouroboros/config/config.h"
#include "ouroboros/train/resume_check.h"
#include "ouroboros/train/trainer.h"
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

// The plugin as main loads it (its own registrations), with the core's data
// sources and the Trainer's stand-ins (resume_check.h: LibTorch's Adam for
// the optimizers plugin, a `train` entry).
PluginRegistry& Registry() {
  static PluginRegistry* registry = [] {
    auto* r = new PluginRegistry;
    EXPECT_TRUE(RegisterBuiltinDataSources(*r).ok());
    EXPECT_TRUE(ouroboros_plugin_info()->register_all(*r, "test").ok());
    EXPECT_TRUE(RegisterTrainerStandIns(*r).ok());
    return r;
  }();
  return *registry;
}

// Trained by the core's Trainer on its own data source: the scaffold cannot
// rot silently.
TEST(ScaffoldExampleTest, TrainsOnItsOwnDataUnderThePlainTrainer) {
  RunConfig config = DefaultConfig();
  config.set_pipeline(kDefaultPipeline);
  absl::Status checked = Registry().CheckConfig(config);
  ASSERT_TRUE(checked.ok()) << checked;
  PipelineContext context;
  context.config = &config;
  context.config_source = "default_config.json";
  context.run_dir = std::string(std::getenv("TEST_TMPDIR")) + "/run";
  context.registry = &Registry();
  Trainer trainer(context);
  absl::StatusOr<TrainResult> result = trainer.Run();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_GT(result->test.at("accuracy"), 0.9);  // chance: 0.5
}

// Stopped after step 5 and resumed, the run ends bit-identical to one never
// stopped. Anything the family keeps beside its module's tensors (a cursor,
// a generator) must go through the model's SaveState / LoadState
// (ouroboros/api/component_state.h), or this fails naming the first differing
// tensor. main's resume matrix (tests/resume_matrix_test.py) also kills the
// family's default run from outside once plugins/BUILD lists it.
TEST(ScaffoldExampleTest, ResumesExactly) {
  RunConfig config = DefaultConfig({"run_config.epochs=2"});
  config.set_pipeline(kDefaultPipeline);
  absl::Status exact = CheckResumeIsExact(
      config, Registry(), std::string(std::getenv("TEST_TMPDIR")) + "/resume",
      5);
  EXPECT_TRUE(exact.ok()) << exact;
}

}  // namespace
}  // namespace ouroboros::scaffold_example
