// Training-step throughput of the mlp plugin on real Fashion-MNIST
// (samples/s), the C++ side of tools/bench_mlp.
//
//   bazel run //plugins/mlp:mlp_benchmark -- --threads=2
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/nn/module.h>
#include <torch/optim/adam.h>

#include <string>

#include "benchmark/benchmark.h"
#include "ouroboros/api/data.h"
#include "ouroboros/config/config.h"
#include "plugins/mlp/mlp.h"

namespace ouroboros::mlp {
namespace {

constexpr char kConfig[] = R"({
  "model": "mlp",
  "data_config": {"dataset": "fashion_mnist"},
  "optim_config": {"name": "adam", "lr": 0.001},
  "run_config": {"epochs": 1, "batch_size": 128},
  "model_config": {"layer_sizes": [256, 128], "activation": "relu"}
})";

void BM_MlpTrainStep(benchmark::State& state) {
  const int64_t batch_size = state.range(0);
  absl::StatusOr<RunConfig> config = ParseRunConfig(kConfig, "benchmark");
  absl::StatusOr<DataSplits> data = LoadDataSplits(config->data_config(), 1);
  if (!data.ok()) {
    state.SkipWithError(std::string(data.status().message()).c_str());
    return;
  }
  ModelContext context{&*config, "benchmark", data->spec};
  absl::StatusOr<std::unique_ptr<Model>> model = MakeMlp(context);
  torch::optim::Adam adam((*model)->module().parameters(), 1e-3);
  const at::Tensor& inputs = data->train.inputs;
  const at::Tensor& targets = data->train.targets;
  const int64_t n = inputs.size(0);
  int64_t start = 0;
  for (auto _ : state) {
    if (start + batch_size > n) start = 0;
    at::Tensor x = inputs.slice(0, start, start + batch_size);
    at::Tensor y = targets.slice(0, start, start + batch_size);
    start += batch_size;
    adam.zero_grad();
    at::Tensor loss = (*model)->Loss((*model)->Forward(x), y);
    loss.backward();
    adam.step();
  }
  state.SetItemsProcessed(state.iterations() * batch_size);
  state.counters["threads"] = at::get_num_threads();
}
BENCHMARK(BM_MlpTrainStep)
    ->Arg(128)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace ouroboros::mlp
