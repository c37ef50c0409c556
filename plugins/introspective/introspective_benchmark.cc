// The introspective plugin's costs on a 1M-weight model: one whole jump
// (JumpHook at a jump step: the snapshot of w(t), features, I over every
// weight, the finiteness check, the write-back into the live parameters),
// I's prediction alone, and a recorder snapshot (with and without the file
// a resume needs) against the training step of the same model.
//
//   bazel run //plugins/introspective:introspective_benchmark -- --threads=2
#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/optim/sgd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "benchmark/benchmark.h"
#include "plugins/introspective/hooks.h"
#include "plugins/introspective/introspection_net.h"
#include "plugins/introspective/weight_history.h"

namespace ouroboros::introspective {
namespace {

// An MLP 784 -> 1024 -> 192 -> 10 with biases: 1,002,570 weights.
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

// PredictWeights alone: the features of every weight from its four
// snapshots and I's forward over all of them (no snapshot, no write-back).
void BM_PredictWeightsOneMillionWeights(benchmark::State& state) {
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
BENCHMARK(BM_PredictWeightsOneMillionWeights)->Unit(benchmark::kMillisecond);

// One whole jump as a run does it: JumpHook::OnStepEnd at the jump step 10
// (the history of 0, 4 and 7 taken beforehand, outside the timing; no run
// directory, so no file is written).
void BM_JumpOneMillionWeights(benchmark::State& state) {
  torch::manual_seed(1);
  MillionWeightMlp mlp;
  const at::Tensor initial = Snapshot(*mlp.module);
  JumpHookConfig config;
  config.set_network("unused");
  config.add_jump_steps(10);
  config.set_optimizer_state("keep");
  for (auto _ : state) {
    state.PauseTiming();
    (void)WriteSnapshot(initial, *mlp.module);
    JumpHook hook(config, std::make_unique<IntrospectionNet>(40), "");
    TrainingView view{mlp.module.get(), nullptr, 0, 0, ""};
    (void)hook.OnTrainBegin(view);
    for (int64_t step : {4, 7}) {
      (void)WriteSnapshot(initial + 0.01 * step, *mlp.module);
      view.step = step;
      (void)hook.OnStepEnd(view);
    }
    (void)WriteSnapshot(initial + 0.1, *mlp.module);
    view.step = 10;
    state.ResumeTiming();
    absl::Status status = hook.OnStepEnd(view);
    if (!status.ok() || hook.jumps_done() != 1) {
      state.SkipWithError("the jump did not happen");
      break;
    }
  }
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

// The same with the weights out of the caches: 64 MB (twice the 32 MB L3
// of the machine measured) are written between snapshots, outside the
// timing. The warm number above copies 4 MB that stay in the L3.
void BM_SnapshotOneMillionWeightsColdCache(benchmark::State& state) {
  torch::manual_seed(1);
  MillionWeightMlp mlp;
  at::Tensor evict = at::empty({16 << 20}, at::kFloat);
  for (auto _ : state) {
    state.PauseTiming();
    evict.fill_(1.0f);
    state.ResumeTiming();
    at::Tensor flat = Snapshot(*mlp.module);
    benchmark::DoNotOptimize(flat.data_ptr());
  }
}
BENCHMARK(BM_SnapshotOneMillionWeightsColdCache)->Unit(benchmark::kMillisecond);

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
