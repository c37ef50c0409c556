#include "ouroboros/threads.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ouroboros {
namespace {

// OpenBLAS's own controls, found at run time: libblas.so.3 is OpenBLAS only
// when Debian's alternatives point there (tools/bootstrap checks it).
using SetCount = void (*)(int);
using GetCount = int (*)();

SetCount OpenBlasSet() {
  return reinterpret_cast<SetCount>(
      dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
}
GetCount OpenBlasGet() {
  return reinterpret_cast<GetCount>(
      dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
}

// Seconds for one round of the probe's work with the current threads: an
// elementwise loop, parallel through OpenMP as LibTorch's own kernels and
// the SRWM's are (matrix products barely scale on these machines: measured
// in the README).
double ProbeSeconds(const at::Tensor& x) {
  const auto start = std::chrono::steady_clock::now();
  at::Tensor y = at::exp(x);
  (void)y.data_ptr<float>();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

void SetThreads(int threads, int blas_threads) {
  at::set_num_threads(threads);
  // The user's OPENBLAS_NUM_THREADS wins (OpenBLAS read it at start-up).
  if (std::getenv("OPENBLAS_NUM_THREADS") != nullptr) return;
  if (SetCount set = OpenBlasSet()) set(blas_threads);
}

std::string DescribeThreads() {
  GetCount get = OpenBlasGet();
  return absl::StrCat("OpenMP ", at::get_num_threads(), ", OpenBLAS ",
                      get != nullptr ? absl::StrCat(get()) : "?");
}

std::string DescribeBlas() {
  using GetConfig = char* (*)();
  auto get_config =
      reinterpret_cast<GetConfig>(dlsym(RTLD_DEFAULT, "openblas_get_config"));
  if (get_config == nullptr) {
    return "not OpenBLAS (the reference BLAS is 30x slower; see "
           "tools/bootstrap)";
  }
  return get_config();  // "OpenBLAS 0.3.21 ..."
}

ThreadChoice ChooseThreads(int requested, int local_ranks) {
  if (requested > 0) return {requested, requested, "--threads"};
  const int cores =
      std::max<int>(1, static_cast<int>(std::thread::hardware_concurrency()) /
                           std::max(1, local_ranks));
  if (cores == 1) {
    return {1, 1,
            local_ranks > 1 ? "one core per rank on this machine" : "one core"};
  }
  const at::Tensor x = at::randn({1 << 22});
  // Each thread count in a block of its own, after warm-up rounds (the
  // pools start, pages are touched): switching counts every round would
  // time the workers' wake-ups, which a training loop does not pay. Medians:
  // a competitor that comes and goes counts as it typically is.
  // OpenBLAS stays at one thread meanwhile: its pool spins for a while
  // after it starts, and would starve the loop being timed.
  if (SetCount set = OpenBlasSet()) set(1);
  const auto block = [&](int threads) {
    at::set_num_threads(threads);
    for (int warm = 0; warm < 3; ++warm) ProbeSeconds(x);
    std::vector<double> seconds;
    for (int round = 0; round < 5; ++round) {
      seconds.push_back(ProbeSeconds(x));
    }
    return Median(seconds);
  };
  // Three probes, the median: one unlucky moment (another process taking a
  // core for a scheduler tick) must not decide.
  std::vector<double> speedups;
  for (int probe = 0; probe < 3; ++probe) {
    const double all = block(cores);
    speedups.push_back(block(1) / all);
  }
  const double speedup = Median(speedups);
  const int threads = speedup >= kProbeSpeedup ? cores : 1;
  return {threads, 1,
          absl::StrFormat(
              "start-up probe: %d threads %.2fx as fast as 1%s", cores, speedup,
              threads == 1 ? " (busy or not scaling: 1 thread)" : "")};
}

}  // namespace ouroboros
