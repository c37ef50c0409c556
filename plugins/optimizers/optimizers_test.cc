#include <ATen/ATen.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize/archive.h>

#include <cmath>
#include <memory>
#include <sstream>
#include <vector>

#include "gtest/gtest.h"
#include "ouroboros/api/plugin_api.h"
#include "ouroboros/config/config.h"
#include "plugins/optimizers/adamax.h"
#include "plugins/optimizers/fused_adam.h"

namespace ouroboros::optimizers {
namespace {

// The optimizers of this plugin, linked into the test binary.
PluginRegistry& Registry() {
  static PluginRegistry* registry = [] {
    auto* r = new PluginRegistry;
    absl::Status s = ouroboros_plugin_info()->register_all(*r, "linked");
    EXPECT_TRUE(s.ok()) << s;
    return r;
  }();
  return *registry;
}

OptimConfig Config(const std::string& name, double lr,
                   const std::string& params_json = "{}") {
  absl::StatusOr<RunConfig> config = ParseRunConfig(
      R"({"data_config": {"dataset": "synthetic", "synthetic":
          {"num_samples": 1, "num_features": 1, "num_classes": 2}},
        "run_config": {"epochs": 1, "batch_size": 1},
        "optim_config": {"name": ")" +
          name + "\", \"lr\": " + std::to_string(lr) +
          ", \"params\": " + params_json + "}}",
      "test.json");
  EXPECT_TRUE(config.ok()) << config.status();
  return config->optim_config();
}

class EveryOptimizerTest : public ::testing::TestWithParam<const char*> {};

TEST_P(EveryOptimizerTest, MinimizesAQuadratic) {
  at::Tensor x = at::full({3}, 2.0).set_requires_grad(true);
  OptimConfig config = Config(GetParam(), 0.05);
  absl::StatusOr<const OptimizerEntry*> entry =
      Registry().FindOptimizer(GetParam());
  ASSERT_TRUE(entry.ok()) << entry.status();
  auto optimizer = (*entry)->factory({{x}, &config, "test.json"});
  ASSERT_TRUE(optimizer.ok()) << optimizer.status();
  double first = 0, last = 0;
  for (int step = 0; step < 50; ++step) {
    (*optimizer)->zero_grad();
    at::Tensor loss = (x * x).sum();
    if (step == 0) first = loss.item<double>();
    last = loss.item<double>();
    loss.backward();
    (*optimizer)->step();
  }
  EXPECT_LT(last, 0.5 * first) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(All, EveryOptimizerTest,
                         ::testing::Values("sgd", "adam", "adamw", "adamax",
                                           "adagrad", "rmsprop"));

TEST(AdamaxTest, MatchesTheUpdateRuleByHand) {
  // Two steps on f(x) = x^2 from x = 1 with lr 0.1, betas (0.9, 0.999),
  // eps 1e-8, the rule of torch.optim.Adamax.
  at::Tensor x = at::full({1}, 1.0, at::kDouble).set_requires_grad(true);
  Adamax optimizer({x}, AdamaxOptions(0.1));
  double m = 0, u = 0, expected = 1.0;
  for (int t = 1; t <= 2; ++t) {
    optimizer.zero_grad();
    (x * x).sum().backward();
    optimizer.step();
    double g = 2 * expected;
    m = 0.9 * m + 0.1 * g;
    u = std::max(0.999 * u, std::abs(g) + 1e-8);
    expected -= 0.1 / (1 - std::pow(0.9, t)) * m / u;
    EXPECT_NEAR(x.item<double>(), expected, 1e-12) << "step " << t;
  }
}

struct BadParams {
  const char* name;
  const char* params;
  const char* error;
};

class OptimizerConfigErrorTest : public ::testing::TestWithParam<BadParams> {};

TEST_P(OptimizerConfigErrorTest, ValidatorNamesFieldAndReason) {
  RunConfig run;
  *run.mutable_optim_config() = Config(GetParam().name, 0.1, GetParam().params);
  const OptimizerEntry* entry = *Registry().FindOptimizer(GetParam().name);
  EXPECT_EQ(std::string(entry->validate_config(run).message()),
            GetParam().error);
}

INSTANTIATE_TEST_SUITE_P(
    Errors, OptimizerConfigErrorTest,
    ::testing::Values(
        BadParams{"adam", R"({"betas": [0.9]})",
                  "optim_config.params.betas: needs exactly 2 values (got 1)"},
        BadParams{"adamw", R"({"betas": [0.9, 1.5]})",
                  "optim_config.params.betas: each must be in [0, 1) (got "
                  "1.5)"},
        BadParams{"adamax", R"({"amsgrad": true})",
                  "optim_config.params.amsgrad: adamax has no amsgrad variant"},
        BadParams{"sgd", R"({"nesterov": true})",
                  "optim_config.params.nesterov: needs momentum > 0 and "
                  "dampening = 0"},
        BadParams{"sgd", R"({"momentum": -1})",
                  "optim_config.params.momentum: must be >= 0 (got -1)"},
        BadParams{"rmsprop", R"({"alpha": 0})",
                  "optim_config.params.alpha: must be > 0 (got 0)"},
        BadParams{"adagrad", R"({"eps": -1})",
                  "optim_config.params.eps: must be > 0 (got -1)"},
        BadParams{"adam", R"({"beta1": 0.9})",
                  "optim_config.params.beta1: unknown field; did you mean "
                  "'betas'?"}));

}  // namespace
}  // namespace ouroboros::optimizers

namespace ouroboros::optimizers {
namespace {

TEST(AdamaxTest, SavedStateContinuesExactly) {
  auto run = [](Adamax& optimizer, at::Tensor& x, int steps) {
    for (int i = 0; i < steps; ++i) {
      optimizer.zero_grad();
      (x * x * x).sum().backward();
      optimizer.step();
    }
  };
  at::Tensor x = at::full({3}, 0.5, at::kDouble).set_requires_grad(true);
  Adamax optimizer({x}, AdamaxOptions(0.1));
  run(optimizer, x, 3);
  torch::serialize::OutputArchive out;
  optimizer.save(out);
  std::string bytes;
  out.save_to([&bytes](const void* data, size_t size) -> size_t {
    bytes.append(static_cast<const char*>(data), size);
    return size;
  });
  at::Tensor y = x.detach().clone().set_requires_grad(true);
  run(optimizer, x, 2);

  Adamax restored({y}, AdamaxOptions(0.1));
  torch::serialize::InputArchive in;
  in.load_from(bytes.data(), bytes.size());
  restored.load(in);
  run(restored, y, 2);
  EXPECT_TRUE(at::equal(x, y));
}

}  // namespace
}  // namespace ouroboros::optimizers

namespace ouroboros::optimizers {
namespace {

// n steps of `optimizer` on a fixed quadratic-plus-noise loss of p.
void Steps(torch::optim::Optimizer& optimizer, at::Tensor& p, int n) {
  for (int step = 0; step < n; ++step) {
    optimizer.zero_grad();
    at::Tensor loss =
        (p * p).sum() +
        (p * at::linspace(-1, 1, p.numel()).view(p.sizes())).sum() *
            std::sin(step);
    loss.backward();
    optimizer.step();
  }
}

// The one-pass update computes LibTorch's Adam and AdamW (to rounding), with
// weight decay, over many steps of a parameter large enough to be split
// between threads, and its state is LibTorch's (a checkpoint of one loads
// into the other).
TEST(FusedAdamTest, AgreesWithLibTorchsAdamAndAdamW) {
  for (bool decoupled : {false, true}) {
    at::manual_seed(7);
    at::Tensor start = at::randn({1 << 17});
    at::Tensor fused_p = start.clone().set_requires_grad(true);
    at::Tensor plain_p = start.clone().set_requires_grad(true);
    std::unique_ptr<torch::optim::Optimizer> fused, plain;
    if (decoupled) {
      torch::optim::AdamWOptions options(0.01);
      options.weight_decay(0.1).betas({0.8, 0.99}).eps(1e-6);
      fused = std::make_unique<FusedAdamW>(std::vector<at::Tensor>{fused_p},
                                           options);
      plain = std::make_unique<torch::optim::AdamW>(
          std::vector<at::Tensor>{plain_p}, options);
    } else {
      torch::optim::AdamOptions options(0.01);
      options.weight_decay(0.1).betas({0.8, 0.99}).eps(1e-6);
      fused = std::make_unique<FusedAdam>(std::vector<at::Tensor>{fused_p},
                                          options);
      plain = std::make_unique<torch::optim::Adam>(
          std::vector<at::Tensor>{plain_p}, options);
    }
    Steps(*fused, fused_p, 30);
    Steps(*plain, plain_p, 30);
    EXPECT_TRUE(at::allclose(fused_p, plain_p, 1e-5, 1e-6)) << decoupled;
    EXPECT_GT((fused_p - start).abs().max().item<float>(), 0.1f);
    // Saved by the fused optimizer, loaded into LibTorch's: the same
    // continuation.
    torch::serialize::OutputArchive out;
    fused->save(out);
    std::ostringstream bytes;
    out.save_to(bytes);
    at::Tensor continued = fused_p.detach().clone().set_requires_grad(true);
    std::unique_ptr<torch::optim::Optimizer> reloaded;
    if (decoupled) {
      reloaded = std::make_unique<torch::optim::AdamW>(
          std::vector<at::Tensor>{continued}, torch::optim::AdamWOptions(0.01)
                                                  .weight_decay(0.1)
                                                  .betas({0.8, 0.99})
                                                  .eps(1e-6));
    } else {
      reloaded = std::make_unique<torch::optim::Adam>(
          std::vector<at::Tensor>{continued}, torch::optim::AdamOptions(0.01)
                                                  .weight_decay(0.1)
                                                  .betas({0.8, 0.99})
                                                  .eps(1e-6));
    }
    torch::serialize::InputArchive in;
    std::istringstream read(bytes.str());
    in.load_from(read);
    reloaded->load(in);
    Steps(*reloaded, continued, 5);
    Steps(*fused, fused_p, 5);
    EXPECT_TRUE(at::allclose(fused_p, continued, 1e-5, 1e-6)) << decoupled;
  }
}

TEST(FusedAdamTest, AdamIsFusedUnlessAskedNotTo) {
  at::Tensor x = at::ones({4}).set_requires_grad(true);
  OptimConfig fused = Config("adam", 0.1);
  OptimConfig plain = Config("adam", 0.1, R"({"fused": false})");
  const OptimizerEntry* adam = *Registry().FindOptimizer("adam");
  auto a = adam->factory({{x}, &fused, "test.json"});
  auto b = adam->factory({{x}, &plain, "test.json"});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(dynamic_cast<FusedAdam*>(a->get()), nullptr);
  EXPECT_EQ(dynamic_cast<FusedAdam*>(b->get()), nullptr);
  RunConfig run;
  *run.mutable_optim_config() = Config("adamax", 0.1, R"({"fused": false})");
  EXPECT_EQ(
      std::string((*Registry().FindOptimizer("adamax"))
                      ->validate_config(run)
                      .message()),
      "optim_config.params.fused: adamax has only its own step (for adam and "
      "adamw)");
}

}  // namespace
}  // namespace ouroboros::optimizers
