// Self-replication speed of the paper's vanilla quine (20,100 parameters):
// vectorized against a per-parameter loop like the original prototype's,
// the C++ side of tools/bench_quine.
//
//   bazel run //plugins/quine:quine_benchmark -- --threads=2
//
// SrEpoch*: one SR epoch over all coordinates. FullBatch: L_SR of all
// coordinates in one forward/backward and one Adamax step; PerParameter: the
// same loss built one coordinate at a time (Indexed: projection row c;
// OneHot: e_c times the projection, like the original prototype);
// Minibatch10: the paper's epoch, 2,010 Adamax steps of 10 coordinates.
// Regenerate*: theta <- f_theta(C), vectorized or one coordinate at a time.
#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/utils.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "ouroboros/config/config.h"
#include "plugins/optimizers/adamax.h"
#include "plugins/quine/quine.h"

namespace ouroboros::quine {
namespace {

constexpr char kConfig[] = R"({
  "model": "quine", "seed": 1,
  "data_config": {"dataset": "quine_coordinates"},
  "optim_config": {"name": "adamax", "lr": 0.002},
  "run_config": {"epochs": 1, "batch_size": 10},
  "model_config": {"coordinate_embedding": 100, "hidden_sizes": [100, 100]}
})";

std::unique_ptr<QuineModel> PaperQuine() {
  absl::StatusOr<RunConfig> run = ParseRunConfig(kConfig, "benchmark");
  absl::StatusOr<QuineConfig> config = ParseQuineConfig(*run);
  if (!config.ok()) std::abort();
  return std::make_unique<QuineModel>(*config, DataSpec{{1}, 0}, 1);
}

optimizers::Adamax MakeAdamax(QuineModel& quine) {
  return optimizers::Adamax(quine.module().parameters(),
                            optimizers::AdamaxOptions(0.002));
}

// The per-parameter references: one forward per coordinate, as the original
// prototype looped over its parameters; Indexed takes row c of the
// projection, OneHot multiplies the one-hot vector e_c with it as the
// prototype did. Same math as PredictWeights.
at::Tensor PredictIndexed(QuineModel& quine, int64_t coordinate) {
  return quine.PredictWeights(at::tensor({coordinate}, at::kLong));
}

at::Tensor PredictOneHot(QuineModel& quine, int64_t coordinate) {
  at::Tensor one_hot = at::zeros({1, quine.num_parameters()});
  one_hot[0][coordinate] = 1;
  return quine.PredictFromEmbedding(
      at::matmul(one_hot, quine.coordinate_projection()));
}

using Predictor = at::Tensor (*)(QuineModel&, int64_t);

void BM_SrEpochFullBatch(benchmark::State& state) {
  std::unique_ptr<QuineModel> quine = PaperQuine();
  optimizers::Adamax adamax = MakeAdamax(*quine);
  at::Tensor all = at::arange(quine->num_parameters());
  for (auto _ : state) {
    adamax.zero_grad();
    quine->SelfReplicationLoss(all).backward();
    adamax.step();
  }
}
BENCHMARK(BM_SrEpochFullBatch)->Unit(benchmark::kMillisecond)->UseRealTime();

void SrEpochPerParameter(benchmark::State& state, Predictor predict) {
  std::unique_ptr<QuineModel> quine = PaperQuine();
  optimizers::Adamax adamax = MakeAdamax(*quine);
  const int64_t n = quine->num_parameters();
  for (auto _ : state) {
    adamax.zero_grad();
    at::Tensor theta = quine->weights().detach();
    at::Tensor loss = at::zeros({});
    for (int64_t c = 0; c < n; ++c) {
      loss = loss + (predict(*quine, c) - theta[c]).pow(2).sum();
    }
    loss.backward();
    adamax.step();
  }
}
BENCHMARK_CAPTURE(SrEpochPerParameter, Indexed, PredictIndexed)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(2);
BENCHMARK_CAPTURE(SrEpochPerParameter, OneHot, PredictOneHot)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(1);

void BM_SrEpochMinibatch10(benchmark::State& state) {
  std::unique_ptr<QuineModel> quine = PaperQuine();
  optimizers::Adamax adamax = MakeAdamax(*quine);
  const int64_t n = quine->num_parameters();
  at::Tensor order = at::randperm(n);
  for (auto _ : state) {
    for (int64_t start = 0; start < n; start += 10) {
      adamax.zero_grad();
      quine->SelfReplicationLoss(order.slice(0, start, start + 10)).backward();
      adamax.step();
    }
  }
}
BENCHMARK(BM_SrEpochMinibatch10)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_RegenerateVectorized(benchmark::State& state) {
  std::unique_ptr<QuineModel> quine = PaperQuine();
  at::Tensor initial = quine->weights().detach().clone();
  for (auto _ : state) {
    quine->Regenerate();
    state.PauseTiming();
    torch::NoGradGuard no_grad;
    quine->weights().copy_(initial);  // keep every iteration's input alike
    state.ResumeTiming();
  }
}
BENCHMARK(BM_RegenerateVectorized)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void RegeneratePerParameter(benchmark::State& state, Predictor predict) {
  std::unique_ptr<QuineModel> quine = PaperQuine();
  const int64_t n = quine->num_parameters();
  for (auto _ : state) {
    torch::NoGradGuard no_grad;
    // Every prediction from the old weights, then all written at once.
    at::Tensor regenerated = at::empty({n});
    float* out = regenerated.data_ptr<float>();
    for (int64_t c = 0; c < n; ++c) {
      out[c] = predict(*quine, c).item<float>();
    }
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK_CAPTURE(RegeneratePerParameter, Indexed, PredictIndexed)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(2);
BENCHMARK_CAPTURE(RegeneratePerParameter, OneHot, PredictOneHot)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(1);

}  // namespace
}  // namespace ouroboros::quine
