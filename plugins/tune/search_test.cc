#include "plugins/tune/search.h"

#include <cmath>
#include <set>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ouroboros/config/config.h"

namespace ouroboros::tune {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A valid run config, open at the end for its pipeline_config.
constexpr char kBaseConfig[] = R"({
  "model": "mlp", "pipeline": "tune", "seed": 7,
  "data_config": {"dataset": "synthetic",
                  "synthetic": {"num_samples": 64, "num_features": 4,
                                "num_classes": 2}},
  "optim_config": {"name": "adam", "lr": 0.01},
  "run_config": {"epochs": 3, "batch_size": 8})";

RunConfig WithPipelineConfig(const std::string& pipeline_config_json) {
  absl::StatusOr<RunConfig> config =
      ParseRunConfig(std::string(kBaseConfig) +
                         ", \"pipeline_config\": " + pipeline_config_json + "}",
                     "test.json");
  EXPECT_TRUE(config.ok()) << config.status();
  return *config;
}

TunePipelineConfig Parse(const std::string& json) {
  absl::StatusOr<TunePipelineConfig> tune =
      ParseTuneConfig(WithPipelineConfig(json));
  EXPECT_TRUE(tune.ok()) << tune.status();
  return *tune;
}

std::string ErrorOf(const std::string& json) {
  absl::StatusOr<TunePipelineConfig> tune =
      ParseTuneConfig(WithPipelineConfig(json));
  return tune.ok() ? "(no error)" : std::string(tune.status().message());
}

TEST(ParseTuneConfigTest, FillsDefaults) {
  TunePipelineConfig tune =
      Parse(R"({"space": {"optim_config.lr": {"grid": [0.1, 0.01]}}})");
  EXPECT_EQ(tune.search(), "random");
  EXPECT_EQ(tune.num_trials(), 8);
  EXPECT_EQ(tune.metric(), "loss");
  EXPECT_EQ(tune.mode(), "min");
  EXPECT_EQ(tune.early_stopping().method(), "none");
  EXPECT_EQ(tune.trial_pipeline(), "train");
  EXPECT_EQ(tune.early_stopping().grace_epochs(), 1);
  EXPECT_EQ(tune.early_stopping().reduction_factor(), 3);
  EXPECT_EQ(tune.early_stopping().min_trials(), 3);
}

TEST(ParseTuneConfigTest, AnExplicitValueIsKeptAndChecked) {
  EXPECT_EQ(Parse(R"({"search": "grid", "space": {"a": {"grid": [1, 2]}}})")
                .num_trials(),
            0);  // every point of the grid
  EXPECT_EQ(ErrorOf(R"({"num_trials": 0, "space": {"a": {"grid": [1]}}})"),
            "pipeline_config.num_trials: random search needs >= 1 trial (got "
            "0)");
  EXPECT_EQ(ErrorOf(R"({"early_stopping": {"grace_epochs": 0},
                        "space": {"a": {"grid": [1]}}})"),
            "pipeline_config.early_stopping.grace_epochs: must be >= 1 (got "
            "0)");
}

TEST(ParseTuneConfigTest, ErrorsNameTheFieldAndReason) {
  EXPECT_EQ(ErrorOf(R"({"space": {}})").substr(0, 23),
            "pipeline_config.space: ");
  EXPECT_EQ(ErrorOf(R"({"space": {"a": {"grid": [1], "uniform": [0, 1]}}})"),
            "pipeline_config.space.a: give exactly one of grid, choice, "
            "uniform, log_uniform, int_range");
  EXPECT_EQ(ErrorOf(R"({"space": {"a": {"log_uniform": [0, 1]}}})"),
            "pipeline_config.space.a.log_uniform: must be [low, high] with "
            "low <= high and low > 0");
  EXPECT_EQ(ErrorOf(R"({"space": {"a": {"uniform": [2, 1]}}})"),
            "pipeline_config.space.a.uniform: must be [low, high] with low "
            "<= high");
  EXPECT_THAT(ErrorOf(R"({"search": "grid",
                          "space": {"a": {"uniform": [0, 1]}}})"),
              HasSubstr("grid search needs grid or choice values"));
  EXPECT_EQ(ErrorOf(R"({"search": "bayes", "space": {"a": {"grid": [1]}}})"),
            "pipeline_config.search: unknown search 'bayes'; known: random, "
            "grid");
  EXPECT_THAT(ErrorOf(R"({"metric": "acc", "space": {"a": {"grid": [1]}}})"),
              HasSubstr("pipeline_config.metric: unknown metric 'acc'"));
  EXPECT_THAT(ErrorOf(R"({"space": {"a": {"grid": [1]}},
                          "early_stopping": {"method": "hyperband"}})"),
              HasSubstr("pipeline_config.early_stopping.method"));
  EXPECT_EQ(ErrorOf(R"({"space": {"a": {"grid": [1]}},
                        "trial_timeout_seconds": -1})"),
            "pipeline_config.trial_timeout_seconds: must be >= 0 (got -1)");
  EXPECT_THAT(ErrorOf(R"({"space": {"a": {"grid": [1]}}, "spaces": 1})"),
              HasSubstr("pipeline_config.spaces"));
  EXPECT_THAT(ErrorOf(R"({"space": {"a": {"grid": [1]}},
                          "trial_pipeline": "tune"})"),
              HasSubstr("a trial cannot itself be a tune"));
}

TEST(MakeTrialsTest, GridIsTheCrossProductInOrder) {
  TunePipelineConfig tune = Parse(R"({"search": "grid", "space": {
      "model_config.layer_sizes": {"grid": [[64], [128, 64]]},
      "optim_config.lr": {"choice": [0.1, 0.01, 0.001]}}})");
  absl::StatusOr<std::vector<Trial>> trials = MakeTrials(tune, 1);
  ASSERT_TRUE(trials.ok());
  ASSERT_EQ(trials->size(), 6u);
  EXPECT_THAT(
      (*trials)[0].overrides,
      ElementsAre("model_config.layer_sizes=[64]", "optim_config.lr=0.1"));
  EXPECT_THAT((*trials)[5].overrides,
              ElementsAre("model_config.layer_sizes=[128,64]",
                          "optim_config.lr=0.001"));
  std::set<std::vector<std::string>> distinct;
  for (const Trial& t : *trials) distinct.insert(t.overrides);
  EXPECT_EQ(distinct.size(), 6u);
  tune.set_num_trials(4);
  EXPECT_EQ(MakeTrials(tune, 1)->size(), 4u);
}

TEST(MakeTrialsTest, RandomDrawsStayInRangeAndRepeatWithTheSeed) {
  TunePipelineConfig tune = Parse(R"({"num_trials": 200, "space": {
      "optim_config.lr": {"log_uniform": [0.0001, 0.1]},
      "optim_config.weight_decay": {"uniform": [0, 0.5]},
      "run_config.batch_size": {"int_range": [99998, 100000]},
      "optim_config.name": {"choice": ["adam", "sgd"]}}})");
  absl::StatusOr<std::vector<Trial>> a = MakeTrials(tune, 3);
  absl::StatusOr<std::vector<Trial>> b = MakeTrials(tune, 3);
  absl::StatusOr<std::vector<Trial>> c = MakeTrials(tune, 4);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  ASSERT_EQ(a->size(), 200u);
  std::set<std::string> batch_sizes, names;
  int small_lr = 0;
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ((*a)[i].overrides, (*b)[i].overrides);
    const auto& p = (*a)[i].params;
    // Reals come rounded to 4 significant digits.
    EXPECT_LE(p.at("optim_config.lr").size(), 10u) << p.at("optim_config.lr");
    double lr = std::stod(p.at("optim_config.lr"));
    EXPECT_GE(lr, 0.0001);
    EXPECT_LE(lr, 0.1);
    small_lr += lr < 0.001;  // a third of the log range
    double wd = std::stod(p.at("optim_config.weight_decay"));
    EXPECT_GE(wd, 0);
    EXPECT_LE(wd, 0.5);
    batch_sizes.insert(p.at("run_config.batch_size"));
    names.insert(p.at("optim_config.name"));
  }
  EXPECT_NE((*a)[0].overrides, (*c)[0].overrides);
  EXPECT_EQ(batch_sizes, (std::set<std::string>{"99998", "99999", "100000"}));
  EXPECT_EQ(names, (std::set<std::string>{"\"adam\"", "\"sgd\""}));
  // Log-uniform: P(lr < 1e-3) = 1/3; 200 draws put it well inside (40, 95).
  EXPECT_GT(small_lr, 40);
  EXPECT_LT(small_lr, 95);
}

TEST(MakeTrialsTest, OverridesApplyToTheConfig) {
  TunePipelineConfig tune = Parse(R"({"search": "grid", "space": {
      "optim_config.lr": {"grid": [0.5]},
      "optim_config.name": {"grid": ["sgd"]}}})");
  absl::StatusOr<std::vector<Trial>> trials = MakeTrials(tune, 1);
  ASSERT_TRUE(trials.ok());
  absl::StatusOr<RunConfig> config = ParseRunConfig(
      std::string(kBaseConfig) + "}", "x", (*trials)[0].overrides);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->optim_config().lr(), 0.5);
  EXPECT_EQ(config->optim_config().name(), "sgd");
}

EarlyStopping Rule(int grace, int min_trials, int reduction_factor) {
  EarlyStopping rule;
  rule.set_grace_epochs(grace);
  rule.set_min_trials(min_trials);
  rule.set_reduction_factor(reduction_factor);
  return rule;
}

TEST(MedianRuleTest, StopsOnlyBelowTheMedianOfRunningAverages) {
  // Others' running averages after 2 epochs: 0.6, 0.7, 0.8 -> median 0.7.
  std::vector<std::vector<double>> others = {
      {0.5, 0.7}, {0.6, 0.8, 0.9}, {0.7, 0.9}};
  EarlyStopping rule = Rule(1, 3, 3);
  EXPECT_TRUE(MedianRuleStops({0.5, 0.69}, others, rule, "max"));
  EXPECT_FALSE(MedianRuleStops({0.5, 0.71}, others, rule, "max"));
  EXPECT_FALSE(MedianRuleStops({0.71, 0.5}, others, rule, "max"));  // best
  // Within the grace period, or with too few others: never.
  EXPECT_FALSE(MedianRuleStops({0.1}, others, rule, "max"));
  EXPECT_FALSE(MedianRuleStops({0.1, 0.1}, others, Rule(2, 3, 3), "max"));
  EXPECT_FALSE(MedianRuleStops({0.1, 0.1}, others, Rule(1, 4, 3), "max"));
  // min mode: losses, lower is better.
  EXPECT_TRUE(MedianRuleStops({0.9, 0.71}, others, rule, "min"));
  EXPECT_FALSE(MedianRuleStops({0.9, 0.69}, others, rule, "min"));
}

TEST(AshaTest, KeepsTheTopFractionAtEachRung) {
  // Rungs at 1, 3, 9 epochs (grace 1, factor 3).
  EarlyStopping rule = Rule(1, 0, 3);
  std::vector<std::vector<double>> others = {{0.2}, {0.4}, {0.6}, {0.8}};
  // Recorded at rung 1 with the trial's 0.5: {0.5,0.2,0.4,0.6,0.8}; the 2/3
  // quantile (numpy linear) is 0.5 + (2.67-2)*(0.6-0.5) = 0.5667.
  EXPECT_TRUE(AshaStops({0.5}, others, rule, "max"));
  EXPECT_FALSE(AshaStops({0.7}, others, rule, "max"));
  EXPECT_FALSE(AshaStops({0.1, 0.1}, others, rule, "max"));  // not a rung
  // Alone at a rung: nothing to compare with, it goes on.
  EXPECT_FALSE(AshaStops({0.1, 0.1, 0.1}, others, rule, "max"));
  // min: the 1/3 quantile of {0.5,0.2,0.4,0.6,0.8} is 0.4 + 0.33*0.1.
  EXPECT_TRUE(AshaStops({0.5}, others, rule, "min"));
  EXPECT_FALSE(AshaStops({0.3}, others, rule, "min"));
}

}  // namespace
}  // namespace ouroboros::tune
