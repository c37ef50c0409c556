// LibTorch must run its matrix products on OpenBLAS (tools/bootstrap points
// libblas.so.3 at it); Debian's reference BLAS is ~30x slower.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

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

TEST(BlasTest, ThreadCountIsSettable) {
  at::set_num_threads(2);
  EXPECT_EQ(at::get_num_threads(), 2);
}

}  // namespace
