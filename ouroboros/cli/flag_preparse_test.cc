#include "ouroboros/cli/flag_preparse.h"

#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "glog/logging.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

ABSL_FLAG(int, preparse_test_count, 1, "a number, for the test");
ABSL_FLAG(bool, preparse_test_switch, true, "a bool, for the test");
ABSL_FLAG(std::string, preparse_test_name, "", "a string, for the test");

namespace ouroboros {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::StatusOr<PreParsedCommandLine> PreParse(std::vector<std::string> words) {
  words.insert(words.begin(), "prog");
  std::vector<char*> argv;
  for (std::string& word : words) argv.push_back(word.data());
  return PreParseCommandLine(static_cast<int>(argv.size()), argv.data());
}

std::string WriteFlagfile(const std::string& name, const std::string& text) {
  const std::string path = testing::TempDir() + "/" + name;
  std::ofstream(path) << text;
  return path;
}

TEST(FlagPreparseTest, TakesOutEverySetInOrderCommasAndAll) {
  absl::StatusOr<PreParsedCommandLine> words =
      PreParse({"--set=model_config.layer_sizes=[64,32]", "--set", "seed=3"});
  ASSERT_TRUE(words.ok()) << words.status();
  EXPECT_THAT(words->overrides,
              ElementsAre("model_config.layer_sizes=[64,32]", "seed=3"));
  EXPECT_THAT(words->absl_args, ElementsAre("prog"));
}

TEST(FlagPreparseTest, KeepsKnownFlagsWithTheirValuesForAbsl) {
  absl::StatusOr<PreParsedCommandLine> words =
      PreParse({"--preparse_test_count=5", "--preparse_test_name", "x",
                "--nopreparse_test_switch", "--help"});
  ASSERT_TRUE(words.ok()) << words.status();
  EXPECT_THAT(
      words->absl_args,
      ElementsAre("prog", "--preparse_test_count=5", "--preparse_test_name",
                  "x", "--nopreparse_test_switch", "--help"));
  EXPECT_EQ(absl::GetFlag(FLAGS_preparse_test_count), 5);
  EXPECT_EQ(absl::GetFlag(FLAGS_preparse_test_name), "x");
}

TEST(FlagPreparseTest, NamesAnUnknownFlag) {
  absl::StatusOr<PreParsedCommandLine> words = PreParse({"--nope=1"});
  ASSERT_EQ(words.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(words.status().message()),
              HasSubstr("unknown flag --nope"));
}

TEST(FlagPreparseTest, NamesABadValue) {
  absl::StatusOr<PreParsedCommandLine> words =
      PreParse({"--preparse_test_count=many"});
  ASSERT_EQ(words.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(words.status().message()),
              HasSubstr("flag --preparse_test_count=many"));
}

TEST(FlagPreparseTest, NamesAFlagWithoutItsValue) {
  EXPECT_THAT(
      std::string(PreParse({"--preparse_test_name"}).status().message()),
      HasSubstr("flag --preparse_test_name needs a value"));
  EXPECT_THAT(std::string(PreParse({"--set"}).status().message()),
              HasSubstr("--set needs field.path=value"));
}

TEST(FlagPreparseTest, RefusesAWordThatIsNotAFlag) {
  EXPECT_THAT(std::string(PreParse({"configs/mlp.json"}).status().message()),
              HasSubstr("unexpected argument 'configs/mlp.json'"));
}

TEST(FlagPreparseTest, PassesEverythingAfterDoubleDash) {
  absl::StatusOr<PreParsedCommandLine> words =
      PreParse({"--set=a=1", "--", "--set=b=2", "word"});
  ASSERT_TRUE(words.ok()) << words.status();
  EXPECT_THAT(words->overrides, ElementsAre("a=1"));
  EXPECT_THAT(words->absl_args, ElementsAre("prog", "--", "--set=b=2", "word"));
}

TEST(FlagPreparseTest, ExpandsFlagfilesWithTheirSets) {
  const std::string path = WriteFlagfile(
      "good.flags",
      "# a comment\n--preparse_test_count=7\n\n  --set=y=[1,2]  \n");
  absl::StatusOr<PreParsedCommandLine> words =
      PreParse({"--set=x=1", "--flagfile=" + path, "--set=z=3"});
  ASSERT_TRUE(words.ok()) << words.status();
  EXPECT_THAT(words->overrides, ElementsAre("x=1", "y=[1,2]", "z=3"));
  EXPECT_THAT(words->absl_args, ElementsAre("prog", "--preparse_test_count=7"));
}

TEST(FlagPreparseTest, NamesTheFlagfileOfABadFlag) {
  const std::string path = WriteFlagfile("bad.flags", "--set=x=1\n--nope\n");
  absl::StatusOr<PreParsedCommandLine> words = PreParse({"--flagfile=" + path});
  EXPECT_THAT(std::string(words.status().message()),
              HasSubstr("unknown flag --nope (in flagfile " + path + ")"));
}

TEST(FlagPreparseTest, RefusesAMissingOrEndlessFlagfile) {
  EXPECT_THAT(
      std::string(PreParse({"--flagfile=/nonexistent/f"}).status().message()),
      HasSubstr("cannot read /nonexistent/f"));
  const std::string path = testing::TempDir() + "/loop.flags";
  WriteFlagfile("loop.flags", "--flagfile=" + path + "\n");
  EXPECT_THAT(std::string(PreParse({"--flagfile=" + path}).status().message()),
              HasSubstr("flagfiles nest too deep"));
}

TEST(FlagPreparseTest, SetsGlogsVerbosity) {
  const int before = FLAGS_v;
  absl::StatusOr<PreParsedCommandLine> words = PreParse({"-v=3"});
  ASSERT_TRUE(words.ok()) << words.status();
  EXPECT_EQ(FLAGS_v, 3);
  EXPECT_THAT(words->absl_args, ElementsAre("prog"));
  FLAGS_v = before;
  EXPECT_THAT(std::string(PreParse({"--minloglevel=high"}).status().message()),
              HasSubstr("expected a whole number >= 0"));
}

}  // namespace
}  // namespace ouroboros
