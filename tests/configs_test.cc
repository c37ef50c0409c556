// Every file in configs/ and every model's embedded default config parses,
// validates, and names plugins that exist; every plugin's declared defaults
// parse; the printed config reads back to itself; and an example config
// states every setting its model's embedded default makes.
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "ouroboros/api/data.h"
#include "ouroboros/api/plugin_loader.h"
#include "ouroboros/api/registry.h"
#include "ouroboros/base/files.h"
#include "ouroboros/base/json.h"
#include "ouroboros/config/config.h"
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

// The config as main resolves it: the file, then every plugin section's
// defaults.
absl::StatusOr<RunConfig> Resolved(const std::string& json,
                                   const std::string& source,
                                   const PluginRegistry& registry) {
  absl::StatusOr<RunConfig> config = ParseRunConfig(json, source);
  if (!config.ok()) return config;
  absl::Status filled = registry.FillDefaults(&*config);
  if (!filled.ok()) return filled;
  return config;
}

TEST_F(ConfigsTest, EveryPluginSectionsDeclaredDefaultsParse) {
  // An empty section gets every declared default (an Internal error names a
  // default that does not parse or sits on a field without presence).
  const google::protobuf::Struct empty;
  const RunConfig config;
  int sections = 0;
  const auto check = [&](const std::string& name,
                         const SectionDefaults& defaults) {
    if (!defaults) return;
    SCOPED_TRACE(name);
    absl::StatusOr<google::protobuf::Struct> filled =
        defaults(empty, "section", config);
    EXPECT_TRUE(filled.ok()) << filled.status();
    ++sections;
  };
  for (const std::string& name : registry().Names(PluginKind::kModel)) {
    check(name, (*registry().FindModel(name))->section_defaults);
  }
  for (const std::string& name : registry().Names(PluginKind::kDataSource)) {
    check(name, (*registry().FindDataSource(name))->section_defaults);
  }
  for (const std::string& name : registry().Names(PluginKind::kOptimizer)) {
    check(name, (*registry().FindOptimizer(name))->section_defaults);
  }
  for (const std::string& name : registry().Names(PluginKind::kPipeline)) {
    check(name, (*registry().FindPipeline(name))->section_defaults);
  }
  for (const std::string& name : registry().Names(PluginKind::kHook)) {
    check(name, (*registry().FindHook(name))->section_defaults);
  }
  EXPECT_GT(sections, 10);
}

TEST_F(ConfigsTest, ThePrintedConfigReadsBackToItself) {
  for (const std::string& name : registry().Names(PluginKind::kModel)) {
    SCOPED_TRACE(name);
    absl::StatusOr<RunConfig> config = Resolved(
        (*registry().FindModel(name))->default_config_json, name, registry());
    ASSERT_TRUE(config.ok()) << config.status();
    const std::string printed = RunConfigToJson(*config);
    absl::StatusOr<RunConfig> again = Resolved(printed, "printed", registry());
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(RunConfigToJson(*again), printed);
  }
}

// Leaf values (lists whole) of a JSON object by dotted path.
void Flatten(const google::protobuf::Struct& object, const std::string& prefix,
             std::map<std::string, std::string>* leaves) {
  for (const auto& [key, value] : object.fields()) {
    const std::string path = prefix.empty() ? key : prefix + "." + key;
    if (value.has_struct_value()) {
      Flatten(value.struct_value(), path, leaves);
    } else {
      (*leaves)[path] = FormatJson(value);
    }
  }
}

std::map<std::string, std::string> Leaves(const google::protobuf::Struct& o) {
  std::map<std::string, std::string> leaves;
  Flatten(o, "", &leaves);
  return leaves;
}

// A plugin section of `config` and the plugin it belongs to.
struct Section {
  const char* path;
  std::string plugin;
  const google::protobuf::Struct* value;
};
std::vector<Section> SectionsOf(const RunConfig& config) {
  return {{"model_config", config.model(), &config.model_config()},
          {"data_config.source_config", config.data_config().dataset(),
           &config.data_config().source_config()},
          {"optim_config.params", config.optim_config().name(),
           &config.optim_config().params()},
          {"pipeline_config", config.pipeline(), &config.pipeline_config()}};
}

// An example config cannot silently fall behind its model's embedded
// default: every setting that default writes into a plugin section (of the
// same plugin) is written by the example too, unless the example gets the
// same value anyway or the setting does not apply to it.
TEST_F(ConfigsTest, ExampleConfigsStateWhatTheirModelsDefaultSets) {
  fs::path dir = runfiles_->Rlocation("ouroboros/configs");
  int compared = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".json") continue;
    const std::string file = entry.path().filename().string();
    SCOPED_TRACE(file);
    absl::StatusOr<std::string> text = ReadFileToString(entry.path());
    ASSERT_TRUE(text.ok()) << text.status();
    absl::StatusOr<RunConfig> written = ParseRunConfig(*text, file);
    ASSERT_TRUE(written.ok()) << written.status();
    absl::StatusOr<const ModelEntry*> model =
        registry().FindModel(written->model());
    if (!model.ok()) continue;  // a composite pipeline's config
    absl::StatusOr<RunConfig> effective = Resolved(*text, file, registry());
    ASSERT_TRUE(effective.ok()) << effective.status();
    absl::StatusOr<RunConfig> defaults =
        ParseRunConfig((*model)->default_config_json, "default");
    ASSERT_TRUE(defaults.ok()) << defaults.status();
    const std::vector<Section> example_written = SectionsOf(*written);
    const std::vector<Section> example_effective = SectionsOf(*effective);
    const std::vector<Section> default_written = SectionsOf(*defaults);
    for (size_t i = 0; i < default_written.size(); ++i) {
      if (default_written[i].plugin != example_written[i].plugin) continue;
      const auto set_by_example = Leaves(*example_written[i].value);
      const auto example_values = Leaves(*example_effective[i].value);
      for (const auto& [path, value] : Leaves(*default_written[i].value)) {
        if (set_by_example.count(path) > 0) continue;
        auto it = example_values.find(path);
        // Not a setting of this config (another variant's, or inside a
        // free-form section), or the same value anyway.
        if (it == example_values.end() || it->second == value) continue;
        ADD_FAILURE() << file << ": " << default_written[i].path << "." << path
                      << " is " << value << " in model '" << written->model()
                      << "''s embedded default, but this config leaves it "
                         "out and gets "
                      << it->second << "; write it";
      }
      ++compared;
    }
  }
  EXPECT_GT(compared, 5);
}

}  // namespace
}  // namespace ouroboros
