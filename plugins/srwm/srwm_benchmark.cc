// The fused SRWM layer against the naive per-step LibTorch loop, forward +
// backward, on the shapes (T=64, B=32, H=8, d=16 and d=64), with the
// machine's float32 matmul rate measured in the same run as the peak that
// GFLOP/s are compared to. tools/bench_srwm adds Python PyTorch.
//
//   bazel run -c opt //plugins/srwm:srwm_benchmark -- --threads=2
//
// Counters: GFLOPs (the layer's useful floating-point work per second, the
// same count for both: 20 r d per step and (b, h), r = 3d + 4),
// peak_fraction (GFLOPs / the matmul rate), retained_MiB (memory the forward
// keeps for the backward, from malloc statistics).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <malloc.h>

#include <chrono>

#include "benchmark/benchmark.h"
#include "plugins/srwm/srwm_kernel.h"
#include "plugins/srwm/srwm_layer.h"

namespace ouroboros::srwm {
namespace {

constexpr int64_t kBatch = 32, kSteps = 64, kHeads = 8;

// The float32 matmul rate, measured by MeasureMatmulPeak() before the first
// layer benchmark (BM_MatmulPeak reports the same kind of measurement).
double matmul_gflops = 0;

double AllocatedBytes() {
  struct mallinfo2 info = mallinfo2();
  return static_cast<double>(info.uordblks + info.hblkhd);
}

double LayerFlops(int64_t d) {
  return 20.0 * SrwmRows(d) * d * kSteps * kBatch * kHeads;
}

constexpr int64_t kMatmulSize = 1024;

void MeasureMatmulPeak() {
  at::Tensor a = at::randn({kMatmulSize, kMatmulSize});
  at::Tensor b = at::randn({kMatmulSize, kMatmulSize});
  at::mm(a, b);  // warm-up
  int64_t count = 0;
  const auto start = std::chrono::steady_clock::now();
  double seconds = 0;
  while (seconds < 1.0) {
    benchmark::DoNotOptimize(at::mm(a, b));
    ++count;
    seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
  }
  matmul_gflops =
      2.0 * kMatmulSize * kMatmulSize * kMatmulSize * count / seconds * 1e-9;
}

void BM_MatmulPeak(benchmark::State& state) {
  const int64_t n = state.range(0);
  at::Tensor a = at::randn({n, n}), b = at::randn({n, n});
  for (auto _ : state) benchmark::DoNotOptimize(at::mm(a, b));
  const double flops = 2.0 * n * n * n * state.iterations();
  state.counters["GFLOPs"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsRate);
  state.counters["threads"] = at::get_num_threads();
}

void RunLayer(benchmark::State& state, bool fused) {
  const int64_t d = state.range(0);
  at::manual_seed(1);
  at::Tensor x = at::randn({kBatch, kSteps, kHeads, d}).requires_grad_(true);
  at::Tensor w0 =
      (at::randn({kHeads, SrwmRows(d), d}) / std::sqrt(d)).requires_grad_(true);
  at::Tensor grad_y = at::randn({kBatch, kSteps, kHeads, d});
  if (matmul_gflops == 0) MeasureMatmulPeak();
  double retained = 0;
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    x.mutable_grad().reset();
    w0.mutable_grad().reset();
    const double before = AllocatedBytes();
    at::Tensor y = fused ? SrwmFused(x, w0) : SrwmNaive(x, w0);
    retained = AllocatedBytes() - before;
    y.backward(grad_y);
    benchmark::DoNotOptimize(w0.grad().data_ptr());
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  const double flops = LayerFlops(d) * state.iterations();
  state.counters["GFLOPs"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsRate);
  state.counters["retained_MiB"] = retained / (1 << 20);
  // A plain fraction (the layer's GFLOP/s over the matmul's), not a rate.
  state.counters["peak_fraction"] = flops * 1e-9 / seconds / matmul_gflops;
  state.counters["threads"] = at::get_num_threads();
}

void BM_SrwmFused(benchmark::State& state) { RunLayer(state, true); }
void BM_SrwmNaive(benchmark::State& state) { RunLayer(state, false); }

}  // namespace
}  // namespace ouroboros::srwm

BENCHMARK(ouroboros::srwm::BM_MatmulPeak)
    ->Arg(ouroboros::srwm::kMatmulSize)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(ouroboros::srwm::BM_SrwmFused)
    ->Arg(16)
    ->Arg(64)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(ouroboros::srwm::BM_SrwmNaive)
    ->Arg(16)
    ->Arg(64)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
