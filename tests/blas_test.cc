// LibTorch must run its matrix products on OpenBLAS's OpenMP build
// (tools/bootstrap points libblas.so.3, liblapack.so.3 and libopenblas.so.0
// at it): Debian's reference BLAS is ~30x slower, and the pthread build's
// pool contends with LibTorch's OpenMP threads.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace {

TEST(BlasTest, MatmulRunsOnOpenBlas) {
  at::Tensor a = at::rand({256, 256});
  at::Tensor c = at::mm(a, a);  // makes sure the BLAS library is loaded
  ASSERT_EQ(c.size(0), 256);
  std::ifstream maps("/proc/self/maps");
  std::string line;
  bool openblas = false;
  bool reference_blas = false;
  while (std::getline(maps, line)) {
    if (line.find("openblas") != std::string::npos) openblas = true;
    if (line.find("/blas/libblas.so") != std::string::npos) {
      reference_blas = true;
    }
  }
  EXPECT_TRUE(openblas) << "libopenblas is not mapped: run tools/bootstrap";
  EXPECT_FALSE(reference_blas)
      << "the reference BLAS is loaded: run tools/bootstrap";
}

TEST(BlasTest, OnlyTheOpenMpBuildIsLoaded) {
  at::Tensor a = at::rand({256, 256});
  ASSERT_EQ(at::mm(a, a).size(0), 256);
  using GetConfig = char* (*)();
  auto get_config =
      reinterpret_cast<GetConfig>(dlsym(RTLD_DEFAULT, "openblas_get_config"));
  ASSERT_NE(get_config, nullptr) << "OpenBLAS is not loaded";
  EXPECT_NE(std::string(get_config()).find("USE_OPENMP"), std::string::npos)
      << get_config() << ": not the OpenMP build; run tools/bootstrap";
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    EXPECT_EQ(line.find("openblas-pthread"), std::string::npos)
        << "the pthread build is mapped too: " << line;
  }
}

TEST(BlasTest, ThreadCountIsSettable) {
  at::set_num_threads(2);
  EXPECT_EQ(at::get_num_threads(), 2);
}

}  // namespace
