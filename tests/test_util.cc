#include "tests/test_util.h"

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace ouroboros::testing {

namespace fs = std::filesystem;
using ::bazel::tools::cpp::runfiles::Runfiles;

void BuiltFilesTest::SetUp() {
  std::string error;
  runfiles_.reset(Runfiles::CreateForTest(&error));
  ASSERT_NE(runfiles_, nullptr) << error;
  const ::testing::TestInfo* info =
      ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = std::string(info->test_suite_name()) + "." + info->name();
  for (char& c : name) {
    if (c == '/') c = '_';  // parameterized tests
  }
  scratch_ = fs::path(std::getenv("TEST_TMPDIR")) / name;
  fs::remove_all(scratch_);
  fs::create_directories(scratch_);
}

std::string BuiltFilesTest::Built(const std::string& workspace_path) const {
  return runfiles_->Rlocation("ouroboros/" + workspace_path);
}

BuiltFilesTest::ProcessResult BuiltFilesTest::RunProgram(
    const std::string& program, const std::vector<std::string>& args,
    const std::string& env) const {
  std::string command = "cd " + ShellQuote(scratch_.string()) + " && env";
  for (const auto& [key, value] : runfiles_->EnvVars()) {
    command += " " + key + "=" + ShellQuote(value);
  }
  command += " " + env + " " + ShellQuote(program);
  for (const std::string& arg : args) command += " " + ShellQuote(arg);
  const std::string out_file = (scratch_ / "stdout.txt").string();
  const std::string err_file = (scratch_ / "stderr.txt").string();
  const int status = std::system(
      (command + " >" + ShellQuote(out_file) + " 2>" + ShellQuote(err_file))
          .c_str());
  ProcessResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.stdout_only = ReadFile(out_file);
  result.output = result.stdout_only + ReadFile(err_file);
  return result;
}

std::string BuiltFilesTest::KillAtStepEnvironment(int64_t step,
                                                  int rank) const {
  const std::string dir =
      std::filesystem::path(
          Built("tests/fault_injection/libfault_injection.so"))
          .parent_path()
          .string();
  std::string env = "OUROBOROS_PLUGIN_PATH=" + ShellQuote(dir) +
                    " OUROBOROS_FAULT_KILL_AT_STEP=" + std::to_string(step);
  if (rank >= 0) env += " OUROBOROS_FAULT_KILL_RANK=" + std::to_string(rank);
  return env;
}

std::string ShellQuote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  return quoted + "'";
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace ouroboros::testing
