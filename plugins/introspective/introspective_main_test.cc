// End to end through main: a model plugin with and without the hooks, and
// a tiny demo on synthetic data.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ouroboros/json.h"
#include "plugins/introspective/introspection_net.h"
#include "plugins/introspective/weight_history.h"
#include "tests/test_util.h"

namespace ouroboros::introspective {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using Result = testing::BuiltFilesTest::ProcessResult;
using testing::ReadFile;

// 240 training samples, batch 16: 15 steps an epoch, 30 in all.
constexpr char kTinyRun[] = R"({
  "run_name": "tiny", "model": "mlp", "seed": 5,
  "data_config": {"dataset": "synthetic",
    "synthetic": {"num_samples": 320, "num_features": 8, "num_classes": 3,
                  "noise": 1.5},
    "split": {"val_fraction": 0.25}},
  "optim_config": {"name": "sgd", "lr": 0.1},
  "run_config": {"epochs": 2, "batch_size": 16},
  "model_config": {"layer_sizes": [16]}
})";

class IntrospectiveMainTest : public testing::BuiltFilesTest {
 protected:
  void SetUp() override {
    BuiltFilesTest::SetUp();
    main_ = Built("ouroboros/main");
    std::ofstream(scratch() / "tiny.json") << kTinyRun;
  }
  Result Run(std::vector<std::string> args) {
    args.push_back("--threads=1");
    return RunProgram(main_, args);
  }
  // metrics.json without the checkpoint path (which names the run dir).
  google::protobuf::Value Metrics(const std::string& run) {
    absl::StatusOr<google::protobuf::Value> metrics =
        ReadJsonFile((scratch() / run / "metrics.json").string());
    EXPECT_TRUE(metrics.ok()) << metrics.status();
    google::protobuf::Value value =
        metrics.ok() ? *metrics : google::protobuf::Value();
    value.mutable_struct_value()->mutable_fields()->erase("final_checkpoint");
    return value;
  }
  std::string main_;
};

TEST_F(IntrospectiveMainTest, ModelPluginRunsUnchangedWithAndWithoutTheHooks) {
  Result plain = Run({"--config=tiny.json", "--run_dir=plain"});
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  Result recorded = Run({"--config=tiny.json", "--run_dir=recorded",
                         R"(--set=hooks=[{"name": "introspection_record",
                       "config": {"t_steps": [5, 10], "samples_per_t": 50}}])"});
  ASSERT_EQ(recorded.exit_code, 0) << recorded.output;
  // Recording does not change training: the same metrics to the last bit.
  EXPECT_EQ(FormatJson(Metrics("plain")), FormatJson(Metrics("recorded")));
  absl::StatusOr<HistoryDataset> histories = LoadHistoryDataset(
      (scratch() / "recorded/introspection_histories.pt").string());
  ASSERT_TRUE(histories.ok()) << histories.status();
  EXPECT_GT(histories->size(), 20);
  EXPECT_LE(histories->size(), 100);
  EXPECT_EQ(histories->t.min().item<int64_t>(), 5);
  EXPECT_EQ(histories->t.max().item<int64_t>(), 10);

  // Jumps change the weights of the same plugin, which never knows.
  ASSERT_TRUE(IntrospectionNet(8).Save((scratch() / "i.pt").string()).ok());
  Result jumped = Run({"--config=tiny.json", "--run_dir=jumped",
                       R"(--set=hooks=[{"name": "introspection_jump",
                       "config": {"network": "i.pt", "jump_steps": [6, 20]}}])"});
  ASSERT_EQ(jumped.exit_code, 0) << jumped.output;
  EXPECT_THAT(jumped.output, HasSubstr("introspection_jump at step 20"));
  std::string jumps = ReadFile(scratch() / "jumped/introspection_jumps.jsonl");
  EXPECT_THAT(jumps, HasSubstr("\"step\": 6,"));
  EXPECT_THAT(jumps, HasSubstr("\"step\": 20,"));
  EXPECT_NE(FormatJson(Metrics("plain")), FormatJson(Metrics("jumped")));

  Result missing = Run({"--config=tiny.json", "--run_dir=missing",
                        R"(--set=hooks=[{"name": "introspection_jump",
                       "config": {"network": "no.pt", "jump_steps": [6]}}])"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.output,
              HasSubstr("hooks[0].config.network: no.pt: no such file"));
  EXPECT_FALSE(fs::exists(scratch() / "missing"));
}

constexpr char kTinyDemo[] = R"({
  "run_name": "tiny_demo", "model": "introspective",
  "pipeline": "introspective_demo", "seed": 3,
  "data_config": {"dataset": "synthetic",
    "synthetic": {"num_samples": 320, "num_features": 8, "num_classes": 3,
                  "noise": 1.5},
    "split": {"val_fraction": 0.25}},
  "optim_config": {"name": "adam", "lr": 0.01},
  "run_config": {"epochs": 3, "batch_size": 64},
  "model_config": {"hidden_size": 8},
  "pipeline_config": {
    "record": {"inline_config": {"model": "mlp",
      "optim_config": {"name": "sgd", "lr": 0.1},
      "run_config": {"epochs": 2, "batch_size": 16},
      "model_config": {"layer_sizes": [16]}}},
    "recorder": {"t_steps": [5, 10], "samples_per_t": 200},
    "target": {"inline_config": {"model": "mlp",
      "data_config": {"dataset": "synthetic",
        "synthetic": {"num_samples": 400, "num_features": 6,
                      "num_classes": 4, "noise": 1.0}},
      "optim_config": {"name": "sgd", "lr": 0.1},
      "run_config": {"epochs": 2, "batch_size": 16},
      "model_config": {"layer_sizes": [12, 12]}}},
    "jump_steps": [8], "seeds": [1, 2], "eval_every_steps": 4, "workers": 2
  }
})";

TEST_F(IntrospectiveMainTest, TinyDemoRecordsTrainsJumpsAndReports) {
  std::ofstream(scratch() / "demo.json") << kTinyDemo;
  Result r = Run({"--config=demo.json", "--run_dir=demo"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const fs::path demo = scratch() / "demo";
  EXPECT_THAT(r.output, HasSubstr("[1/3] recording weight histories"));
  EXPECT_THAT(r.output, HasSubstr("[2/3] training the introspection network"));
  EXPECT_THAT(r.output, HasSubstr("[3/3] target runs"));
  EXPECT_THAT(r.output, HasSubstr("| seed | plain final test accuracy"));
  EXPECT_TRUE(
      IntrospectionNet::Load((demo / "introspection_net.pt").string()).ok());
  for (const char* run :
       {"plain-seed1", "jump-seed1", "plain-seed2", "jump-seed2"}) {
    EXPECT_TRUE(fs::exists(demo / "targets" / run / "evals.jsonl")) << run;
  }
  EXPECT_THAT(ReadFile(demo / "targets/jump-seed2/introspection_jumps.jsonl"),
              HasSubstr("\"step\": 8,"));
  EXPECT_FALSE(
      fs::exists(demo / "targets/plain-seed2/introspection_jumps.jsonl"));
  absl::StatusOr<google::protobuf::Value> results =
      ReadJsonFile((demo / "results.json").string());
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_EQ(
      results->struct_value().fields().at("seeds").list_value().values_size(),
      2);
  EXPECT_THAT(ReadFile(demo / "results.md"), HasSubstr("| 2 | "));
}

TEST_F(IntrospectiveMainTest, BadDemoConfigsExitTwoBeforeAnythingRuns) {
  std::string config = kTinyDemo;
  config.replace(config.find("\"jump_steps\": [8]"), 17, "\"jump_steps\": []");
  std::ofstream(scratch() / "bad.json") << config;
  Result r = Run({"--config=bad.json", "--run_dir=bad"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("bad.json: pipeline_config.jump_steps: list "
                                  "at least one step"));
  EXPECT_FALSE(fs::exists(scratch() / "bad"));
  Result train = Run({"--model=introspective", "--pipeline=train"});
  EXPECT_EQ(train.exit_code, 2) << train.output;
  EXPECT_THAT(train.output,
              HasSubstr("model 'introspective' is the introspection network"));
}

}  // namespace
}  // namespace ouroboros::introspective
