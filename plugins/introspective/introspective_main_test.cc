// End to end through main: a model plugin with and without the hooks, and
// a tiny demo on synthetic data.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ouroboros/base/json.h"
#include "ouroboros/runs/run_records.h"
#include "ouroboros/train/trainer.h"
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
  EXPECT_THAT(jumps, HasSubstr("\"step\": 6}"));
  EXPECT_THAT(jumps, HasSubstr("\"step\": 20}"));
  EXPECT_NE(FormatJson(Metrics("plain")), FormatJson(Metrics("jumped")));

  Result missing = Run({"--config=tiny.json", "--run_dir=missing",
                        R"(--set=hooks=[{"name": "introspection_jump",
                       "config": {"network": "no.pt", "jump_steps": [6]}}])"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.output,
              HasSubstr("hooks[0].config.network: no.pt: no such file"));
  EXPECT_FALSE(fs::exists(scratch() / "missing"));
}

// Both hooks in one run with checkpoints every 5 steps: the recorder
// (t = 5, 10: snapshots at 0, 2, 4, 5, 7, 10, 20) and jumps at 6 (history
// 0, 2, 4) and 20 (history 0, 8, 14).
constexpr char kBothHooks[] =
    R"(--set=hooks=[{"name": "introspection_record",
                     "config": {"t_steps": [5, 10], "samples_per_t": 50}},
                    {"name": "introspection_jump",
                     "config": {"network": "i.pt", "jump_steps": [6, 20]}}])";

TEST_F(IntrospectiveMainTest, KilledAndResumedRunRecordsAndJumpsLikeAWholeOne) {
  ASSERT_TRUE(IntrospectionNet(8).Save((scratch() / "i.pt").string()).ok());
  const std::vector<std::string> config = {
      "--config=tiny.json", kBothHooks,
      "--set=run_config.checkpoint_every_steps=5"};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.end(), config.begin(), config.end());
    return args;
  };
  Result whole = Run(with({"--run_dir=whole"}));
  ASSERT_EQ(whole.exit_code, 0) << whole.output;
  // Killed after step 7 (checkpoint 5: jump 6 must be redone from the
  // snapshots of 0, 2, 4 in it), then after step 12 (checkpoint 10: the
  // recorder needs 0..10 from it, the jump at 20 the snapshots of 0, 8).
  Result first = RunProgram(main_, with({"--run_dir=cut", "--threads=1"}),
                            KillAtStepEnvironment(7));
  ASSERT_NE(first.exit_code, 0) << first.output;
  Result second = RunProgram(main_, {"--resume=cut", "--threads=1"},
                             KillAtStepEnvironment(12));
  ASSERT_NE(second.exit_code, 0) << second.output;
  EXPECT_THAT(second.output, HasSubstr("step 5"));
  Result third = Run({"--resume=cut"});
  ASSERT_EQ(third.exit_code, 0) << third.output;
  EXPECT_THAT(third.output, HasSubstr("resumed at step 10 with the snapshots "
                                      "of steps 0, 2, 4, 5, 7, 10"));
  // The same dataset, the same jumps, the same weights, to the last bit.
  EXPECT_EQ(ReadFile(scratch() / "cut/introspection_histories.pt"),
            ReadFile(scratch() / "whole/introspection_histories.pt"));
  std::string weights;  // the last checkpoint's
  for (const auto& entry :
       fs::directory_iterator(scratch() / "whole/checkpoints")) {
    const std::string name = entry.path().filename().string();
    if (absl::EndsWith(name, ".weights.pt")) weights = std::max(weights, name);
  }
  ASSERT_FALSE(weights.empty());
  weights = "checkpoints/" + weights;
  ASSERT_FALSE(ReadFile(scratch() / "whole" / weights).empty());
  EXPECT_EQ(ReadFile(scratch() / "cut" / weights),
            ReadFile(scratch() / "whole" / weights));
  EXPECT_EQ(FormatJson(Metrics("cut")), FormatJson(Metrics("whole")));
  EXPECT_THAT(ReadFile(scratch() / "cut/introspection_jumps.jsonl"),
              HasSubstr("\"step\": 20}"));
  // Nothing of the hooks' own beside the checkpoints.
  EXPECT_FALSE(fs::exists(scratch() / "cut/introspection"));

  // A checkpoint without the hooks' state (a run without them, given their
  // config afterwards): refused by owner, not started afresh.
  Result plain =
      RunProgram(main_,
                 {"--config=tiny.json", "--run_dir=broken", "--threads=1",
                  "--set=run_config.checkpoint_every_steps=5"},
                 KillAtStepEnvironment(7));
  ASSERT_NE(plain.exit_code, 0) << plain.output;
  for (const char* config : {"config.json", "checkpoints/config.json"}) {
    fs::copy_file(scratch() / "cut" / config, scratch() / "broken" / config,
                  fs::copy_options::overwrite_existing);
  }
  Result broken = Run({"--resume=broken"});
  EXPECT_EQ(broken.exit_code, 2) << broken.output;
  EXPECT_THAT(broken.output,
              HasSubstr("step-000000005.ckpt: the checkpoint holds no state "
                        "of hooks[0] introspection_record, which keeps "
                        "state"));
}

TEST_F(IntrospectiveMainTest, BadJumpSetupsExitTwoBeforeTheRunDirectoryExists) {
  std::ofstream(scratch() / "junk.pt") << "not a network";
  Result junk = Run({"--config=tiny.json", "--run_dir=junk",
                     R"(--set=hooks=[{"name": "introspection_jump",
                     "config": {"network": "junk.pt", "jump_steps": [6]}}])"});
  EXPECT_EQ(junk.exit_code, 2) << junk.output;
  EXPECT_THAT(junk.output, HasSubstr("hooks[0].config.network: junk.pt: not "
                                     "an introspection network"));
  EXPECT_FALSE(fs::exists(scratch() / "junk"));
  ASSERT_TRUE(IntrospectionNet(8).Save((scratch() / "i.pt").string()).ok());
  Result adagrad =
      Run({"--config=tiny.json", "--run_dir=adagrad", "--optimizer=adagrad",
           R"(--set=hooks=[{"name": "introspection_jump",
                        "config": {"network": "i.pt", "jump_steps": [6],
                                   "optimizer_state": "reset"}}])"});
  EXPECT_EQ(adagrad.exit_code, 2) << adagrad.output;
  EXPECT_THAT(adagrad.output,
              HasSubstr("hooks[0].config.optimizer_state: reset does not work "
                        "with optimizer adagrad"));
  EXPECT_FALSE(fs::exists(scratch() / "adagrad"));
  Result late = Run({"--config=tiny.json", "--run_dir=late",
                     "--set=run_config.max_steps=15",
                     R"(--set=hooks=[{"name": "introspection_record",
                     "config": {"t_steps": [5, 10]}}])"});
  EXPECT_EQ(late.exit_code, 2) << late.output;
  EXPECT_THAT(late.output,
              HasSubstr("hooks[0].config.t_steps[1]: 2t = 20 is past "
                        "run_config.max_steps 15"));
  EXPECT_FALSE(fs::exists(scratch() / "late"));
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
                      "num_classes": 4, "noise": 1.0},
        "split": {"val_fraction": 0.25}},
      "optim_config": {"name": "sgd", "lr": 0.1},
      "run_config": {"epochs": 2, "batch_size": 16},
      "model_config": {"layer_sizes": [12, 12]}}},
    "jump_steps": [8], "seeds": [1, 2], "eval_every_steps": 4, "workers": 2,
    "predictors": ["network", "linear"]
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
  EXPECT_THAT(r.output, HasSubstr("| seed | predictor | plain: best val "
                                  "accuracy (target)"));
  EXPECT_TRUE(
      IntrospectionNet::Load((demo / "introspection_net.pt").string()).ok());
  for (const char* run : {"plain-seed1", "jump-seed1", "jump_linear-seed1",
                          "plain-seed2", "jump-seed2", "jump_linear-seed2"}) {
    EXPECT_TRUE(fs::exists(demo / "targets" / run / "evals.jsonl")) << run;
  }
  for (const char* run : {"jump-seed2", "jump_linear-seed2"}) {
    EXPECT_THAT(ReadFile(demo / "targets" / run / "introspection_jumps.jsonl"),
                HasSubstr("\"step\": 8}"))
        << run;
  }
  EXPECT_THAT(ReadFile(demo / "targets/jump_linear-seed1.out"),
              HasSubstr("predictor linear"));
  EXPECT_FALSE(
      fs::exists(demo / "targets/plain-seed2/introspection_jumps.jsonl"));
  absl::StatusOr<google::protobuf::Value> results =
      ReadJsonFile((demo / "results.json").string());
  ASSERT_TRUE(results.ok()) << results.status();
  // One entry per seed and predictor, each against its seed's plain run's
  // best validation accuracy (read back from the plain run's evals.jsonl).
  const auto& entries =
      results->struct_value().fields().at("entries").list_value();
  ASSERT_EQ(entries.values_size(), 4);
  for (int i = 0; i < 4; ++i) {
    const auto& e = entries.values(i).struct_value().fields();
    EXPECT_EQ(e.at("seed").number_value(), 1 + i / 2);
    EXPECT_EQ(e.at("predictor").string_value(), i % 2 ? "linear" : "network");
    double best = 0;
    for (const StepEvalRecord& record : ReadStepEvalRecords(
             (demo / "targets" / absl::StrCat("plain-seed", 1 + i / 2))
                 .string())) {
      best = std::max(best, record.val.at("accuracy"));
    }
    EXPECT_EQ(e.at("target_val").number_value(), best);
    for (const char* field :
         {"plain_steps_to_target_val", "steps_to_target_val", "speedup_steps",
          "speedup_wall", "test_at_end", "plain_test_at_end"}) {
      EXPECT_EQ(e.count(field), 1u) << field;
    }
  }
  const auto& predictors =
      results->struct_value().fields().at("predictors").struct_value().fields();
  EXPECT_EQ(predictors.count("network"), 1u);
  EXPECT_EQ(predictors.count("linear"), 1u);
  EXPECT_GT(results->struct_value()
                .fields()
                .at("network_cost_seconds")
                .number_value(),
            0);
  EXPECT_THAT(ReadFile(demo / "results.md"), HasSubstr("| 2 | linear | "));
}

// I learns from the rows of every record run: here the tiny demo's SGD
// run and a second one under Adam.
TEST_F(IntrospectiveMainTest, MoreRecordRunsJoinTheHistories) {
  std::ofstream(scratch() / "more.json") << kTinyDemo;
  Result r = Run(
      {"--config=more.json", "--run_dir=more",
       "--set=pipeline_config.seeds=[1]",
       R"(--set=pipeline_config.more_records=[{"inline_config": {"model": "mlp", "optim_config": {"name": "adam", "lr": 0.01}, "run_config": {"epochs": 2, "batch_size": 16}, "model_config": {"layer_sizes": [16]}}}])"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("recording weight histories (2 of 2): "
                                  "model mlp (adam)"));
  int64_t rows = 0;
  for (const char* record : {"record", "record_2"}) {
    absl::StatusOr<HistoryDataset> part = LoadHistoryDataset(
        (scratch() / "more" / record / "introspection_histories.pt").string());
    ASSERT_TRUE(part.ok()) << record << ": " << part.status();
    EXPECT_GT(part->size(), 0) << record;
    rows += part->size();
  }
  EXPECT_THAT(r.output, HasSubstr(absl::StrCat("on ", rows, " history rows")));
}

// The linear baseline alone needs no record run and no I.
TEST_F(IntrospectiveMainTest, LinearBaselineAloneSkipsTheRecordRun) {
  std::string config = kTinyDemo;
  const std::string both = R"("predictors": ["network", "linear"])";
  config.replace(config.find(both), both.size(), R"("predictors": ["linear"])");
  std::ofstream(scratch() / "linear.json") << config;
  Result r = Run({"--config=linear.json", "--run_dir=linear",
                  "--set=pipeline_config.seeds=[1]"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("[1/3], [2/3] skipped"));
  EXPECT_FALSE(fs::exists(scratch() / "linear/record"));
  EXPECT_FALSE(fs::exists(scratch() / "linear/introspection_net.pt"));
  EXPECT_TRUE(fs::exists(scratch() / "linear/targets/jump_linear-seed1"));
  EXPECT_THAT(ReadFile(scratch() / "linear/results.md"),
              HasSubstr("| 1 | linear | "));
}

TEST_F(IntrospectiveMainTest, BadDemoConfigsExitTwoBeforeAnythingRuns) {
  // The tiny demo with `from` replaced by `to`, run as <name>.json.
  auto run_changed = [&](const std::string& name, const std::string& from,
                         const std::string& to) {
    std::string config = kTinyDemo;
    config.replace(config.find(from), from.size(), to);
    std::ofstream(scratch() / (name + ".json")) << config;
    return Run({"--config=" + name + ".json", "--run_dir=" + name});
  };
  Result r = run_changed("bad", "\"jump_steps\": [8]", "\"jump_steps\": []");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("bad.json: pipeline_config.jump_steps: list "
                                  "at least one step"));
  EXPECT_FALSE(fs::exists(scratch() / "bad"));
  Result repeat =
      run_changed("repeat", "\"seeds\": [1, 2]", "\"seeds\": [1, 1]");
  EXPECT_EQ(repeat.exit_code, 2) << repeat.output;
  EXPECT_THAT(repeat.output, HasSubstr("repeat.json: pipeline_config.seeds[1]: "
                                       "repeats seed 1"));
  EXPECT_FALSE(fs::exists(scratch() / "repeat"));
  // A bad plugin section of the target runs stops the demo before the
  // record run.
  Result target = run_changed("target", "\"layer_sizes\": [12, 12]",
                              "\"layer_sizes\": [12, 0]");
  EXPECT_EQ(target.exit_code, 2) << target.output;
  EXPECT_THAT(target.output, HasSubstr("target.json: pipeline_config.target: "
                                       "model_config.layer_sizes[1]"));
  EXPECT_FALSE(fs::exists(scratch() / "target/record"));
  // The steps to target are decided on validation: a target without a
  // validation split is refused.
  Result no_val = run_changed("no_val",
                              "\"num_classes\": 4, \"noise\": 1.0},\n        "
                              "\"split\": {\"val_fraction\": 0.25}",
                              "\"num_classes\": 4, \"noise\": 1.0}");
  EXPECT_EQ(no_val.exit_code, 2) << no_val.output;
  EXPECT_THAT(no_val.output,
              HasSubstr("no_val.json: pipeline_config.target: "
                        "data_config.split.val_fraction: the steps to the "
                        "plain run's best validation metric need a "
                        "validation split"));
  Result predictor = run_changed("predictor", "[\"network\", \"linear\"]",
                                 "[\"network\", \"cubic\"]");
  EXPECT_EQ(predictor.exit_code, 2) << predictor.output;
  EXPECT_THAT(predictor.output,
              HasSubstr("predictor.json: pipeline_config.predictors[1]: "
                        "unknown predictor 'cubic'"));
  Result train = Run({"--model=introspective", "--pipeline=train"});
  EXPECT_EQ(train.exit_code, 2) << train.output;
  EXPECT_THAT(train.output,
              HasSubstr("model 'introspective' is the introspection network"));
}

}  // namespace
}  // namespace ouroboros::introspective
