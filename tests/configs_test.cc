// Every file in configs/ and every model's embedded default config parses,
// validates, and names plugins that exist.
#include <filesystem>
#include <memory>

#include "gtest/gtest.h"
#include "ouroboros/config.h"
#include "ouroboros/data.h"
#include "ouroboros/plugin_loader.h"
#include "ouroboros/registry.h"
#include "tools/cpp/runfiles/runfiles.h"

namespace ouroboros {
namespace {

namespace fs = std::filesystem;
using ::bazel::tools::cpp::runfiles::Runfiles;

class ConfigsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string error;
    runfiles_ = Runfiles::CreateForTest(&error);
    ASSERT_NE(runfiles_, nullptr) << error;
    PluginLoader loader(&registry());
    for (const PluginLoadReport& report :
         loader.LoadDirectories({runfiles_->Rlocation("ouroboros/plugins")})) {
      ASSERT_TRUE(report.status.ok()) << report.status;
    }
  }
  static PluginRegistry& registry() {
    static PluginRegistry* r = [] {
      auto* fresh = new PluginRegistry;
      EXPECT_TRUE(RegisterBuiltinDataSources(*fresh).ok());
      return fresh;
    }();
    return *r;
  }
  static Runfiles* runfiles_;
};
Runfiles* ConfigsTest::runfiles_ = nullptr;

TEST_F(ConfigsTest, EveryConfigFileIsValid) {
  fs::path dir = runfiles_->Rlocation("ouroboros/configs");
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".json") continue;
    SCOPED_TRACE(entry.path().string());
    absl::StatusOr<RunConfig> config = LoadRunConfigFile(entry.path().string());
    ASSERT_TRUE(config.ok()) << config.status();
    if (config->pipeline().empty()) config->set_pipeline(kDefaultPipeline);
    absl::Status status = registry().CheckConfig(*config);
    EXPECT_TRUE(status.ok()) << status;
    ++checked;
  }
  EXPECT_GT(checked, 0) << "no configs found in " << dir;
}

TEST_F(ConfigsTest, EveryModelHasAValidDefaultConfig) {
  for (const std::string& name : registry().Names(PluginKind::kModel)) {
    SCOPED_TRACE(name);
    const ModelEntry* model = *registry().FindModel(name);
    absl::StatusOr<RunConfig> config =
        ParseRunConfig(model->default_config_json, "default");
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->model(), name);
    if (config->pipeline().empty()) config->set_pipeline(kDefaultPipeline);
    absl::Status status = registry().CheckConfig(*config);
    EXPECT_TRUE(status.ok()) << status;
  }
}

}  // namespace
}  // namespace ouroboros
