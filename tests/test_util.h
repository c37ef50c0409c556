// Test helpers: files Bazel built (runfiles) and a scratch directory per test.
//
//   class MyTest : public ouroboros::testing::BuiltFilesTest {};
//   TEST_F(MyTest, X) {
//     std::string so = Built("plugins/mlp/libouroboros_mlp.so");
//     std::ofstream(scratch() / "in.json") << "{}";
//   }
#ifndef TESTS_TEST_UTIL_H_
#define TESTS_TEST_UTIL_H_

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tools/cpp/runfiles/runfiles.h"

namespace ouroboros::testing {

class BuiltFilesTest : public ::testing::Test {
 public:
  struct ProcessResult {
    int exit_code = -1;
    std::string output;  // stdout and stderr together
    std::string stdout_only;
  };

 protected:
  // Opens the runfiles and makes an empty scratch directory named after the
  // running test under $TEST_TMPDIR.
  void SetUp() override;

  // The absolute path of a file built or shipped by Bazel, given by its path
  // in the workspace ("ouroboros/main", "configs/mlp.json").
  std::string Built(const std::string& workspace_path) const;

  const std::filesystem::path& scratch() const { return scratch_; }

  // Runs `program` with `args` in scratch(), with the runfiles environment
  // and the extra `env` ("NAME=value NAME2=value2"), and waits for it.
  ProcessResult RunProgram(const std::string& program,
                           const std::vector<std::string>& args,
                           const std::string& env = "") const;
  bazel::tools::cpp::runfiles::Runfiles& runfiles() const { return *runfiles_; }

  // The `env` for RunProgram that loads the fault-injection test seam
  // (tests/fault_injection) and has it SIGKILL the run right after `step`,
  // in every rank or only in `rank`. The test needs
  // //tests/fault_injection in its data.
  std::string KillAtStepEnvironment(int64_t step, int rank = -1) const;

 private:
  std::unique_ptr<bazel::tools::cpp::runfiles::Runfiles> runfiles_;
  std::filesystem::path scratch_;
};

// A shell word: 'text' with embedded quotes escaped.
std::string ShellQuote(const std::string& text);

// The whole file, or "" if it cannot be read.
std::string ReadFile(const std::filesystem::path& path);

}  // namespace ouroboros::testing

#endif  // TESTS_TEST_UTIL_H_
