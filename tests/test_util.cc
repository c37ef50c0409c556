#include "tests/test_util.h"

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

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace ouroboros::testing
