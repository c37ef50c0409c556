#include "ouroboros/base/threads.h"

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
// in docs/guide.md).
double ProbeSeconds(const at::Tensor& x) {
  const auto start = std::chrono::steady_clock::now();
  at::Tensor y = at::exp(x);
  (void)y.data_ptr<float>();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

// Seconds for a few matrix products of a small network's size.
double ProductSeconds(const at::Tensor& a, const at::Tensor& b) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 2; ++i) {
    at::Tensor c = at::mm(a, b);
    (void)c.data_ptr<float>();
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

void SetThreads(int threads, int blas_threads) {
  // OpenBLAS first: its OpenMP build sets the calling thread's OpenMP count
  // to its own, which LibTorch's setting then overrides (its products keep
  // their count unless that is 1).
  // The user's OPENBLAS_NUM_THREADS wins. Set here, not left to OpenBLAS:
  // its OpenMP build ignores the variable and starts at OpenMP's count.
  if (const char* user = std::getenv("OPENBLAS_NUM_THREADS")) {
    const int count = std::atoi(user);
    if (count > 0) blas_threads = count;
  }
  if (SetCount set = OpenBlasSet()) set(blas_threads);
  at::set_num_threads(threads);
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

bool BlasSharesOpenMpPool() {
  return DescribeBlas().find("USE_OPENMP") != std::string::npos;
}

namespace {

// The start-up probe: how much faster `cores` threads run element-wise
// loops and (when OpenBLAS's count can be set) matrix products than one.
ProbeSpeedups MeasureSpeedups(int cores, SetCount set_blas, bool one_pool) {
  // About a millisecond of work per timing at one thread: the whole probe
  // stays under a tenth of a second, which every run pays.
  const at::Tensor x = at::randn({1 << 20});
  // The first layer of the Fashion-MNIST MLP, batch 128: the matrix
  // products of the small networks trained here, where threads pay least.
  const at::Tensor a = at::randn({128, 784});
  const at::Tensor b = at::randn({784, 256});
  // Each setting in a block of its own, after warm-up rounds (the pools
  // start, pages are touched): switching every round would time the
  // workers' wake-ups, which a training loop does not pay. Medians: a
  // competitor that comes and goes counts as it typically is.
  const auto block = [&](int omp, int blas, bool products) {
    if (set_blas != nullptr) set_blas(blas);
    at::set_num_threads(omp);
    const auto once = [&] {
      return products ? ProductSeconds(a, b) : ProbeSeconds(x);
    };
    for (int warm = 0; warm < 2; ++warm) once();
    std::vector<double> seconds;
    for (int round = 0; round < 5; ++round) seconds.push_back(once());
    return Median(seconds);
  };
  // Three probes of each, the median: one unlucky moment (another process
  // taking a core for a scheduler tick) must not decide. Element-wise loops
  // with OpenBLAS at one thread (its pool spins for a while after it runs
  // and would starve the loop being timed); products with OpenMP at one,
  // except in OpenBLAS's OpenMP build, whose products run on OpenMP's team
  // (at one OpenMP thread they would have one).
  std::vector<double> loop_speedups;
  std::vector<double> product_speedups;
  for (int probe = 0; probe < 3; ++probe) {
    loop_speedups.push_back(block(1, 1, false) / block(cores, 1, false));
    if (set_blas != nullptr) {
      product_speedups.push_back(block(1, 1, true) /
                                 block(one_pool ? cores : 1, cores, true));
    }
  }
  return {Median(loop_speedups),
          product_speedups.empty() ? 1.0 : Median(product_speedups)};
}

}  // namespace

ThreadChoice ThreadsForSpeedups(int cores, const ProbeSpeedups& speedups,
                                bool one_pool) {
  const double loops = speedups.loops;
  const double products = speedups.products;
  const bool loops_scale = loops >= kProbeSpeedup;
  const bool products_scale = products >= kProbeSpeedup;
  const std::string measured = absl::StrFormat(
      "start-up probe: %d threads %.2fx as fast as 1 on element-wise loops, "
      "%.2fx on matrix products",
      cores, loops, products);
  if (!loops_scale && !products_scale) {
    return {1, 1, absl::StrCat(measured, " (busy or not scaling: 1 thread)")};
  }
  if (one_pool) {
    // OpenBLAS's OpenMP build runs on LibTorch's own OpenMP team: one pool,
    // nothing to fight, so each kind of work gets the cores if it is faster
    // with them. The products' reading is this process's own: at these
    // sizes two threads were 1.6-1.7x as fast in some processes here and no
    // faster, or slower, in others (docs/guide.md, "Threads"). (The products
    // follow OpenMP's count unless set to 1, so they cannot have more.)
    const int blas = products_scale ? cores : 1;
    return {cores, blas,
            absl::StrCat(measured, " (one OpenMP pool: OpenMP ", cores,
                         ", OpenBLAS ", blas, ")")};
  }
  // Two pools (OpenBLAS's pthreads beside OpenMP) on these cores spin
  // against each other, so only the one that scales better gets them.
  if (products_scale && (!loops_scale || products >= loops)) {
    return {1, cores,
            absl::StrCat(measured,
                         " (OpenBLAS gets the cores, OpenMP 1: two "
                         "pools would contend)")};
  }
  return {cores, 1,
          absl::StrCat(measured,
                       " (OpenMP gets the cores, OpenBLAS 1: two "
                       "pools would contend)")};
}

int CoresPerProcess(int processes) {
  return std::max<int>(1,
                       static_cast<int>(std::thread::hardware_concurrency()) /
                           std::max(1, processes));
}

ThreadChoice ChooseThreads(int requested, int local_ranks) {
  if (requested > 0) return {requested, requested, "--threads"};
  const int cores = CoresPerProcess(local_ranks);
  if (cores == 1) {
    return {1, 1,
            local_ranks > 1 ? "one core per rank on this machine" : "one core"};
  }
  // The user's OPENBLAS_NUM_THREADS is kept: the products are not probed.
  SetCount set_blas =
      std::getenv("OPENBLAS_NUM_THREADS") == nullptr ? OpenBlasSet() : nullptr;
  const bool one_pool = BlasSharesOpenMpPool();
  return ThreadsForSpeedups(cores, MeasureSpeedups(cores, set_blas, one_pool),
                            one_pool);
}

}  // namespace ouroboros
