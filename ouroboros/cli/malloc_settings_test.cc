#include "ouroboros/cli/malloc_settings.h"

#include <stdlib.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ouroboros {
namespace {

using ::testing::HasSubstr;

TEST(MallocSettingsTest, LeavesGlibcsDefaultsWhenNotAsked) {
  EXPECT_EQ(KeepFreedMemory(false),
            "glibc's defaults (--keep_freed_memory=false)");
}

TEST(MallocSettingsTest, SaysWhatItSetAndWhatTheEnvironmentSet) {
  ASSERT_EQ(setenv("MALLOC_TOP_PAD_", "1048576", 1), 0);
  const std::string in_force = KeepFreedMemory(true);
  unsetenv("MALLOC_TOP_PAD_");
  EXPECT_THAT(in_force, HasSubstr("freed memory kept for reuse ("));
  EXPECT_THAT(in_force, HasSubstr("MALLOC_MMAP_THRESHOLD_=32 MiB"));
  EXPECT_THAT(in_force, HasSubstr("MALLOC_MMAP_MAX_=0"));
  EXPECT_THAT(in_force, HasSubstr("MALLOC_TRIM_THRESHOLD_=1024 MiB"));
  EXPECT_THAT(in_force, HasSubstr("MALLOC_TOP_PAD_ from the environment"));
}

}  // namespace
}  // namespace ouroboros
