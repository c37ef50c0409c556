#include "ouroboros/api/registry.h"

#include <torch/optim/optimizer.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ouroboros/api/data.h"

namespace ouroboros {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

ModelEntry ModelNamed(const std::string& name, const std::string& source) {
  return ModelEntry{
      name,
      "a test model",
      [](const ModelContext&) -> absl::StatusOr<std::unique_ptr<Model>> {
        return absl::UnimplementedError("test");
      },
      "{}",
      nullptr,
      nullptr,
      source};
}

OptimizerEntry OptimizerNamed(const std::string& name) {
  return OptimizerEntry{
      name,
      "a test optimizer",
      [](const OptimizerContext&)
          -> absl::StatusOr<std::unique_ptr<torch::optim::Optimizer>> {
        return absl::UnimplementedError("test");
      },
      nullptr,
      nullptr,
      "opt.so"};
}

PipelineEntry PipelineNamed(const std::string& name, ConfigValidator validate) {
  return PipelineEntry{
      name,
      "a test pipeline",
      [](const PipelineContext&) -> absl::StatusOr<std::unique_ptr<Pipeline>> {
        return absl::UnimplementedError("test");
      },
      std::move(validate),
      nullptr,
      "pipe.so"};
}

TEST(RegistryTest, RegisterThenFind) {
  PluginRegistry registry;
  ASSERT_TRUE(registry.Register(ModelNamed("mlp", "a.so")).ok());
  absl::StatusOr<const ModelEntry*> found = registry.FindModel("mlp");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ((*found)->name, "mlp");
  EXPECT_EQ((*found)->source, "a.so");
  EXPECT_EQ((*found)->default_config_json, "{}");
}

TEST(RegistryTest, UnknownNameListsKnownNamesOfThatKind) {
  PluginRegistry registry;
  ASSERT_TRUE(registry.Register(ModelNamed("mlp", "a.so")).ok());
  ASSERT_TRUE(registry.Register(ModelNamed("quine", "b.so")).ok());
  ASSERT_TRUE(registry.Register(OptimizerNamed("adam")).ok());
  absl::StatusOr<const ModelEntry*> found = registry.FindModel("srwm");
  EXPECT_EQ(found.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(found.status().message(),
            "unknown model 'srwm'; known models: mlp, quine");
}

TEST(RegistryTest, UnknownNameWithNothingLoaded) {
  PluginRegistry registry;
  EXPECT_EQ(registry.FindPipeline("train").status().message(),
            "unknown pipeline 'train'; known pipelines: (none loaded)");
}

TEST(RegistryTest, DuplicateNameNamesBothSources) {
  PluginRegistry registry;
  ASSERT_TRUE(registry.Register(ModelNamed("mlp", "first.so")).ok());
  absl::Status status = registry.Register(ModelNamed("mlp", "second.so"));
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(status.message(),
            "model 'mlp' from second.so is already registered by first.so");
  EXPECT_EQ((*registry.FindModel("mlp"))->source, "first.so");
}

TEST(RegistryTest, SameNameInDifferentKindsIsFine) {
  PluginRegistry registry;
  ASSERT_TRUE(registry.Register(ModelNamed("x", "a.so")).ok());
  EXPECT_TRUE(registry.Register(OptimizerNamed("x")).ok());
}

TEST(RegistryTest, RejectsEmptyNameAndMissingFactory) {
  PluginRegistry registry;
  EXPECT_THAT(registry.Register(ModelNamed("", "a.so")).message(),
              HasSubstr("has no name"));
  ModelEntry no_factory = ModelNamed("m", "a.so");
  no_factory.factory = nullptr;
  EXPECT_EQ(registry.Register(no_factory).message(),
            "model 'm' from a.so has no factory");
}

TEST(RegistryTest, ListIsOrderedByKindThenName) {
  PluginRegistry registry;
  ASSERT_TRUE(registry.Register(OptimizerNamed("sgd")).ok());
  ASSERT_TRUE(registry.Register(ModelNamed("quine", "b.so")).ok());
  ASSERT_TRUE(registry.Register(ModelNamed("mlp", "a.so")).ok());
  std::vector<std::string> rows;
  for (const RegisteredPlugin& p : registry.List()) {
    rows.push_back(std::string(PluginKindName(p.kind)) + ":" + p.name + ":" +
                   p.source);
  }
  EXPECT_THAT(rows, ElementsAre("model:mlp:a.so", "model:quine:b.so",
                                "optimizer:sgd:opt.so"));
  EXPECT_THAT(registry.Names(PluginKind::kModel), ElementsAre("mlp", "quine"));
}

TEST(RegistryTest, TheGlobalRegistryHasTheBuiltInDataSources) {
  EXPECT_THAT(PluginRegistry::Global().Names(PluginKind::kDataSource),
              ElementsAre("fashion_mnist", "idx", "mnist_digits", "synthetic"));
  absl::StatusOr<const DataSourceEntry*> synthetic =
      PluginRegistry::Global().FindDataSource("synthetic");
  ASSERT_TRUE(synthetic.ok()) << synthetic.status();
  EXPECT_EQ((*synthetic)->source, "built in");
}

TEST(RegistryTest, RemoveSourceRollsBackOnePlugin) {
  PluginRegistry registry;
  ASSERT_TRUE(registry.Register(ModelNamed("mlp", "a.so")).ok());
  ASSERT_TRUE(registry.Register(ModelNamed("quine", "b.so")).ok());
  registry.RemoveSource("b.so");
  EXPECT_THAT(registry.Names(PluginKind::kModel), ElementsAre("mlp"));
}

TEST(RegistryTest, CheckConfigReportsTheFieldThatNamesAnUnknownPlugin) {
  PluginRegistry registry;
  ASSERT_TRUE(registry.Register(ModelNamed("mlp", "a.so")).ok());
  ASSERT_TRUE(registry.Register(OptimizerNamed("adam")).ok());
  ASSERT_TRUE(registry.Register(PipelineNamed("train", nullptr)).ok());
  ASSERT_TRUE(RegisterBuiltinDataSources(registry).ok());
  RunConfig config;
  config.set_model("mlp");
  config.set_pipeline("train");
  config.mutable_data_config()->set_dataset("imagenet");
  config.mutable_optim_config()->set_name("adamm");
  EXPECT_EQ(registry.CheckConfig(config).message(),
            "data_config.dataset: unknown data source 'imagenet'; known data "
            "sources: fashion_mnist, idx, mnist_digits, synthetic");
  config.mutable_data_config()->set_dataset("synthetic");
  EXPECT_EQ(registry.CheckConfig(config).message(),
            "optim_config.name: unknown optimizer 'adamm'; known optimizers: "
            "adam");
  config.mutable_optim_config()->set_name("adam");
  EXPECT_TRUE(registry.CheckConfig(config).ok());
}

TEST(RegistryTest, CheckConfigRunsThePluginValidators) {
  PluginRegistry registry;
  ASSERT_TRUE(registry.Register(ModelNamed("mlp", "a.so")).ok());
  ASSERT_TRUE(registry.Register(OptimizerNamed("adam")).ok());
  ASSERT_TRUE(registry
                  .Register(PipelineNamed(
                      "train",
                      [](const RunConfig& c) {
                        return c.seed() == 7
                                   ? absl::InvalidArgumentError("seed: not 7")
                                   : absl::OkStatus();
                      }))
                  .ok());
  ASSERT_TRUE(RegisterBuiltinDataSources(registry).ok());
  RunConfig config;
  config.set_model("mlp");
  config.set_pipeline("train");
  config.mutable_data_config()->set_dataset("synthetic");
  config.mutable_optim_config()->set_name("adam");
  config.set_seed(7);
  EXPECT_EQ(registry.CheckConfig(config).message(), "seed: not 7");
}

TEST(RegistryTest, GlobalIsOneInstance) {
  EXPECT_EQ(&PluginRegistry::Global(), &PluginRegistry::Global());
}

TEST(RegistryTest, HooksAreAKindOfTheirOwn) {
  PluginRegistry registry;
  auto make =
      [](const HookContext&) -> absl::StatusOr<std::unique_ptr<TrainerHook>> {
    return std::make_unique<TrainerHook>();
  };
  ASSERT_TRUE(
      registry.Register(HookEntry{"jump", "d", make, nullptr, nullptr, "a.so"})
          .ok());
  absl::Status again =
      registry.Register(HookEntry{"jump", "d", make, nullptr, nullptr, "b.so"});
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(again.message(),
            "hook 'jump' from b.so is already registered by a.so");
  ASSERT_TRUE(registry.Register(ModelNamed("jump", "a.so")).ok());
  EXPECT_THAT(registry.Names(PluginKind::kHook), ElementsAre("jump"));
  std::vector<std::string> rows;
  for (const RegisteredPlugin& row : registry.List()) {
    rows.push_back(absl::StrCat(PluginKindName(row.kind), ":", row.name));
  }
  EXPECT_THAT(rows, ElementsAre("model:jump", "hook:jump"));
  EXPECT_EQ(registry.FindHook("jum").status().message(),
            "unknown hook 'jum'; known hooks: jump");
  registry.RemoveSource("a.so");
  EXPECT_TRUE(registry.List().empty());
}

}  // namespace
}  // namespace ouroboros
