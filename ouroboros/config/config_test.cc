#include "ouroboros/config/config.h"

#include <cstdio>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "ouroboros/config/config_schema.h"

namespace ouroboros {
namespace {

constexpr char kGood[] = R"({
  "run_name": "demo",
  "model": "mlp",
  "seed": 3,
  "data_config": {
    "dataset": "synthetic",
    "synthetic": {"num_samples": 100, "num_features": 4, "num_classes": 3,
                  "noise": 0.5}
  },
  "optim_config": {"name": "adam", "lr": 0.01, "params": {"betas": [0.8, 0.9]}},
  "run_config": {"epochs": 2, "batch_size": 16, "log_every_steps": 5},
  "model_config": {"layer_sizes": [8, 8]}
})";

TEST(ConfigTest, ParsesAGoodConfig) {
  absl::StatusOr<RunConfig> c = ParseRunConfig(kGood, "good.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->run_name(), "demo");
  EXPECT_EQ(c->seed(), 3u);
  EXPECT_EQ(c->data_config().synthetic().num_classes(), 3);
  EXPECT_DOUBLE_EQ(c->optim_config().lr(), 0.01);
  EXPECT_EQ(c->run_config().batch_size(), 16);
  EXPECT_EQ(
      c->model_config().fields().at("layer_sizes").list_value().values_size(),
      2);
}

TEST(ConfigTest, ResolvedJsonReadsBackToTheSameConfig) {
  absl::StatusOr<RunConfig> c = ParseRunConfig(kGood, "good.json");
  ASSERT_TRUE(c.ok());
  std::string json = RunConfigToJson(*c);
  absl::StatusOr<RunConfig> again = ParseRunConfig(json, "config.json");
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << json;
  EXPECT_EQ(again->SerializeAsString(), c->SerializeAsString());
}

// Replaces the first occurrence of `from` in kGood by `to`.
std::string GoodWith(const std::string& from, const std::string& to) {
  std::string s = kGood;
  size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

TEST(ConfigTest, FillsTheDefaultsDeclaredBesideTheSchema) {
  absl::StatusOr<RunConfig> c = ParseRunConfig(kGood, "good.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->pipeline(), "train");
  EXPECT_DOUBLE_EQ(c->data_config().data_subset(), 1);
  EXPECT_EQ(c->data_config().split().method(), "holdout");
  EXPECT_DOUBLE_EQ(c->data_config().split().test_fraction(), 0.2);
  EXPECT_EQ(c->optim_config().scheduler().name(), "none");
  EXPECT_EQ(c->optim_config().scheduler().t_mult(), 1);
  ASSERT_EQ(c->score_config().metrics_size(), 2);
  EXPECT_EQ(c->score_config().metrics(0), "loss");
  EXPECT_EQ(c->score_config().metrics(1), "accuracy");
  // Derived: min for a monitored loss, else max.
  EXPECT_EQ(c->score_config().mode(), "max");
  absl::StatusOr<RunConfig> loss = ParseRunConfig(
      GoodWith(R"("seed": 3,)",
               R"("seed": 3, "score_config": {"monitor": "loss"},)"),
      "loss.json");
  ASSERT_TRUE(loss.ok()) << loss.status();
  EXPECT_EQ(loss->score_config().mode(), "min");
  // The printed config shows every field with its value in force.
  const std::string json = RunConfigToJson(*c);
  for (const char* shown :
       {"\"data_subset\": 1", "\"test_fraction\": 0.2",
        "\"method\": \"holdout\"", "\"t_mult\": 1", "\"mode\": \"max\"",
        "\"metrics\": [\"loss\", \"accuracy\"]", "\"pipeline\": \"train\""}) {
    EXPECT_NE(json.find(shown), std::string::npos) << shown << "\n" << json;
  }
}

TEST(ConfigTest, AnExplicitZeroIsAValueNotTheDefault) {
  for (const auto& [set, error] :
       std::vector<std::pair<std::string, std::string>>{
           {"data_config.data_subset=0",
            "data_config.data_subset: must be in (0, 1] (got 0)"},
           {"data_config.split.test_fraction=0",
            "data_config.split.test_fraction: must be in (0, 1) (got 0)"},
           {"optim_config.scheduler.t_mult=0",
            "optim_config.scheduler.t_mult: must be >= 1 (got 0)"}}) {
    SCOPED_TRACE(set);
    std::string with_scheduler = GoodWith(
        R"("lr": 0.01,)",
        R"("lr": 0.01, "scheduler": {"name": "cosine_warm_restarts", "t_0": 2},)");
    absl::StatusOr<RunConfig> c =
        ParseRunConfig(with_scheduler, "good.json", {set});
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(std::string(c.status().message()),
              absl::StrCat("--set=", set, ": ", error));
  }
}

struct Malformed {
  std::string name;
  std::string json;
  std::string error;
};

void PrintTo(const Malformed& m, std::ostream* os) { *os << m.name; }

class MalformedConfigTest : public ::testing::TestWithParam<Malformed> {};

TEST_P(MalformedConfigTest, GivesTheExactError) {
  absl::StatusOr<RunConfig> c = ParseRunConfig(GetParam().json, "bad.json");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(c.status().message()), GetParam().error);
}

INSTANTIATE_TEST_SUITE_P(
    Table, MalformedConfigTest,
    ::testing::Values(
        Malformed{"Empty", "",
                  "bad.json: line 1, column 1: unexpected end of "
                  "file, expected a value"},
        Malformed{"NotAnObject", "[1, 2]",
                  "bad.json: <config>: the config must be a JSON object"},
        Malformed{"TrailingComma", "{\"seed\": 1,}",
                  "bad.json: line 1, column 12: trailing comma before '}'"},
        Malformed{"DuplicateKey",
                  GoodWith("\"seed\": 3,", "\"seed\": 3, \"seed\": 4,"),
                  "bad.json: line 4, column 14: duplicate key 'seed'"},
        Malformed{"UnknownTopLevelField", GoodWith("\"seed\"", "\"sead\""),
                  "bad.json: sead: unknown field; did you mean 'seed'?"},
        Malformed{"UnknownNestedField", GoodWith("\"lr\"", "\"lrr\""),
                  "bad.json: optim_config.lrr: unknown field; did you mean "
                  "'lr'?"},
        Malformed{"UnknownDeepField", GoodWith("\"noise\"", "\"nois\""),
                  "bad.json: data_config.synthetic.nois: unknown field; did "
                  "you mean 'noise'?"},
        Malformed{"StringForNumber",
                  GoodWith("\"lr\": 0.01", "\"lr\": \"fast\""),
                  "bad.json: optim_config.lr: invalid value \"fast\": expected "
                  "a number"},
        Malformed{"FractionForInteger",
                  GoodWith("\"epochs\": 2", "\"epochs\": 2.5"),
                  "bad.json: run_config.epochs: invalid value 2.5: expected a "
                  "whole number in 32-bit range"},
        Malformed{"HugeInteger", GoodWith("\"epochs\": 2", "\"epochs\": 1e12"),
                  "bad.json: run_config.epochs: invalid value 1000000000000: "
                  "expected a whole number in 32-bit range"},
        Malformed{
            "CommasForAList", GoodWith("\"epochs\": 2", "\"epochs\": \"2,3\""),
            "bad.json: run_config.epochs: invalid value \"2,3\": expected "
            "a whole number in 32-bit range (a list is written [2,3])"},
        Malformed{"NegativeSeed", GoodWith("\"seed\": 3", "\"seed\": -3"),
                  "bad.json: seed: invalid value -3: expected a non-negative "
                  "whole number"},
        Malformed{"NumberForString",
                  GoodWith("\"run_name\": \"demo\"", "\"run_name\": 5"),
                  "bad.json: run_name: invalid value 5: expected a string"},
        Malformed{
            "ListForObject",
            GoodWith("\"run_config\": {\"epochs\": 2, \"batch_size\": 16, "
                     "\"log_every_steps\": 5}",
                     "\"run_config\": [2]"),
            "bad.json: run_config: invalid value [2]: expected a JSON "
            "object (the TrainConfig section)"},
        Malformed{
            "NumberForObject",
            GoodWith("\"run_config\": {\"epochs\": 2, \"batch_size\": 16, "
                     "\"log_every_steps\": 5}",
                     "\"run_config\": 3"),
            "bad.json: run_config: invalid value 3: expected a JSON "
            "object (the TrainConfig section)"},
        Malformed{"QuotedInteger",
                  GoodWith("\"epochs\": 2", "\"epochs\": \"2\""),
                  "bad.json: run_config.epochs: invalid value \"2\": expected "
                  "a whole number in 32-bit range (a number is written "
                  "without quotes: 2)"},
        Malformed{"QuotedNumber", GoodWith("\"lr\": 0.01", "\"lr\": \"0.01\""),
                  "bad.json: optim_config.lr: invalid value \"0.01\": expected "
                  "a number (a number is written without quotes: 0.01)"},
        Malformed{"QuotedBool",
                  GoodWith("\"epochs\": 2",
                           "\"epochs\": 2, \"skip_plots\": \"true\""),
                  "bad.json: run_config.skip_plots: invalid value \"true\": "
                  "expected true or false"},
        Malformed{"ScalarForList",
                  GoodWith("\"seed\": 3", "\"seed\": 3, \"hooks\": 3"),
                  "bad.json: hooks: invalid value 3: expected a list of JSON "
                  "objects (the HookConfig section) (a list is written [3])"},
        Malformed{"UnknownFieldFarFromAnyName",
                  GoodWith("\"seed\": 3", "\"seed\": 3, \"zzzzzzzz\": 1"),
                  "bad.json: zzzzzzzz: unknown field (not in the schema; "
                  "known: run_name, model, pipeline, seed, data_config, "
                  "optim_config, run_config, model_config, pipeline_config, "
                  "score_config, hooks)"},
        Malformed{"ScalarForPluginSection",
                  GoodWith("\"model_config\": {\"layer_sizes\": [8, 8]}",
                           "\"model_config\": 3"),
                  "bad.json: model_config: invalid value 3: expected a JSON "
                  "object"},
        Malformed{"ZeroLearningRate", GoodWith("\"lr\": 0.01", "\"lr\": 0"),
                  "bad.json: optim_config.lr: must be a finite number > 0 "
                  "(got 0)"},
        Malformed{"NegativeLearningRate",
                  GoodWith("\"lr\": 0.01", "\"lr\": -1"),
                  "bad.json: optim_config.lr: must be a finite number > 0 "
                  "(got -1)"},
        Malformed{"MissingLearningRate", GoodWith("\"lr\": 0.01, ", ""),
                  "bad.json: optim_config.lr: must be a finite number > 0 "
                  "(got 0)"},
        Malformed{
            "NegativeWeightDecay",
            GoodWith("\"lr\": 0.01", "\"lr\": 0.01, \"weight_decay\": -0.1"),
            "bad.json: optim_config.weight_decay: must be a finite "
            "number >= 0 (got -0.1)"},
        Malformed{"ZeroBatchSize",
                  GoodWith("\"batch_size\": 16", "\"batch_size\": 0"),
                  "bad.json: run_config.batch_size: must be >= 1 (got 0)"},
        Malformed{"ZeroEpochs", GoodWith("\"epochs\": 2", "\"epochs\": 0"),
                  "bad.json: run_config.epochs: must be >= 1 (got 0)"},
        Malformed{"NegativeMaxSteps",
                  GoodWith("\"epochs\": 2", "\"epochs\": 2, \"max_steps\": -5"),
                  "bad.json: run_config.max_steps: must be >= 0, 0 meaning no "
                  "limit (got -5)"},
        Malformed{"MissingDataset",
                  GoodWith("\"dataset\": \"synthetic\"", "\"dataset\": \"\""),
                  "bad.json: data_config.dataset: missing (--list_plugins "
                  "shows the data sources)"},
        Malformed{"OneClass",
                  GoodWith("\"num_classes\": 3", "\"num_classes\": 1"),
                  "bad.json: data_config.synthetic.num_classes: must be >= 2 "
                  "(got 1)"},
        Malformed{"NegativeNoise", GoodWith("\"noise\": 0.5", "\"noise\": -1"),
                  "bad.json: data_config.synthetic.noise: must be a finite "
                  "number >= 0 (got -1)"},
        Malformed{
            "RunNameEscapes",
            GoodWith("\"run_name\": \"demo\"", "\"run_name\": \"../etc\""),
            "bad.json: run_name: '../etc' must be a plain directory name "
            "(letters, digits, '_', '-', '.')"},
        Malformed{"RunNameIsDotDot",
                  GoodWith("\"run_name\": \"demo\"", "\"run_name\": \"..\""),
                  "bad.json: run_name: '..' must be a plain directory name "
                  "(letters, digits, '_', '-', '.')"}),
    [](const ::testing::TestParamInfo<Malformed>& info) {
      return info.param.name;
    });

TEST(ConfigOverrideTest, SetsNumbersListsAndStrings) {
  absl::StatusOr<RunConfig> c =
      ParseRunConfig(kGood, "good.json",
                     {"optim_config.lr=0.5", "model_config.layer_sizes=[4,5,6]",
                      "optim_config.name=sgd", "run_name=\"quoted\""});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_DOUBLE_EQ(c->optim_config().lr(), 0.5);
  EXPECT_EQ(
      c->model_config().fields().at("layer_sizes").list_value().values_size(),
      3);
  EXPECT_EQ(c->optim_config().name(), "sgd");
  EXPECT_EQ(c->run_name(), "quoted");
}

TEST(ConfigOverrideTest, CreatesMissingSectionsAndLaterOnesWin) {
  absl::StatusOr<RunConfig> c = ParseRunConfig(
      "{\"data_config\": {\"dataset\": \"synthetic\", \"synthetic\": "
      "{\"num_samples\": 1, \"num_features\": 1, \"num_classes\": 2}}, "
      "\"optim_config\": {\"lr\": 1}}",
      "min.json",
      {"run_config.epochs=1", "run_config.batch_size=2",
       "run_config.batch_size=3", "pipeline_config.depth.inner=1"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->run_config().batch_size(), 3);
  EXPECT_TRUE(c->pipeline_config().fields().at("depth").has_struct_value());
}

TEST(ConfigOverrideTest, ErrorsNameTheFlag) {
  EXPECT_EQ(ParseRunConfig(kGood, "good.json", {"optim_config.lr=-1"})
                .status()
                .message(),
            "--set=optim_config.lr=-1: optim_config.lr: must be a finite "
            "number > 0 (got -1)");
  EXPECT_EQ(ParseRunConfig(kGood, "good.json", {"optim_config.lrr=1"})
                .status()
                .message(),
            "--set=optim_config.lrr=1: optim_config.lrr: unknown field; did "
            "you mean 'lr'?");
  EXPECT_EQ(ParseRunConfig(kGood, "good.json", {"seed.x=1"}).status().message(),
            "--set=seed.x=1: 'seed' is not an object, so it has no field 'x'");
  EXPECT_EQ(ParseRunConfig(kGood, "good.json", {"lr"}).status().message(),
            "--set=lr: expected field.path=value, e.g. optim_config.lr=0.01");
  EXPECT_EQ(ParseRunConfig(kGood, "good.json", {"a..b=1"}).status().message(),
            "--set=a..b=1: empty component in field path 'a..b'");
}

TEST(ConfigOverrideTest, AnErrorElsewhereStillNamesTheFile) {
  std::string bad = GoodWith("\"epochs\": 2", "\"epochs\": 0");
  EXPECT_EQ(ParseRunConfig(bad, "bad.json", {"optim_config.lr=0.5"})
                .status()
                .message(),
            "bad.json: run_config.epochs: must be >= 1 (got 0)");
}

TEST(ConfigSectionTest, PluginSectionErrorsCarryTheFullPath) {
  google::protobuf::Struct section;
  (*section.mutable_fields())["lr"].set_number_value(1);
  OptimConfig out;
  absl::Status s = ParseConfigSection(section, "optim_config.params", &out);
  ASSERT_TRUE(s.ok()) << s;
  (*section.mutable_fields())["nope"].set_bool_value(true);
  EXPECT_EQ(
      ParseConfigSection(section, "optim_config.params", &out).message(),
      "optim_config.params.nope: unknown field (not in the schema; "
      "known: name, lr, weight_decay, params, grad_clip_norm, scheduler)");
}

TEST(ConfigSectionTest, PluginListsAndNumbersAreStrict) {
  // A section's list given a scalar, and its number given as a string.
  google::protobuf::Struct section;
  (*section.mutable_fields())["milestones"].set_number_value(64);
  SchedulerConfig out;
  EXPECT_EQ(
      std::string(ParseConfigSection(section, "optim_config.scheduler", &out)
                      .message()),
      "optim_config.scheduler.milestones: invalid value 64: expected a "
      "list of whole numbers in 32-bit range (a list is written [64])");
  section.clear_fields();
  (*section.mutable_fields())["gamma"].set_string_value("0.5");
  EXPECT_EQ(
      std::string(ParseConfigSection(section, "optim_config.scheduler", &out)
                      .message()),
      "optim_config.scheduler.gamma: invalid value \"0.5\": expected a "
      "number (a number is written without quotes: 0.5)");
  // One element of a list: its index in the path.
  section.clear_fields();
  google::protobuf::ListValue* list =
      (*section.mutable_fields())["milestones"].mutable_list_value();
  list->add_values()->set_number_value(3);
  list->add_values()->set_string_value("5");
  EXPECT_EQ(
      std::string(ParseConfigSection(section, "optim_config.scheduler", &out)
                      .message()),
      "optim_config.scheduler.milestones[1]: invalid value \"5\": "
      "expected a whole number in 32-bit range (a number is written "
      "without quotes: 5)");
  // What the JSON mapping writes for non-finite numbers still parses (the
  // validators refuse it with their own reason), as does null.
  section.clear_fields();
  (*section.mutable_fields())["gamma"].set_string_value("Infinity");
  (*section.mutable_fields())["step_size"].set_null_value(
      google::protobuf::NULL_VALUE);
  EXPECT_TRUE(ParseConfigSection(section, "s", &out).ok());
}

TEST(ConfigSectionTest, NearestNameIsATypoAwayOrNothing) {
  EXPECT_EQ(NearestName("lrr", {"lr", "name", "params"}), "lr");
  EXPECT_EQ(NearestName("batchsize", {"batch_size", "epochs"}), "batch_size");
  EXPECT_EQ(NearestName("Epochs", {"batch_size", "epochs"}), "epochs");
  EXPECT_EQ(NearestName("xyz", {"lr", "name"}), "");
  EXPECT_EQ(NearestName("learning_rate", {"lr", "name"}), "");
}

TEST(ConfigFileTest, MissingFileIsNotFound) {
  absl::StatusOr<RunConfig> c = LoadRunConfigFile("/nonexistent/x.json");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(c.status().message(),
            "/nonexistent/x.json: cannot read config file (No such file or "
            "directory)");
}

TEST(ConfigFileTest, ReadsAFile) {
  std::string path = std::string(getenv("TEST_TMPDIR")) + "/c.json";
  std::ofstream(path) << kGood;
  absl::StatusOr<RunConfig> c = LoadRunConfigFile(path, {"seed=9"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->seed(), 9u);
}

}  // namespace
}  // namespace ouroboros
