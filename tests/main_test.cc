// End-to-end: runs the real main binary with the plugins built beside it.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ouroboros/config.h"
#include "tests/test_util.h"

namespace ouroboros {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

struct Result {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
  std::string stdout_only;
};

std::string Quote(const std::string& s) {
  return "'" + absl::StrReplaceAll(s, {{"'", "'\\''"}}) + "'";
}

using testing::ReadFile;

class MainTest : public testing::BuiltFilesTest {
 protected:
  void SetUp() override {
    BuiltFilesTest::SetUp();
    main_ = Built("ouroboros/main");
    tmp_ = scratch();
  }

  Result Run(const std::vector<std::string>& args,
             const std::string& env = "") {
    std::string command = "cd " + Quote(tmp_.string()) + " && env";
    for (const auto& [key, value] : runfiles().EnvVars()) {
      command += " " + key + "=" + Quote(value);
    }
    command += " " + env + " " + Quote(main_);
    for (const std::string& arg : args) command += " " + Quote(arg);
    Result result;
    std::string out_file = (tmp_ / "stdout.txt").string();
    std::string err_file = (tmp_ / "stderr.txt").string();
    int status = std::system(
        (command + " >" + Quote(out_file) + " 2>" + Quote(err_file)).c_str());
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    result.stdout_only = ReadFile(out_file);
    result.output = result.stdout_only + ReadFile(err_file);
    return result;
  }

  std::string main_;
  fs::path tmp_;
};

TEST_F(MainTest, TrainsTheMlpForAFewStepsAndWritesTheRunDirectory) {
  Result r = Run({"--model=mlp", "--run_dir=run", "--seed=5", "--threads=1",
                  "--set=run_config.epochs=2",
                  "--set=data_config.synthetic.num_samples=256"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("epoch 1: train loss"));
  EXPECT_THAT(r.output, HasSubstr("finished: 2 epochs, 8 steps"));
  std::string log = ReadFile(tmp_ / "run/log.txt");
  EXPECT_THAT(log, HasSubstr("epoch 2: train loss"));
  absl::StatusOr<RunConfig> saved =
      LoadRunConfigFile((tmp_ / "run/config.json").string());
  ASSERT_TRUE(saved.ok()) << saved.status();
  EXPECT_EQ(saved->seed(), 5u);
  EXPECT_EQ(saved->model(), "mlp");
  EXPECT_EQ(saved->run_config().epochs(), 2);
  EXPECT_EQ(saved->data_config().synthetic().num_samples(), 256);
}

TEST_F(MainTest, SavedConfigRepeatsTheRunExactly) {
  std::vector<std::string> common = {
      "--threads=1", "--set=data_config.synthetic.num_samples=128",
      "--set=run_config.epochs=1"};
  std::vector<std::string> first = common;
  first.insert(first.end(), {"--model=mlp", "--run_dir=a"});
  Result a = Run(first);
  ASSERT_EQ(a.exit_code, 0) << a.output;
  Result b = Run({"--config=a/config.json", "--run_dir=b", "--threads=1"});
  ASSERT_EQ(b.exit_code, 0) << b.output;
  auto final_line = [](const std::string& text) {
    size_t at = text.find("finished:");
    return text.substr(at, text.find('\n', at) - at);
  };
  EXPECT_EQ(final_line(ReadFile(tmp_ / "a/log.txt")),
            final_line(ReadFile(tmp_ / "b/log.txt")));
}

TEST_F(MainTest, ListsThePluginsWithTheirFiles) {
  Result r = Run({"--list_plugins"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.stdout_only, HasSubstr("model      mlp"));
  EXPECT_THAT(r.stdout_only, HasSubstr("plugins/mlp/libouroboros_mlp.so"));
  for (const char* name :
       {"sgd", "adam", "adamw", "adamax", "adagrad", "rmsprop"}) {
    EXPECT_THAT(r.stdout_only, HasSubstr(absl::StrCat("optimizer  ", name)));
  }
  EXPECT_THAT(r.stdout_only, HasSubstr("pipeline   train"));
  EXPECT_THAT(r.stdout_only, Not(HasSubstr("Not loaded")));
}

TEST_F(MainTest, MainHasNoPluginCodeLinkedIn) {
  fs::create_directories(tmp_ / "empty");
  Result r = Run({"--list_plugins", "--plugin_dir=empty"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.stdout_only, HasSubstr("(no plugins loaded)"));
}

TEST_F(MainTest, PluginPathAddsPluginsAndBrokenOnesDoNotStopTheOthers) {
  fs::create_directories(tmp_ / "extra");
  fs::copy_file(Built("tests/testdata/libgood_plugin.so"),
                tmp_ / "extra/libgood_plugin.so");
  fs::copy_file(Built("tests/testdata/libbad_abi_plugin.so"),
                tmp_ / "extra/libbad_abi_plugin.so");
  std::string env = "OUROBOROS_PLUGIN_PATH=" + (tmp_ / "extra").string();
  Result r = Run({"--list_plugins"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.stdout_only, HasSubstr("test_model"));
  EXPECT_THAT(r.stdout_only, HasSubstr("model      mlp"));
  EXPECT_THAT(r.stdout_only, HasSubstr("Not loaded:"));
  EXPECT_THAT(r.stdout_only,
              HasSubstr("libbad_abi_plugin.so: plugin ABI version 999"));

  Result run = Run({"--model=mlp", "--run_dir=run", "--threads=1",
                    "--set=run_config.epochs=1",
                    "--set=data_config.synthetic.num_samples=64"},
                   env);
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("plugin ABI version 999"));
}

TEST_F(MainTest, UnknownModelExitsTwoWithTheKnownNames) {
  Result r = Run({"--model=srwm_typo"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("error: --model=srwm_typo: unknown model "
                                  "'srwm_typo'; known models: mlp"));
  EXPECT_FALSE(fs::exists(tmp_ / "saves"));
}

TEST_F(MainTest, UnknownOptimizerFromTheFlagNamesTheFlag) {
  Result r = Run({"--model=mlp", "--optimizer=adamm"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output,
              HasSubstr("error: --optimizer=adamm: unknown optimizer 'adamm'; "
                        "known optimizers: adagrad, adam, adamax, adamw, "
                        "rmsprop, sgd"));
}

TEST_F(MainTest, BadConfigFileExitsTwoNamingFileAndFieldAndWritesNothing) {
  std::ofstream(tmp_ / "bad.json")
      << R"({"model": "mlp", "optim_config": {"name": "adam", "lr": -0.5}})";
  Result r = Run({"--config=bad.json"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("error: bad.json: "));
  EXPECT_FALSE(fs::exists(tmp_ / "saves"));
}

TEST_F(MainTest, BadPluginSectionIsCaughtBeforeTheRunStarts) {
  Result r = Run({"--model=mlp", "--set=model_config.layer_sizes=[8,0]"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output,
              HasSubstr("error: --set=model_config.layer_sizes=[8,0]: "
                        "model_config.layer_sizes[1]: must be >= 1 (got 0)"));
  EXPECT_FALSE(fs::exists(tmp_ / "saves"));
}

TEST_F(MainTest, BadFlagsExitTwo) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{
           {"--no_such_flag"}, {"--threads=many"}, {"--model=mlp", "stray"}}) {
    Result r = Run(args);
    EXPECT_EQ(r.exit_code, 2) << absl::StrJoin(args, " ") << "\n" << r.output;
    EXPECT_THAT(r.output, HasSubstr("error: "));
  }
}

TEST_F(MainTest, HelpExitsZeroAndExplains) {
  Result r = Run({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.stdout_only, HasSubstr("--model"));
  EXPECT_THAT(r.stdout_only, HasSubstr("--set"));
  EXPECT_THAT(r.stdout_only, HasSubstr("Examples:"));
}

TEST_F(MainTest, PrintConfigShowsTheResolvedConfig) {
  Result r = Run({"--model=mlp", "--print_config", "--seed=11",
                  "--optimizer=sgd", "--set=optim_config.lr=0.25"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  absl::StatusOr<RunConfig> printed = ParseRunConfig(r.stdout_only, "stdout");
  ASSERT_TRUE(printed.ok()) << printed.status() << r.stdout_only;
  EXPECT_EQ(printed->seed(), 11u);
  EXPECT_EQ(printed->optim_config().name(), "sgd");
  EXPECT_DOUBLE_EQ(printed->optim_config().lr(), 0.25);
}

TEST_F(MainTest, DivergingRunFailsWithExitOneAndKeepsTheLog) {
  Result r = Run({"--model=mlp", "--run_dir=run", "--threads=1",
                  "--optimizer=sgd", "--set=optim_config.lr=1e30",
                  "--set=data_config.synthetic.num_samples=256"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("error: training: loss became"));
  EXPECT_THAT(ReadFile(tmp_ / "run/log.txt"),
              HasSubstr("error: training: loss became"));
}

}  // namespace
}  // namespace ouroboros
