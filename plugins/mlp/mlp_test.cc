#include "plugins/mlp/mlp.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "gtest/gtest.h"
#include "ouroboros/config/config.h"

namespace ouroboros::mlp {
namespace {

RunConfig ConfigWith(const std::string& model_config_json) {
  std::string json = R"({"model": "mlp",
    "data_config": {"dataset": "synthetic", "synthetic":
      {"num_samples": 8, "num_features": 6, "num_classes": 3}},
    "optim_config": {"name": "adam", "lr": 0.1},
    "run_config": {"epochs": 1, "batch_size": 4},
    "model_config": )" +
                     model_config_json + "}";
  absl::StatusOr<RunConfig> config = ParseRunConfig(json, "test.json");
  EXPECT_TRUE(config.ok()) << config.status();
  return *config;
}

TEST(MlpTest, ForwardGivesLogitsPerClass) {
  RunConfig config = ConfigWith(R"({"layer_sizes": [16, 8]})");
  ModelContext context{&config, "test.json", DataSpec{{2, 3}, 5}};
  absl::StatusOr<std::unique_ptr<Model>> model = MakeMlp(context);
  ASSERT_TRUE(model.ok()) << model.status();
  at::Tensor out = (*model)->Forward(at::randn({4, 2, 3}));
  EXPECT_EQ(out.sizes(), (at::IntArrayRef{4, 5}));
}

TEST(MlpTest, ParameterCountMatchesTheLayerSizes) {
  RunConfig config = ConfigWith(R"({"layer_sizes": [16, 8]})");
  ModelContext context{&config, "test.json", DataSpec{{6}, 3}};
  absl::StatusOr<std::unique_ptr<Model>> model = MakeMlp(context);
  ASSERT_TRUE(model.ok());
  int64_t count = 0;
  for (const at::Tensor& p : (*model)->module().parameters())
    count += p.numel();
  EXPECT_EQ(count, (6 * 16 + 16) + (16 * 8 + 8) + (8 * 3 + 3));
}

TEST(MlpTest, EveryActivationBuilds) {
  for (const char* act : {"relu", "tanh", "selu", "gelu", "sigmoid"}) {
    RunConfig config =
        ConfigWith(std::string(R"({"layer_sizes": [4], "activation": ")") +
                   act + "\", \"dropout\": 0.5}");
    ModelContext context{&config, "test.json", DataSpec{{6}, 3}};
    EXPECT_TRUE(MakeMlp(context).ok()) << act;
  }
}

struct BadSection {
  const char* json;
  const char* error;
};

class MlpConfigErrorTest : public ::testing::TestWithParam<BadSection> {};

TEST_P(MlpConfigErrorTest, NamesFieldAndReason) {
  RunConfig config = ConfigWith(GetParam().json);
  EXPECT_EQ(std::string(ParseMlpConfig(config).status().message()),
            GetParam().error);
  ModelContext context{&config, "test.json", DataSpec{{6}, 3}};
  EXPECT_EQ(std::string(MakeMlp(context).status().message()),
            std::string("test.json: ") + GetParam().error);
}

INSTANTIATE_TEST_SUITE_P(
    Errors, MlpConfigErrorTest,
    ::testing::Values(
        BadSection{"{}",
                   "model_config.layer_sizes: must list at least one hidden "
                   "layer width"},
        BadSection{R"({"layer_sizes": [4, -2]})",
                   "model_config.layer_sizes[1]: must be >= 1 (got -2)"},
        BadSection{R"({"layer_sizes": [4], "activation": "swish"})",
                   "model_config.activation: unknown activation 'swish'; "
                   "known: relu, tanh, selu, gelu, sigmoid"},
        BadSection{R"({"layer_sizes": [4], "dropout": 1})",
                   "model_config.dropout: must be in [0, 1) (got 1)"},
        BadSection{R"({"layer_sizes": [4], "width": 3})",
                   "model_config.width: unknown field (not in the schema; "
                   "known: layer_sizes, activation, dropout)"},
        BadSection{R"({"layer_sizes": "wide"})",
                   "model_config.layer_sizes: invalid value \"wide\": expected "
                   "a list of whole numbers in 32-bit range (a list is written "
                   "[\"wide\"])"},
        BadSection{R"({"layer_sizes": 64})",
                   "model_config.layer_sizes: invalid value 64: expected a "
                   "list of whole numbers in 32-bit range (a list is written "
                   "[64])"},
        BadSection{R"({"layer_sizes": [4], "dropout": "0.2"})",
                   "model_config.dropout: invalid value \"0.2\": expected a "
                   "number (a number is written without quotes: 0.2)"},
        BadSection{R"({"layer_sizes": [4], "dropot": 0.2})",
                   "model_config.dropot: unknown field; did you mean "
                   "'dropout'?"}));

}  // namespace
}  // namespace ouroboros::mlp
