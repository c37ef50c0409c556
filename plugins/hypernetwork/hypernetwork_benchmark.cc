// Training-step time of the hypernetwork plugin's nets on real
// Fashion-MNIST, generated kernels against ordinary ones (the C++ side of
// tools/bench_hypernetwork), and the kernel generation alone.
//
//   bazel run //plugins/hypernetwork:hypernetwork_benchmark -- --threads=2
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/nn/module.h>
#include <torch/optim/adam.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "ouroboros/api/data.h"
#include "ouroboros/config/config.h"
#include "plugins/hypernetwork/hypernetwork.h"

namespace ouroboros::hypernetwork {
namespace {

constexpr int64_t kBatchSize = 128;

// Fashion-MNIST, read once for all benchmarks; nullptr (and the benchmark
// skipped) if it cannot be read.
const DataSplits* FashionMnistOrSkip(benchmark::State& state) {
  static const absl::StatusOr<DataSplits>* data = [] {
    DataConfig config;
    config.set_dataset("fashion_mnist");
    return new absl::StatusOr<DataSplits>(LoadDataSplits(config, 1));
  }();
  if (data->ok()) return &**data;
  state.SkipWithError(std::string(data->status().message()).c_str());
  return nullptr;
}

// The model of `model_config` (a model_config JSON object); nullptr (and the
// benchmark skipped) if the config is refused.
std::unique_ptr<HypernetworkModel> BuildOrSkip(const std::string& model_config,
                                               const DataSpec& spec,
                                               benchmark::State& state) {
  absl::StatusOr<RunConfig> config =
      ParseRunConfig(absl::StrCat(R"({"model": "hypernetwork",
        "data_config": {"dataset": "fashion_mnist"},
        "optim_config": {"name": "adam", "lr": 0.001},
        "run_config": {"epochs": 1, "batch_size": 128},
        "model_config": )",
                                  model_config, "}"),
                     "benchmark");
  absl::StatusOr<HypernetworkConfig> parsed =
      config.ok() ? ParseHypernetworkConfig(*config) : config.status();
  absl::StatusOr<std::unique_ptr<HypernetworkModel>> model =
      parsed.ok() ? BuildHypernetworkModel(*parsed, spec) : parsed.status();
  if (model.ok()) return *std::move(model);
  state.SkipWithError(std::string(model.status().message()).c_str());
  return nullptr;
}

// Forward, loss, backward and an Adam step on consecutive batches.
void TrainStep(benchmark::State& state, const std::string& model_config) {
  const DataSplits* data = FashionMnistOrSkip(state);
  if (data == nullptr) return;
  std::unique_ptr<HypernetworkModel> model =
      BuildOrSkip(model_config, data->spec, state);
  if (model == nullptr) return;
  torch::optim::Adam adam(model->module().parameters(), 1e-3);
  const at::Tensor& inputs = data->train.inputs;
  const at::Tensor& targets = data->train.targets;
  const int64_t n = inputs.size(0);
  int64_t start = 0;
  for (auto _ : state) {
    if (start + kBatchSize > n) start = 0;
    adam.zero_grad();
    model
        ->Loss(model->Forward(inputs.slice(0, start, start + kBatchSize)),
               targets.slice(0, start, start + kBatchSize))
        .backward();
    adam.step();
    start += kBatchSize;
  }
  state.SetItemsProcessed(state.iterations() * kBatchSize);
  state.counters["threads"] = at::get_num_threads();
}

// Generating every kernel of the model once, with its backward pass: the
// whole overhead a generated model adds to a training step.
void GenerateKernels(benchmark::State& state, const std::string& model_config) {
  std::unique_ptr<HypernetworkModel> model =
      BuildOrSkip(model_config, DataSpec{{1, 28, 28}, 10}, state);
  if (model == nullptr) return;
  for (auto _ : state) {
    at::Tensor sum = at::zeros({});
    for (const at::Tensor& kernel : model->Kernels()) sum = sum + kernel.sum();
    sum.backward();
  }
}

void RegisterAll() {
  const std::vector<std::pair<std::string, std::string>> models = {
      {"mnist_conv", R"("architecture": "mnist_conv")"},
      {"resnet",
       R"("architecture": "resnet", "embedding_dim": 8,
          "stage_channels": [16, 32, 64])"}};
  for (const auto& [name, architecture] : models) {
    for (const char* kernels : {"ordinary", "generated"}) {
      const std::string model_config =
          absl::StrCat("{", architecture, R"(, "kernels": ")", kernels, "\"}");
      benchmark::RegisterBenchmark(
          absl::StrCat("BM_TrainStep/", name, "/", kernels).c_str(),
          [model_config](benchmark::State& state) {
            TrainStep(state, model_config);
          })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
    const std::string generated =
        absl::StrCat("{", architecture, R"(, "kernels": "generated"})");
    benchmark::RegisterBenchmark(
        absl::StrCat("BM_GenerateKernels/", name).c_str(),
        [generated](benchmark::State& state) {
          GenerateKernels(state, generated);
        })
        ->Unit(benchmark::kMicrosecond)
        ->UseRealTime();
  }
}

// Registered at load time, before //ouroboros:benchmark_main runs them.
[[maybe_unused]] const bool kRegistered = (RegisterAll(), true);

}  // namespace
}  // namespace ouroboros::hypernetwork
