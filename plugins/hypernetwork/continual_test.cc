#include "plugins/hypernetwork/continual.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ouroboros/api/data.h"
#include "ouroboros/api/plugin_api.h"
#include "ouroboros/api/registry.h"
#include "ouroboros/base/json.h"
#include "ouroboros/config/config.h"
#include "ouroboros/config/config_defaults.h"
#include "ouroboros/train/resume_check.h"
#include "ouroboros/train/trainer.h"
#include "plugins/hypernetwork/task_sequences.h"

namespace ouroboros::hypernetwork {
namespace {

using ::testing::HasSubstr;

PluginRegistry& Registry() {
  static PluginRegistry* registry = [] {
    auto* r = new PluginRegistry;
    EXPECT_TRUE(RegisterBuiltinDataSources(*r).ok());
    EXPECT_TRUE(ouroboros_plugin_info()->register_all(*r, "test").ok());
    EXPECT_TRUE(RegisterTrainerStandIns(*r).ok());
    return r;
  }();
  return *registry;
}

// Three tasks of two classes from six well separated synthetic clusters:
// under one shared head, each task's 0/1 contradicts the one before.
constexpr char kThreeTasks[] = R"({
  "run_name": "three_tasks", "model": "continual", "seed": 2,
  "data_config": {"dataset": "split",
    "synthetic": {"num_samples": 1200, "num_features": 8, "num_classes": 6,
                  "noise": 0.3},
    "split": {"val_fraction": 0.2},
    "source_config": {"images": "synthetic", "epochs_per_task": 4}},
  "optim_config": {"name": "adam", "lr": 0.03},
  "run_config": {"epochs": 3, "batch_size": 32, "skip_plots": true},
  "model_config": {"main_hidden_sizes": [16], "hnet_hidden_sizes": [16],
                   "task_embedding_dim": 4, "beta": 0.05}
})";

RunConfig Config(const std::vector<std::string>& overrides = {}) {
  absl::StatusOr<RunConfig> config =
      ParseRunConfig(kThreeTasks, "three_tasks.json", overrides);
  EXPECT_TRUE(config.ok()) << config.status();
  return *config;
}

std::string Scratch(const std::string& name) {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
}

// Trains `config` in-process; its continual.json (and the summary's result
// lines into `summary_lines`, if given).
google::protobuf::Value Train(
    RunConfig config, const std::string& name,
    std::vector<std::string>* summary_lines = nullptr) {
  EXPECT_TRUE(Registry().CheckConfig(config).ok())
      << Registry().CheckConfig(config);
  PipelineContext context;
  context.config = &config;
  context.config_source = name;
  context.run_dir = Scratch(name);
  context.registry = &Registry();
  Trainer trainer(context);
  absl::StatusOr<TrainResult> result = trainer.Run();
  EXPECT_TRUE(result.ok()) << result.status();
  if (result.ok() && summary_lines != nullptr) {
    *summary_lines = result->family_results;
  }
  absl::StatusOr<google::protobuf::Value> report =
      ReadJsonFile(context.run_dir + "/" + kContinualReportFile);
  EXPECT_TRUE(report.ok()) << report.status();
  return report.ok() ? *report : google::protobuf::Value();
}

double Number(const google::protobuf::Value& report, const std::string& key) {
  return report.struct_value().fields().at(key).number_value();
}

// row, column of a continual.json matrix; NaN for null.
double Cell(const google::protobuf::Value& report, const std::string& key,
            int row, int column) {
  const auto& cell = report.struct_value()
                         .fields()
                         .at(key)
                         .list_value()
                         .values(row)
                         .list_value()
                         .values(column);
  return cell.has_number_value() ? cell.number_value() : std::nan("");
}

TEST(ContinualTest, OutputRegularizerIsBetaOverTasksTimesSquaredDistance) {
  at::Tensor generated = at::tensor({1.0f, 2.0f, 3.0f, 4.0f}).view({2, 2});
  at::Tensor targets = at::tensor({0.0f, 2.0f, 1.0f, 1.0f}).view({2, 2});
  // (1 + 0) + (4 + 9) = 14 over 2 earlier tasks, times beta 0.5.
  EXPECT_FLOAT_EQ(OutputRegularizer(generated, targets, 0.5).item<float>(),
                  3.5f);
}

TEST(ContinualTest, TaskInferenceTakesTheMostCertainNetwork) {
  // Two tasks' logits for two samples: task 0 is sure of sample 0, task 1
  // of sample 1; the other is uniform.
  at::Tensor logits =
      at::tensor({10.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 10.0f})
          .view({2, 2, 2});
  at::Tensor chosen = InferTaskByEntropy(logits);
  EXPECT_EQ(chosen[0].item<int64_t>(), 0);
  EXPECT_EQ(chosen[1].item<int64_t>(), 1);
}

TEST(ContinualTest, MainNetworkRunsOnAFlatWeightVector) {
  RunConfig run = Config({"model_config.main_hidden_sizes=[3]"});
  absl::StatusOr<ContinualConfig> config = ParseContinualConfig(run);
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<MainNetwork> net = MainNetwork::Make(*config, {{4}, 2}, 2);
  ASSERT_TRUE(net.ok()) << net.status();
  // 4 -> 3 -> 2: 12 + 3 + 6 + 2.
  EXPECT_EQ(net->num_weights(), 23);
  at::manual_seed(3);
  at::Tensor w = at::randn({23});
  at::Tensor x = at::randn({5, 4});
  at::Tensor hidden = at::relu(
      at::matmul(x, w.narrow(0, 0, 12).view({3, 4}).t()) + w.narrow(0, 12, 3));
  at::Tensor expected =
      at::matmul(hidden, w.narrow(0, 15, 6).view({2, 3}).t()) +
      w.narrow(0, 21, 2);
  EXPECT_TRUE(at::allclose(net->Forward(x, w), expected));
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  at::Tensor init = net->Initialize(gen);
  EXPECT_LE(init.narrow(0, 0, 15).abs().max().item<float>(),
            0.5f);  // 1/sqrt(4)
  EXPECT_FLOAT_EQ(net->InitScale()[20].item<float>(), 1 / std::sqrt(3.0f));
  absl::StatusOr<ContinualConfig> conv = ParseContinualConfig(
      Config({"model_config.main_network=\"mnist_conv\""}));
  ASSERT_TRUE(conv.ok());
  absl::StatusOr<MainNetwork> image_net =
      MainNetwork::Make(*conv, {{1, 28, 28}, 10}, 10);
  ASSERT_TRUE(image_net.ok());
  // conv 1->16 7x7 (784 + 16), conv 16->16 (12544 + 16), head 784 -> 10.
  EXPECT_EQ(image_net->num_weights(), 800 + 12560 + 7850);
  EXPECT_EQ(image_net
                ->Forward(at::zeros({2, 1, 28, 28}),
                          at::zeros({image_net->num_weights()}))
                .sizes(),
            (at::IntArrayRef{2, 10}));
  EXPECT_THAT(
      std::string(MainNetwork::Make(*conv, {{8}, 2}, 2).status().message()),
      HasSubstr("model_config.main_network: mnist_conv needs images"));
}

TEST(ContinualTest, ChunkedHypernetworkIsTheMlpOfEachTaskAndChunkEmbedding) {
  ContinualConfig config;
  config.set_chunk_size(5);
  config.set_chunk_embedding_dim(3);
  config.add_hnet_hidden_sizes(6);
  config.set_task_embedding_dim(2);
  ASSERT_TRUE(FillDeclaredDefaults(&config).ok());
  torch::nn::Module owner;
  at::manual_seed(4);
  TaskHypernetwork hnet(config, 20, owner);
  at::Tensor e = at::randn({3, 2});
  at::Tensor out = hnet.Generate(e);
  ASSERT_EQ(out.sizes(), (at::IntArrayRef{3, 20}));
  // By hand: for task row r and chunk k, MLP([e_r, c_k]).
  const auto params = owner.named_parameters();
  at::Tensor c = params["hnet_chunk_embeddings"];
  at::Tensor w0 = params["hnet_layer0_weight"], b0 = params["hnet_layer0_bias"];
  at::Tensor w1 = params["hnet_layer1_weight"], b1 = params["hnet_layer1_bias"];
  for (int r = 0; r < 3; ++r) {
    for (int k = 0; k < 4; ++k) {
      at::Tensor input = at::cat({e[r], c[k]});
      at::Tensor chunk =
          at::linear(at::relu(at::linear(input, w0, b0)), w1, b1);
      EXPECT_TRUE(at::allclose(out[r].narrow(0, 5 * k, 5), chunk, 1e-5, 1e-6))
          << r << " " << k;
    }
  }
}

TEST(ContinualTest, TaskSequencesCarryTheirTasks) {
  RunConfig run = Config();
  DataSourceContext context{&run, "three_tasks.json"};
  absl::StatusOr<DataSplits> splits = MakeTaskSequence(context);
  ASSERT_TRUE(splits.ok()) << splits.status();
  EXPECT_EQ(splits->spec.num_classes, 2);
  // Every split's labels are the task's own 0/1; the test set holds all
  // three tasks, in order.
  const at::Tensor& task = splits->test.extras.at(kTaskExtra);
  EXPECT_EQ(task.min().item<int64_t>(), 0);
  EXPECT_EQ(task.max().item<int64_t>(), 2);
  EXPECT_EQ(splits->test.targets.max().item<int64_t>(), 1);
  const Dataset& train = splits->train;
  const int64_t steps = train.generated_size / 32;
  absl::StatusOr<Batch> first = train.generator->Draw(32, 0, 0);
  absl::StatusOr<Batch> last = train.generator->Draw(32, 3 * steps - 1, 0);
  ASSERT_TRUE(first.ok() && last.ok());
  EXPECT_TRUE(
      at::equal(first->extras.at(kTaskExtra), at::zeros({32}, at::kLong)));
  EXPECT_TRUE(
      at::equal(last->extras.at(kTaskExtra), at::full({32}, 2, at::kLong)));
  // The same step draws the same batch (a resumed run's).
  absl::StatusOr<Batch> again = train.generator->Draw(32, 0, 0);
  EXPECT_TRUE(at::equal(first->inputs, again->inputs));
  // Joint: every task from the first step.
  RunConfig joint = Config({"data_config.source_config.schedule=\"joint\"",
                            "model_config.method=\"finetune\""});
  DataSourceContext joint_context{&joint, "joint.json"};
  absl::StatusOr<DataSplits> mixed = MakeTaskSequence(joint_context);
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  absl::StatusOr<Batch> batch = mixed->train.generator->Draw(64, 0, 0);
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(std::get<0>(at::_unique(batch->extras.at(kTaskExtra))).size(0), 3);
  // Permuted: task 1 unpermuted, task 2 the same images in another order.
  RunConfig permuted = Config({"data_config.dataset=\"permuted\"",
                               "data_config.source_config.tasks=3"});
  DataSourceContext permuted_context{&permuted, "permuted.json"};
  absl::StatusOr<DataSplits> p = MakeTaskSequence(permuted_context);
  ASSERT_TRUE(p.ok()) << p.status();
  const int64_t n = p->test.size() / 3;
  at::Tensor one = p->test.inputs.narrow(0, 0, n);
  at::Tensor two = p->test.inputs.narrow(0, n, n);
  EXPECT_FALSE(at::equal(one, two));
  EXPECT_TRUE(at::allclose(std::get<0>(one.sort(1)), std::get<0>(two.sort(1))));
  EXPECT_EQ(p->spec.num_classes, 6);
}

// The method against fine-tuning on the same three tasks: fine-tuning
// forgets the first task, the hypernetwork does not; continual.json holds
// the matrices the run's evaluations made.
TEST(ContinualTest, TheHypernetworkRemembersWhereFineTuningForgets) {
  std::vector<std::string> summary;
  google::protobuf::Value hnet = Train(Config(), "hnet", &summary);
  google::protobuf::Value finetune =
      Train(Config({"model_config.method=\"finetune\""}), "finetune");
  EXPECT_EQ(hnet.struct_value().fields().at("method").string_value(), "hnet");
  EXPECT_GT(Number(hnet, "final_mean_accuracy"), 0.9);
  EXPECT_LT(Number(hnet, "forgetting"), 0.03);
  // Fine-tuning learned task 1, then lost it.
  EXPECT_GT(Cell(finetune, "test_accuracy", 0, 0), 0.9);
  EXPECT_LT(Cell(finetune, "test_accuracy", 2, 0), 0.7);
  EXPECT_GT(Number(finetune, "forgetting"), 0.1);
  // The matrix: a row per finished task, nothing for tasks not yet seen;
  // its last row's mean is the run's final (test) accuracy.
  for (int row = 0; row < 3; ++row) {
    for (int column = 0; column < 3; ++column) {
      EXPECT_EQ(std::isnan(Cell(hnet, "accuracy", row, column)), column > row);
    }
  }
  double last_row = 0;
  for (int t = 0; t < 3; ++t) last_row += Cell(hnet, "test_accuracy", 2, t);
  EXPECT_DOUBLE_EQ(Number(hnet, "final_mean_accuracy"), last_row / 3);
  absl::StatusOr<google::protobuf::Value> metrics =
      ReadJsonFile(Scratch("hnet") + "/metrics.json");
  ASSERT_TRUE(metrics.ok());
  EXPECT_NEAR(metrics->struct_value()
                  .fields()
                  .at("test")
                  .struct_value()
                  .fields()
                  .at("accuracy")
                  .number_value(),
              Number(hnet, "final_mean_accuracy"), 1e-12);
  // Split tasks' labels are disjoint: the task inferred by entropy must be
  // right for the class to count; fine-tuning's one head cannot tell them.
  // (Chance: 1/6.)
  EXPECT_GT(Number(hnet, "cl3_accuracy"), 0.3);
  // The summary says continual.json's headline.
  EXPECT_THAT(
      summary,
      testing::ElementsAre(
          absl::StrFormat("continual (hnet): mean test accuracy over the 3 "
                          "tasks at the end %.2f%%; right after learning each "
                          "%.2f%%, forgetting %.2f points",
                          100 * Number(hnet, "final_mean_accuracy"),
                          100 * Number(hnet, "mean_accuracy_after_learning"),
                          100 * Number(hnet, "forgetting")),
          absl::StrFormat("task inferred (CL3): %.2f%% test accuracy",
                          100 * Number(hnet, "cl3_accuracy"))));
}

TEST(ContinualTest, EwcAndTheChunkedHypernetworkResumeExactly) {
  int run = 0;
  for (const std::vector<std::string>& set :
       {std::vector<std::string>{"model_config.chunk_size=2",
                                 "model_config.regularized_tasks_per_step=1"},
        std::vector<std::string>{"model_config.method=\"ewc\"",
                                 "model_config.fisher_samples=20",
                                 "model_config.heads=\"per_task\""}}) {
    RunConfig config = Config(set);
    config.set_pipeline(kDefaultPipeline);
    // A stop inside the second task: the first task's targets (or Fisher)
    // and the matrix so far come from the checkpoint.
    const int64_t steps_per_task = 4 * ((240 + 31) / 32);
    absl::Status exact = CheckResumeIsExact(
        config, Registry(), Scratch(absl::StrCat("resume", run++)),
        steps_per_task + 3);
    EXPECT_TRUE(exact.ok()) << exact;
  }
}

TEST(ContinualTest, ConfigErrorsNameTheField) {
  const auto error = [](const std::vector<std::string>& set) {
    RunConfig config = Config(set);
    absl::Status status = Registry().CheckConfig(config);
    return std::string(status.message());
  };
  EXPECT_EQ(error({"model_config.beta=-1"}),
            "model_config.beta: must be a finite number >= 0 (got -1)");
  // 8 -> 16 -> 2: 178 weights.
  EXPECT_EQ(error({"model_config.chunk_size=10"}),
            "model_config.chunk_size: must divide the main network's 178 "
            "weights, so that every chunk is whole (got 10; divisors near it: "
            "1, 2, 89, 178)");
  EXPECT_EQ(error({"data_config.source_config.tasks=4"}),
            "data_config.source_config.tasks: 4 tasks of 2 classes need 8 "
            "classes; 'synthetic' has 6");
  EXPECT_EQ(error({"run_config.epochs=2"}),
            "run_config.epochs: a continual run trains one task per epoch: "
            "set it to the task count, 3 (got 2)");
  EXPECT_EQ(error({"data_config.source_config.schedule=\"joint\""}),
            "model_config.method: a joint (multitask) run trains the main "
            "network itself: method finetune with "
            "data_config.source_config.schedule joint");
  EXPECT_EQ(error({"data_config.dataset=\"synthetic\""}),
            "data_config.dataset: model continual learns a task sequence: "
            "set \"permuted\" or \"split\" (got 'synthetic')");
}

}  // namespace
}  // namespace ouroboros::hypernetwork
