// Loading plugin .so files: from any directory, refusing broken ones.
#include "ouroboros/api/plugin_loader.h"

#include <ATen/ATen.h>
#include <dlfcn.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ouroboros/api/plugin_api.h"
#include "ouroboros/api/registry.h"
#include "ouroboros/config/config.h"
#include "tests/test_util.h"

namespace ouroboros {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class PluginLoaderTest : public testing::BuiltFilesTest {
 protected:
  // Copies a built plugin into this test's own directory.
  std::string CopyIn(const std::string& path, const std::string& name) {
    fs::path to = scratch() / name;
    fs::copy_file(Built(path), to, fs::copy_options::overwrite_existing);
    return to.string();
  }

  PluginRegistry registry_;
  PluginLoader loader_{&registry_};
};

TEST_F(PluginLoaderTest, LoadsAPluginCopiedToAnyDirectory) {
  std::string path = CopyIn("tests/testdata/libgood_plugin.so", "good.so");
  ASSERT_TRUE(loader_.LoadFile(path).ok());
  absl::StatusOr<const ModelEntry*> model = registry_.FindModel("test_model");
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->source, path);
  EXPECT_EQ((*model)->description, "A model for the loader tests");
  EXPECT_TRUE(registry_.FindPipeline("test_pipeline").ok());
}

TEST_F(PluginLoaderTest, PluginAndHostShareOneGlobalRegistry) {
  std::string path = CopyIn("tests/testdata/libgood_plugin.so", "good.so");
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(handle, nullptr) << dlerror();
  auto address = reinterpret_cast<void* (*)()>(
      dlsym(handle, "good_plugin_global_registry"));
  ASSERT_NE(address, nullptr);
  EXPECT_EQ(address(), &PluginRegistry::Global());
}

TEST_F(PluginLoaderTest, RealMlpPluginBuildsAModelFromAnotherDirectory) {
  std::string path = CopyIn("plugins/mlp/libouroboros_mlp.so", "mlp.so");
  ASSERT_TRUE(loader_.LoadFile(path).ok());
  absl::StatusOr<const ModelEntry*> mlp = registry_.FindModel("mlp");
  ASSERT_TRUE(mlp.ok());
  absl::StatusOr<RunConfig> config =
      ParseRunConfig((*mlp)->default_config_json, "default");
  ASSERT_TRUE(config.ok()) << config.status();
  ModelContext context{&*config, "default", DataSpec{{5}, 3}};
  absl::StatusOr<std::unique_ptr<Model>> model = (*mlp)->factory(context);
  ASSERT_TRUE(model.ok()) << model.status();
  at::Tensor out = (*model)->Forward(at::ones({2, 5}));
  EXPECT_EQ(out.size(0), 2);
  EXPECT_EQ(out.size(1), 3);
}

TEST_F(PluginLoaderTest, RefusesAnotherAbiVersionWithoutRunningIt) {
  std::string path = CopyIn("tests/testdata/libbad_abi_plugin.so", "old.so");
  absl::Status status = loader_.LoadFile(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(),
            path +
                ": plugin ABI version 999 does not match this Ouroboros "
                "build (ABI " +
                std::to_string(kPluginAbiVersion) +
                "); rebuild the plugin against the current "
                "ouroboros/ headers");
  EXPECT_TRUE(registry_.List().empty());
}

TEST_F(PluginLoaderTest, RefusesASharedObjectWithoutTheEntryPoint) {
  std::string path = CopyIn("tests/testdata/libno_entry.so", "other.so");
  EXPECT_EQ(loader_.LoadFile(path).message(),
            path +
                ": not an Ouroboros plugin (it exports no "
                "ouroboros_plugin_info(); link it with "
                "//ouroboros/api:plugin_entry)");
}

TEST_F(PluginLoaderTest, RefusesAFileThatIsNotASharedObject) {
  std::string path = (scratch() / "garbage.so").string();
  std::ofstream(path) << "this is not ELF";
  absl::Status status = loader_.LoadFile(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr(path + ": cannot load plugin: "));
}

TEST_F(PluginLoaderTest, DuplicateNameRefusesThePluginWhole) {
  ASSERT_TRUE(
      loader_.LoadFile(CopyIn("tests/testdata/libgood_plugin.so", "a.so"))
          .ok());
  std::string dup =
      CopyIn("tests/testdata/libduplicate_plugin.so", "duplicate.so");
  absl::Status status = loader_.LoadFile(dup);
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(status.message(),
            dup + ": plugin refused: model 'test_model' from " + dup +
                " is already registered by " + (scratch() / "a.so").string());
  EXPECT_THAT(registry_.Names(PluginKind::kModel), ElementsAre("test_model"));
}

TEST_F(PluginLoaderTest, DirectoryScanLoadsTheGoodAndReportsTheBad) {
  fs::create_directories(scratch() / "sub");
  CopyIn("tests/testdata/libgood_plugin.so", "sub/good.so");
  CopyIn("tests/testdata/libbad_abi_plugin.so", "bad_abi.so");
  CopyIn("tests/testdata/libno_entry.so", "no_entry.so");
  std::ofstream(scratch() / "readme.txt") << "ignored: not a .so";
  std::vector<PluginLoadReport> reports = loader_.LoadDirectories(
      {scratch().string(), (scratch() / "missing").string()});
  ASSERT_EQ(reports.size(), 4u);
  EXPECT_EQ(reports[0].path, (scratch() / "bad_abi.so").string());
  EXPECT_THAT(reports[0].status.message(), HasSubstr("ABI version 999"));
  EXPECT_EQ(reports[1].path, (scratch() / "no_entry.so").string());
  EXPECT_THAT(reports[1].status.message(),
              HasSubstr("not an Ouroboros plugin"));
  EXPECT_EQ(reports[2].path, (scratch() / "sub/good.so").string());
  EXPECT_TRUE(reports[2].status.ok());
  EXPECT_EQ(reports[3].status.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(registry_.FindModel("test_model").ok());
}

TEST(PluginSearchPathTest, FlagReplacesEnvAndDefault) {
  EXPECT_THAT(PluginSearchPath({"/flag"}, "/env1:/env2", "/default"),
              ElementsAre("/flag"));
  EXPECT_THAT(PluginSearchPath({}, "/env1::/env2", "/default"),
              ElementsAre("/env1", "/env2", "/default"));
  EXPECT_THAT(PluginSearchPath({}, "", "/default"), ElementsAre("/default"));
}

}  // namespace
}  // namespace ouroboros
