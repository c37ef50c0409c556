#include "ouroboros/runs/run_spec.h"

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "ouroboros/api/registry.h"

namespace ouroboros {
namespace {

constexpr char kRun[] = R"({"model": "tiny", "seed": 4,
  "data_config": {"dataset": "synthetic",
                  "synthetic": {"num_samples": 40, "num_features": 2,
                                "num_classes": 2}},
  "optim_config": {"name": "sgd", "lr": 0.1},
  "run_config": {"epochs": 1, "batch_size": 8}})";

std::string WriteConfig(const std::string& name, const std::string& text) {
  const std::string path =
      std::string(std::getenv("TEST_TMPDIR")) + "/" + name + ".json";
  std::ofstream(path) << text;
  return path;
}

std::unique_ptr<PluginRegistry> RegistryWithTinyModel(
    const std::string& default_config) {
  auto registry = std::make_unique<PluginRegistry>();
  ModelEntry tiny;
  tiny.name = "tiny";
  tiny.source = "test";
  tiny.default_config_json = default_config;
  tiny.factory =
      [](const ModelContext&) -> absl::StatusOr<std::unique_ptr<Model>> {
    return nullptr;
  };
  EXPECT_TRUE(registry->Register(std::move(tiny)).ok());
  return registry;
}

TEST(RunSpecTest, AFileWithOverridesAndTheDefaultPipeline) {
  RunSpecSource source;
  source.config_file = WriteConfig("run", kRun);
  absl::StatusOr<ResolvedRunSpec> run =
      ResolveRunSpec(source, {"seed=9"}, nullptr);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->config.seed(), 9);
  EXPECT_EQ(run->config.model(), "tiny");
  EXPECT_EQ(run->config.pipeline(), kDefaultPipeline);
  EXPECT_EQ(run->source, source.config_file);
}

TEST(RunSpecTest, AnInlineConfigIsNamedByItsField) {
  google::protobuf::Struct inline_config;
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(kRun, &inline_config).ok());
  (*inline_config.mutable_fields())["seed"].set_string_value("not a number");
  RunSpecSource source;
  source.where = "pipeline_config.pipelines[1]";
  source.inline_config = &inline_config;
  absl::StatusOr<ResolvedRunSpec> run = ResolveRunSpec(source, {}, nullptr);
  ASSERT_FALSE(run.ok());
  EXPECT_NE(std::string(run.status().message())
                .find("pipeline_config.pipelines[1].inline_config"),
            std::string::npos)
      << run.status();

  (*inline_config.mutable_fields())["seed"].set_number_value(2);
  run = ResolveRunSpec(source, {}, nullptr);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->config.seed(), 2);
  EXPECT_EQ(run->source, "pipeline_config.pipelines[1].inline_config");
}

TEST(RunSpecTest, AModelsDefaultConfigFromTheRegistry) {
  const std::unique_ptr<PluginRegistry> registry = RegistryWithTinyModel(kRun);
  RunSpecSource source;
  source.model = "tiny";
  absl::StatusOr<ResolvedRunSpec> run =
      ResolveRunSpec(source, {"optim_config.lr=0.5"}, registry.get());
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->config.optim_config().lr(), 0.5);
  EXPECT_EQ(run->source, "<default config of model 'tiny'>");

  source.model = "absent";
  run = ResolveRunSpec(source, {}, registry.get());
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(std::string(run.status().message()).rfind("--model=absent", 0), 0u)
      << run.status();
}

TEST(RunSpecTest, AModelWithoutADefaultAsksForAFile) {
  const std::unique_ptr<PluginRegistry> registry = RegistryWithTinyModel("");
  RunSpecSource source;
  source.where = "pipeline_config.record";
  source.model = "tiny";
  absl::StatusOr<ResolvedRunSpec> run =
      ResolveRunSpec(source, {}, registry.get());
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(std::string(run.status().message()),
            "pipeline_config.record.model: model 'tiny' has no default "
            "config; give a config file");
}

TEST(RunSpecTest, ExactlyOneSource) {
  const std::unique_ptr<PluginRegistry> registry = RegistryWithTinyModel(kRun);
  RunSpecSource none;
  absl::StatusOr<ResolvedRunSpec> run =
      ResolveRunSpec(none, {}, registry.get());
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(std::string(run.status().message()),
            "give --model=NAME (runs its default config) or --config=FILE; "
            "known models: tiny");

  RunSpecSource two;
  two.where = "pipeline_config.record";
  two.model = "tiny";
  two.config_file = WriteConfig("two", kRun);
  run = ResolveRunSpec(two, {}, registry.get());
  ASSERT_FALSE(run.ok());
  EXPECT_NE(std::string(run.status().message())
                .find("give exactly one of config, inline_config, model"),
            std::string::npos)
      << run.status();
}

TEST(RunSpecTest, ARelativePathIsWhereTheUserWas) {
  WriteConfig("where_the_user_was", kRun);
  setenv("BUILD_WORKING_DIRECTORY", std::getenv("TEST_TMPDIR"), 1);
  RunSpecSource source;
  source.config_file = "where_the_user_was.json";
  absl::StatusOr<ResolvedRunSpec> run = ResolveRunSpec(source, {}, nullptr);
  unsetenv("BUILD_WORKING_DIRECTORY");
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->source, "where_the_user_was.json");  // as typed
}

TEST(RunSpecTest, AMissingFileIsNamedAsTheUserTypedIt) {
  setenv("BUILD_WORKING_DIRECTORY", std::getenv("TEST_TMPDIR"), 1);
  RunSpecSource source;
  source.config_file = "no_such_config.json";
  absl::StatusOr<ResolvedRunSpec> run = ResolveRunSpec(source, {}, nullptr);
  unsetenv("BUILD_WORKING_DIRECTORY");
  ASSERT_FALSE(run.ok());
  const std::string message(run.status().message());
  EXPECT_EQ(message.rfind("no_such_config.json", 0), 0u) << message;
}

}  // namespace
}  // namespace ouroboros
