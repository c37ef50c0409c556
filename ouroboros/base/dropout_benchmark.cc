// A training-mode dropout of one activation, forward only, at the
// Fashion-MNIST MLP's shapes (batch 128 x 256 and x 128): LibTorch's
// torch::nn::Dropout against MaskedDropout (dropout.h).
//
//   bazel run //ouroboros/base:dropout_benchmark -- --threads=1
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>
#include <torch/nn/modules/dropout.h>

#include "ouroboros/base/dropout.h"

namespace ouroboros {
namespace {

void BM_LibTorchDropout(benchmark::State& state) {
  const at::Tensor input = at::randn({128, state.range(0)});
  torch::nn::Dropout dropout(0.2);
  for (auto _ : state) {
    at::Tensor output = dropout->forward(input);
    benchmark::DoNotOptimize(output.data_ptr<float>());
  }
  state.SetItemsProcessed(state.iterations() * input.numel());
}
BENCHMARK(BM_LibTorchDropout)->Arg(256)->Arg(128);

void BM_MaskedDropout(benchmark::State& state) {
  const at::Tensor input = at::randn({128, state.range(0)});
  for (auto _ : state) {
    at::Tensor output = MaskedDropout(input, 0.2, /*training=*/true);
    benchmark::DoNotOptimize(output.data_ptr<float>());
  }
  state.SetItemsProcessed(state.iterations() * input.numel());
}
BENCHMARK(BM_MaskedDropout)->Arg(256)->Arg(128);

}  // namespace
}  // namespace ouroboros
