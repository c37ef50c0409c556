#include "ouroboros/cli/main_help.h"

#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ouroboros {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(MainHelpTest, VersionLineNamesTheBuildAndItsParts) {
  const std::string line = VersionLine();
  EXPECT_THAT(line, StartsWith("ouroboros "));
  EXPECT_THAT(line, HasSubstr("plugin ABI"));
  EXPECT_THAT(line, HasSubstr("LibTorch"));
  EXPECT_THAT(line, HasSubstr("BLAS: "));
}

TEST(MainHelpTest, AnswersOnlyHelpAndVersion) {
  std::vector<std::string> words = {"prog", "--model=mlp", "--", "--help"};
  std::vector<char*> argv;
  for (std::string& word : words) argv.push_back(word.data());
  // "--help" after "--" is not a flag.
  EXPECT_FALSE(AnswerHelpOrVersion(static_cast<int>(argv.size()), argv.data()));
}

TEST(MainHelpTest, ListsPluginsAndTheOnesThatFailedToLoad) {
  PluginRegistry registry;
  std::ostringstream empty;
  PrintPluginList(registry, {}, empty);
  EXPECT_THAT(empty.str(), HasSubstr("(no plugins loaded)"));

  ASSERT_TRUE(
      registry
          .Register(ModelEntry{"tiny", "a test model",
                               [](const ModelContext&)
                                   -> absl::StatusOr<std::unique_ptr<Model>> {
                                 return absl::UnimplementedError("test");
                               },
                               "{}", nullptr, nullptr, "/p/libtiny.so"})
          .ok());
  std::ostringstream out;
  PluginLoadReport failed;
  failed.status = absl::FailedPreconditionError("/p/libx.so: ABI 3, want 14");
  PrintPluginList(registry, {failed}, out);
  EXPECT_THAT(out.str(), HasSubstr("KIND"));
  EXPECT_THAT(out.str(), HasSubstr("tiny  a test model  [/p/libtiny.so]"));
  EXPECT_THAT(out.str(), HasSubstr("Not loaded:\n  /p/libx.so: ABI 3"));
}

TEST(MainHelpTest, UsageNamesTheExitCodes) {
  EXPECT_THAT(std::string(kMainUsage), HasSubstr("Exit codes: 0 success, 2"));
}

}  // namespace
}  // namespace ouroboros
