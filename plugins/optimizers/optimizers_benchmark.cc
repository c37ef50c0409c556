// One Adam step, the fused one (fused_adam.h) against LibTorch's, on the
// parameters of the Fashion-MNIST MLP (235,146 floats in 6 tensors) and on
// one 4M-float parameter (a hypernetwork's output layer).
//
//   bazel run -c opt //plugins/optimizers:optimizers_benchmark -- --threads=1
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/optim/adam.h>

#include <memory>
#include <vector>

#include "benchmark/benchmark.h"
#include "plugins/optimizers/fused_adam.h"

namespace ouroboros::optimizers {
namespace {

std::vector<at::Tensor> Parameters(int64_t which) {
  std::vector<std::vector<int64_t>> shapes =
      which == 0
          ? std::vector<std::vector<int64_t>>{{256, 784}, {256},     {128, 256},
                                              {128},      {10, 128}, {10}}
          : std::vector<std::vector<int64_t>>{{4096, 1024}};
  std::vector<at::Tensor> parameters;
  for (const auto& shape : shapes) {
    at::Tensor p = at::randn(shape).requires_grad_(true);
    p.mutable_grad() = at::randn(shape);
    parameters.push_back(p);
  }
  return parameters;
}

template <typename Optimizer>
void BM_AdamStep(benchmark::State& state) {
  std::vector<at::Tensor> parameters = Parameters(state.range(0));
  Optimizer adam(parameters, torch::optim::AdamOptions(1e-3));
  adam.step();  // the moments exist from here on
  for (auto _ : state) adam.step();
  int64_t floats = 0;
  for (const at::Tensor& p : parameters) floats += p.numel();
  state.SetItemsProcessed(state.iterations() * floats);
  state.counters["threads"] = at::get_num_threads();
}
BENCHMARK_TEMPLATE(BM_AdamStep, FusedAdam)
    ->ArgName("mlp0_big1")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_AdamStep, torch::optim::Adam)
    ->ArgName("mlp0_big1")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace
}  // namespace ouroboros::optimizers
