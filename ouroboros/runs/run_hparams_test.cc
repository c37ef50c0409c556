#include "ouroboros/runs/run_hparams.h"

#include <string>
#include <variant>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ouroboros/config/config.h"

namespace ouroboros {
namespace {

using ::testing::ElementsAre;

constexpr char kConfig[] = R"({"run_name": "tiny", "model": "mlp", "seed": 5,
    "data_config": {"dataset": "synthetic", "synthetic": {"num_samples": 64,
                    "num_features": 4, "num_classes": 2}},
    "optim_config": {"name": "adam", "lr": 0.01},
    "run_config": {"epochs": 2, "batch_size": 16},
    "model_config": {"layer_sizes": [256, 128], "activation": "relu"},
    "score_config": {"metrics": ["loss", "accuracy"]},
    "hooks": [{"name": "probe", "config": {"every": 3}}]})";

RunConfig Parse(const std::vector<std::string>& overrides = {}) {
  absl::StatusOr<RunConfig> config =
      ParseRunConfig(kConfig, "test.json", overrides);
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : RunConfig();
}

TEST(RunHparamsTest, SettingsAreConfigJsonsFieldsByTheirPaths) {
  const RunHparams hparams = RunHparamsOf(Parse(), 1.7e9);
  const auto& settings = hparams.settings;
  EXPECT_EQ(std::get<double>(settings.at("optim_config.lr")), 0.01);
  EXPECT_EQ(std::get<double>(settings.at("seed")), 5);
  EXPECT_EQ(std::get<std::string>(settings.at("model")), "mlp");
  EXPECT_EQ(std::get<std::string>(settings.at("model_config.activation")),
            "relu");
  // A list of scalars is one setting; a list of objects goes by index.
  EXPECT_EQ(std::get<std::string>(settings.at("model_config.layer_sizes")),
            "[256, 128]");
  EXPECT_EQ(std::get<std::string>(settings.at("hooks[0].name")), "probe");
  EXPECT_EQ(std::get<double>(settings.at("hooks[0].config.every")), 3);
  // Defaults in force are settings too, as config.json shows them.
  EXPECT_EQ(std::get<bool>(settings.at("run_config.skip_plots")), false);
  EXPECT_EQ(hparams.start_time_secs, 1.7e9);
  EXPECT_THAT(hparams.metric_tags,
              ElementsAre("train/loss", "val/loss", "test/loss", "val/accuracy",
                          "test/accuracy"));
}

TEST(RunHparamsTest, RunsThatDifferOnlyInSeedShareAGroup) {
  const std::string group = RunHparamsOf(Parse(), 0).group_name;
  EXPECT_THAT(group, ::testing::StartsWith("config-"));
  EXPECT_EQ(RunHparamsOf(Parse({"seed=6", "run_name=\"other\""}), 0).group_name,
            group);
  EXPECT_NE(RunHparamsOf(Parse({"optim_config.lr=0.02"}), 0).group_name, group);
}

}  // namespace
}  // namespace ouroboros
