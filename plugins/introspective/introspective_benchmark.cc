// The introspective plugin's costs: one jump (I applied to every weight of
// a 1M-weight model in one batched pass, features included) and a
// recorder snapshot against the training step of the same model.
//
//   bazel run //plugins/introspective:introspective_benchmark -- --threads=2
#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/optim/sgd.h>

#include <memory>

#include "benchmark/benchmark.h"
#include "plugins/introspective/introspection_net.h"
#include "plugins/introspective/weight_history.h"

namespace ouroboros::introspective {
namespace {

// An MLP 784 -> 1024 -> 192 -> 10 with biases: 1,004,682 weights.
struct MillionWeightMlp {
  std::shared_ptr<torch::nn::Module> module =
      std::make_shared<torch::nn::Module>();
  at::Tensor w1, b1, w2, b2, w3, b3;
  MillionWeightMlp() {
    w1 = module->register_parameter("w1", at::randn({784, 1024}) * 0.03);
    b1 = module->register_parameter("b1", at::zeros({1024}));
    w2 = module->register_parameter("w2", at::randn({1024, 192}) * 0.03);
    b2 = module->register_parameter("b2", at::zeros({192}));
    w3 = module->register_parameter("w3", at::randn({192, 10}) * 0.07);
    b3 = module->register_parameter("b3", at::zeros({10}));
  }
  at::Tensor Loss(const at::Tensor& x, const at::Tensor& y) const {
    at::Tensor h = at::relu(at::addmm(b1, x, w1));
    h = at::relu(at::addmm(b2, h, w2));
    return at::cross_entropy_loss(at::addmm(b3, h, w3), y);
  }
};

void BM_JumpOneMillionWeights(benchmark::State& state) {
  torch::manual_seed(1);
  MillionWeightMlp mlp;
  ParameterLayout layout = LayoutOf(*mlp.module);
  std::array<at::Tensor, 4> history;
  for (at::Tensor& h : history) h = at::randn({layout.total});
  IntrospectionNet net(40);
  for (auto _ : state) {
    at::Tensor w = PredictWeights(net, history, layout);
    benchmark::DoNotOptimize(w.data_ptr());
  }
  state.counters["weights"] = static_cast<double>(layout.total);
}
BENCHMARK(BM_JumpOneMillionWeights)->Unit(benchmark::kMillisecond);

// I's forward alone (the features given).
void BM_PredictOneMillionRows(benchmark::State& state) {
  torch::manual_seed(1);
  at::Tensor inputs = at::randn({4, 1000000}).t();
  IntrospectionNet net(40);
  for (auto _ : state) {
    at::Tensor out = net.Predict(inputs);
    benchmark::DoNotOptimize(out.data_ptr());
  }
}
BENCHMARK(BM_PredictOneMillionRows)->Unit(benchmark::kMillisecond);

// The recorder's work per snapshot step.
void BM_SnapshotOneMillionWeights(benchmark::State& state) {
  torch::manual_seed(1);
  MillionWeightMlp mlp;
  for (auto _ : state) {
    at::Tensor flat = Snapshot(*mlp.module);
    benchmark::DoNotOptimize(flat.data_ptr());
  }
}
BENCHMARK(BM_SnapshotOneMillionWeights)->Unit(benchmark::kMillisecond);

// A training step of the same model (batch 128, SGD): what a snapshot is
// compared with.
void BM_TrainingStepOneMillionWeights(benchmark::State& state) {
  torch::manual_seed(1);
  MillionWeightMlp mlp;
  torch::optim::SGD sgd(mlp.module->parameters(),
                        torch::optim::SGDOptions(0.01));
  at::Tensor x = at::randn({128, 784});
  at::Tensor y = at::randint(0, 10, {128}, at::kLong);
  for (auto _ : state) {
    at::Tensor loss = mlp.Loss(x, y);
    sgd.zero_grad();
    loss.backward();
    sgd.step();
  }
}
BENCHMARK(BM_TrainingStepOneMillionWeights)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ouroboros::introspective
