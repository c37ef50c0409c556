// End-to-end: runs the real main binary with the plugins built beside it.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ouroboros/base/json.h"
#include "ouroboros/config/config.h"
#include "ouroboros/runs/run_metrics.h"
#include "ouroboros/runs/run_records.h"
#include "ouroboros/train/trainer.h"
#include "tests/test_util.h"

namespace ouroboros {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

using Result = testing::BuiltFilesTest::ProcessResult;
using testing::ReadFile;

class MainTest : public testing::BuiltFilesTest {
 protected:
  void SetUp() override {
    BuiltFilesTest::SetUp();
    main_ = Built("ouroboros/main");
    tiny_ = Built("tests/testdata/tiny_mlp.json");
    tmp_ = scratch();
  }

  Result Run(const std::vector<std::string>& args,
             const std::string& env = "") {
    return RunProgram(main_, args, env);
  }

  std::string main_;
  std::string tiny_;  // a small synthetic run: 24 steps in 2 epochs
  fs::path tmp_;
};

TEST_F(MainTest, TrainsAndWritesACompleteRunDirectory) {
  Result r =
      Run({"--config=" + tiny_, "--run_dir=run", "--threads=1", "--seed=6"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("epoch 1/2: step 12"));
  EXPECT_THAT(r.output, HasSubstr("finished: 2 epochs, 24 steps"));
  // The one-screen summary at the end.
  EXPECT_THAT(r.output, ::testing::ContainsRegex(
                            "summary   .*: model mlp, optimizer .*, data "
                            "synthetic, seed 6"));
  EXPECT_THAT(r.output, HasSubstr("  trained 2 epochs, 24 steps in "));
  EXPECT_THAT(r.output, HasSubstr("  test    accuracy "));
  EXPECT_THAT(r.output, HasSubstr("metrics.json, log.txt, epochs.jsonl"));
  const fs::path run = tmp_ / "run";
  std::string log = ReadFile(run / "log.txt");
  EXPECT_THAT(log, HasSubstr("epoch 2/2: step 24"));
  EXPECT_THAT(log, HasSubstr("test: accuracy"));
  absl::StatusOr<RunConfig> saved =
      LoadRunConfigFile((run / "config.json").string());
  ASSERT_TRUE(saved.ok()) << saved.status();
  EXPECT_EQ(saved->seed(), 6u);
  EXPECT_EQ(saved->model(), "mlp");
  EXPECT_TRUE(
      LoadRunConfigFile((run / "checkpoints/config.json").string()).ok());
  for (const char* file :
       {"checkpoints/step-000000007.ckpt", "checkpoints/step-000000014.ckpt",
        "checkpoints/step-000000021.ckpt", "checkpoints/step-000000024.ckpt",
        "checkpoints/step-000000024.weights.pt", "checkpoints/best.ckpt",
        "checkpoints/best.weights.pt", "metrics.json"}) {
    EXPECT_TRUE(fs::exists(run / file)) << file;
  }
  int event_files = 0;
  std::string events;
  for (const auto& entry : fs::directory_iterator(run / "tensorboard")) {
    if (entry.path().filename().string().rfind("events.out.tfevents.", 0) ==
        0) {
      ++event_files;
      events = ReadFile(entry.path());
    }
  }
  EXPECT_EQ(event_files, 1);
  // TensorBoard's HParams records: the settings and a finished session
  // (decoded field by field in event_writer_test).
  for (const char* part :
       {"_hparams_/experiment", "_hparams_/session_start_info",
        "_hparams_/session_end_info", "optim_config.lr", "val/accuracy"}) {
    EXPECT_THAT(events, HasSubstr(part)) << part;
  }
  std::string metrics = ReadFile(run / "metrics.json");
  EXPECT_THAT(metrics, HasSubstr("\"steps\": 24"));
  EXPECT_THAT(metrics, HasSubstr("\"auroc\""));
}

TEST_F(MainTest, SavedConfigRepeatsTheRunExactly) {
  Result a = Run({"--config=" + tiny_, "--run_dir=a", "--threads=1"});
  ASSERT_EQ(a.exit_code, 0) << a.output;
  Result b = Run({"--config=a/config.json", "--run_dir=b", "--threads=1"});
  ASSERT_EQ(b.exit_code, 0) << b.output;
  std::string metrics_a = ReadFile(tmp_ / "a/metrics.json");
  std::string metrics_b = ReadFile(tmp_ / "b/metrics.json");
  EXPECT_EQ(metrics_a.substr(0, metrics_a.find("final_checkpoint")),
            metrics_b.substr(0, metrics_b.find("final_checkpoint")));
  EXPECT_EQ(ReadFile(tmp_ / "a/checkpoints/step-000000024.weights.pt"),
            ReadFile(tmp_ / "b/checkpoints/step-000000024.weights.pt"));
}

// Keeping freed memory (the default) changes where tensors live, not what
// is computed; the user's MALLOC_* variables win, setting by setting.
TEST_F(MainTest, FreedMemoryIsKeptByDefaultWithTheSameResults) {
  Result kept = Run({"--config=" + tiny_, "--run_dir=kept", "--threads=1"});
  ASSERT_EQ(kept.exit_code, 0) << kept.output;
  Result glibc = Run({"--config=" + tiny_, "--run_dir=glibc", "--threads=1",
                      "--keep_freed_memory=false"});
  ASSERT_EQ(glibc.exit_code, 0) << glibc.output;
  Result env = Run({"--config=" + tiny_, "--run_dir=env", "--threads=1"},
                   "MALLOC_TOP_PAD_=1048576");
  ASSERT_EQ(env.exit_code, 0) << env.output;
  EXPECT_THAT(ReadFile(tmp_ / "kept/log.txt"),
              HasSubstr("malloc: freed memory kept for reuse "
                        "(MALLOC_MMAP_THRESHOLD_=32 MiB, MALLOC_MMAP_MAX_=0, "
                        "MALLOC_TRIM_THRESHOLD_=1024 MiB, "
                        "MALLOC_TOP_PAD_=256 MiB)"));
  EXPECT_THAT(
      ReadFile(tmp_ / "glibc/log.txt"),
      HasSubstr("malloc: glibc's defaults (--keep_freed_memory=false)"));
  EXPECT_THAT(ReadFile(tmp_ / "env/log.txt"),
              HasSubstr("MALLOC_TRIM_THRESHOLD_=1024 MiB, MALLOC_TOP_PAD_ "
                        "from the environment)"));
  const std::string weights = "checkpoints/step-000000024.weights.pt";
  EXPECT_EQ(ReadFile(tmp_ / "kept" / weights),
            ReadFile(tmp_ / "glibc" / weights));
  EXPECT_EQ(ReadFile(tmp_ / "kept" / weights),
            ReadFile(tmp_ / "env" / weights));
}

// A family with its own training module and data source (the quine: its
// coordinates, regeneration with an optimizer reset) runs under the plain
// train pipeline, so with --nproc too, as a plain model does.
TEST_F(MainTest, AFamilyComposesWithTrainAndNproc) {
  const std::vector<std::string> small = {
      "--model=quine", "--threads=1",
      "--set=model_config.coordinate_embedding=8",
      "--set=model_config.hidden_sizes=[8,8]", "--set=run_config.epochs=2",
      "--set=run_config.batch_size=8",
      // So small a quine collapses to the zero quine within 2 epochs.
      "--set=model_config.allow_zero_quine=true"};
  std::vector<std::string> alone = small;
  alone.push_back("--run_dir=alone");
  Result one = Run(alone);
  ASSERT_EQ(one.exit_code, 0) << one.output;
  EXPECT_THAT(one.output, HasSubstr("pipeline=train"));
  EXPECT_THAT(one.output, HasSubstr("data: quine_coordinates, 136 train"));
  // The quine has no classes, and the summary does not count them.
  EXPECT_THAT(one.output, Not(HasSubstr(" 0 classes")));
  // Its metrics are the same on both splits: one line, not two; then its
  // own results and what its losses sum.
  EXPECT_THAT(one.output, HasSubstr("  val and test  "));
  EXPECT_THAT(one.output, Not(HasSubstr("  test    ")));
  EXPECT_THAT(one.output,
              HasSubstr("  result  self-replication after the last epoch: "));
  EXPECT_THAT(one.output,
              HasSubstr("  result  scale: the train loss sums L_SR over one "
                        "step's coordinates"));
  std::vector<std::string> ranks = small;
  ranks.push_back("--run_dir=ranks");
  ranks.push_back("--nproc=2");
  Result two = Run(ranks);
  ASSERT_EQ(two.exit_code, 0) << two.output;
  absl::StatusOr<google::protobuf::Value> metrics =
      ReadJsonFile((tmp_ / "ranks/metrics.json").string());
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  const auto& test = metrics->struct_value().fields().at("test");
  EXPECT_TRUE(test.struct_value().fields().count("sr_loss"));
  // 136 coordinates, global batch 16: 8 steps an epoch.
  EXPECT_EQ(metrics->struct_value().fields().at("steps").number_value(), 16);
}

TEST_F(MainTest, KilledRunResumesToBitIdenticalWeights) {
  Result whole = Run({"--config=" + tiny_, "--run_dir=whole", "--threads=1"});
  ASSERT_EQ(whole.exit_code, 0) << whole.output;
  // SIGKILL right after step 10, in the middle of the first epoch; the last
  // checkpoint is step 7.
  Result killed = Run({"--config=" + tiny_, "--run_dir=cut", "--threads=1"},
                      KillAtStepEnvironment(10));
  ASSERT_NE(killed.exit_code, 0) << killed.output;
  EXPECT_FALSE(fs::exists(tmp_ / "cut/metrics.json"));
  EXPECT_FALSE(fs::exists(tmp_ / "cut/checkpoints/step-000000014.ckpt"));
  Result resumed = Run({"--resume=cut", "--threads=1"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_THAT(resumed.output, HasSubstr("0 epochs and 7 batches done, step 7"));
  std::string expected =
      ReadFile(tmp_ / "whole/checkpoints/step-000000024.weights.pt");
  ASSERT_FALSE(expected.empty());
  EXPECT_EQ(ReadFile(tmp_ / "cut/checkpoints/step-000000024.weights.pt"),
            expected);
  std::string metrics_whole = ReadFile(tmp_ / "whole/metrics.json");
  std::string metrics_cut = ReadFile(tmp_ / "cut/metrics.json");
  EXPECT_EQ(metrics_whole.substr(0, metrics_whole.find("final_checkpoint")),
            metrics_cut.substr(0, metrics_cut.find("final_checkpoint")));
  EXPECT_THAT(ReadFile(tmp_ / "cut/log.txt"),
              HasSubstr("resuming in run directory"));
}

TEST_F(MainTest, CorruptCheckpointIsRefusedByName) {
  Result first = Run({"--config=" + tiny_, "--run_dir=run", "--threads=1",
                      "--set=run_config.epochs=1"});
  ASSERT_EQ(first.exit_code, 0) << first.output;
  fs::path ckpt = tmp_ / "run/checkpoints/step-000000012.ckpt";
  std::string bytes = ReadFile(ckpt);
  ASSERT_GT(bytes.size(), 100u);
  bytes[bytes.size() - 50] ^= 1;
  std::ofstream(ckpt, std::ios::binary) << bytes;
  // (A longer run: the finished one has nothing to load.)
  Result r = Run({"--resume=run", "--threads=1", "--set=run_config.epochs=2"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("step-000000012.ckpt: checkpoint is "
                                  "corrupted (checksum mismatch)"));
  Result none = Run({"--resume=nowhere"});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_THAT(none.output, HasSubstr("error: --resume: "));
}

TEST_F(MainTest, ListsThePluginsWithTheirFiles) {
  Result r = Run({"--list_plugins"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.stdout_only, HasSubstr("model        mlp"));
  EXPECT_THAT(r.stdout_only, HasSubstr("plugins/mlp/libouroboros_mlp.so"));
  for (const char* name :
       {"sgd", "adam", "adamw", "adamax", "adagrad", "rmsprop"}) {
    EXPECT_THAT(r.stdout_only, HasSubstr(absl::StrCat("optimizer    ", name)));
  }
  EXPECT_THAT(r.stdout_only, HasSubstr("pipeline     train"));
  EXPECT_THAT(r.stdout_only,
              ::testing::ContainsRegex("data source  synthetic +.*built in"));
  EXPECT_THAT(r.stdout_only,
              ::testing::ContainsRegex("data source  quine_coordinates .*"
                                       "libouroboros_quine.so"));
  EXPECT_THAT(r.stdout_only, Not(HasSubstr("Not loaded")));
}

TEST_F(MainTest, MainHasNoPluginCodeLinkedIn) {
  fs::create_directories(tmp_ / "empty");
  Result r = Run({"--list_plugins", "--plugin_dir=empty"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // Only the data sources the core reads itself.
  EXPECT_THAT(r.stdout_only, HasSubstr("data source  synthetic"));
  for (const char* kind : {"model ", "optimizer ", "pipeline ", "hook "}) {
    EXPECT_THAT(r.stdout_only, Not(HasSubstr(kind)));
  }
}

TEST_F(MainTest, PluginPathAddsPluginsAndBrokenOnesDoNotStopTheOthers) {
  fs::create_directories(tmp_ / "extra");
  fs::copy_file(Built("tests/testdata/libgood_plugin.so"),
                tmp_ / "extra/libgood_plugin.so");
  fs::copy_file(Built("tests/testdata/libbad_abi_plugin.so"),
                tmp_ / "extra/libbad_abi_plugin.so");
  std::string env = "OUROBOROS_PLUGIN_PATH=" + (tmp_ / "extra").string();
  Result r = Run({"--list_plugins"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.stdout_only, HasSubstr("test_model"));
  EXPECT_THAT(r.stdout_only, HasSubstr("model        mlp"));
  EXPECT_THAT(r.stdout_only, HasSubstr("Not loaded:"));
  EXPECT_THAT(r.stdout_only,
              HasSubstr("libbad_abi_plugin.so: plugin ABI version 999"));

  Result run = Run({"--config=" + tiny_, "--run_dir=run", "--threads=1",
                    "--set=run_config.epochs=1"},
                   env);
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("plugin ABI version 999"));
}

TEST_F(MainTest, HooksRunAtTheTrainersBoundariesAndAreValidated) {
  fs::create_directories(tmp_ / "hooks");
  fs::copy_file(Built("tests/testdata/libstep_log_hook.so"),
                tmp_ / "hooks/libstep_log_hook.so");
  const std::string env = "OUROBOROS_PLUGIN_PATH=" + (tmp_ / "hooks").string();
  Result r =
      Run({"--config=" + tiny_, "--run_dir=run", "--threads=1",
           R"(--set=hooks=[{"name": "step_log", "config": {"every": 5}}])"},
          env);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // tiny_mlp.json: 12 steps an epoch, 2 epochs; the hook sees each
  // epoch's evaluation (on val, monitored: the first one is the best).
  const std::string log = ReadFile(tmp_ / "run/hook_log.txt");
  EXPECT_THAT(log, ::testing::StartsWith(
                       "begin step=0\nstep 5\nstep 10\nepoch 1\n"
                       "evaluation 1 val of 4 metrics, new best\nstep 15\n"
                       "step 20\nepoch 2\nevaluation 2 val of 4 metrics"));
  EXPECT_THAT(log, ::testing::EndsWith("\nend step=24\n"));
  EXPECT_THAT(r.output, HasSubstr("sum_sq"));

  Result unknown = Run(
      {"--config=" + tiny_, "--run_dir=u", R"(--set=hooks=[{"name": "nope"}])"},
      env);
  EXPECT_EQ(unknown.exit_code, 2) << unknown.output;
  EXPECT_THAT(unknown.output,
              HasSubstr("hooks[0].name: unknown hook 'nope'; known hooks: "));
  EXPECT_THAT(unknown.output,
              ::testing::ContainsRegex("known hooks: .*step_log"));
  Result bad =
      Run({"--config=" + tiny_, "--run_dir=b",
           R"(--set=hooks=[{"name": "step_log", "config": {"every": 0}}])"},
          env);
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_THAT(bad.output, HasSubstr("hooks[0].config.every: must be an "
                                    "integer >= 1 (got 0)"));
  EXPECT_FALSE(fs::exists(tmp_ / "u"));
  EXPECT_FALSE(fs::exists(tmp_ / "b"));
}

TEST_F(MainTest, AHookEndsTheRunThroughRunActions) {
  fs::create_directories(tmp_ / "hooks");
  fs::copy_file(Built("tests/testdata/libstep_log_hook.so"),
                tmp_ / "hooks/libstep_log_hook.so");
  const std::string env = "OUROBOROS_PLUGIN_PATH=" + (tmp_ / "hooks").string();
  Result r = Run(
      {"--config=" + tiny_, "--run_dir=run", "--threads=1",
       R"(--set=hooks=[{"name": "step_log", "config": {"stop_at_step": 7}}])"},
      env);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("step_log: asked to stop at step 7"));
  // Step 7 of 12 in epoch 1: the epoch ends there without its evaluation,
  // then the run ends as any run does, with its checkpoint and test set.
  EXPECT_THAT(ReadFile(tmp_ / "run/hook_log.txt"),
              ::testing::EndsWith("step 6\nstep 7\nend step=7\n"));
  absl::StatusOr<RunMetrics> metrics = ReadRunMetrics((tmp_ / "run").string());
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_EQ(metrics->steps, 7);
  EXPECT_EQ(metrics->epochs, 0);
  EXPECT_FALSE(metrics->test.empty());
  EXPECT_TRUE(fs::exists(tmp_ / "run/checkpoints/step-000000007.ckpt"));
}

TEST_F(MainTest, EvalEveryStepsAppendsValidationAndTestMetrics) {
  Result r = Run({"--config=" + tiny_, "--run_dir=run", "--threads=1",
                  "--set=run_config.eval_every_steps=5"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // 24 steps (12 an epoch): evaluations after steps 5, 10, 15 and 20.
  std::vector<StepEvalRecord> records =
      ReadStepEvalRecords((tmp_ / "run").string());
  ASSERT_EQ(records.size(), 4u) << ReadFile(tmp_ / "run/evals.jsonl");
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(records[i].step, 5 * (i + 1));
    EXPECT_EQ(records[i].epoch, records[i].step > 12 ? 2 : 1);
    // The training's clock, growing from one evaluation to the next.
    EXPECT_GE(records[i].train_seconds, 0.0);
    if (i > 0) {
      EXPECT_GT(records[i].train_seconds, records[i - 1].train_seconds);
    }
    for (const auto* metrics : {&records[i].val, &records[i].test}) {
      ASSERT_EQ(metrics->count("accuracy"), 1u);
      EXPECT_GE(metrics->at("accuracy"), 0.0);
      EXPECT_LE(metrics->at("accuracy"), 1.0);
      EXPECT_EQ(metrics->count("f1"), 1u);
    }
  }
  // Without the field nothing is evaluated between epochs.
  Result plain = Run({"--config=" + tiny_, "--run_dir=plain", "--threads=1"});
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  EXPECT_FALSE(fs::exists(tmp_ / "plain/evals.jsonl"));
  Result bad = Run({"--config=" + tiny_, "--run_dir=bad",
                    "--set=run_config.eval_every_steps=-1"});
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_THAT(bad.output, HasSubstr("run_config.eval_every_steps: must be >= "
                                    "0, 0 meaning never (got -1)"));
}

TEST_F(MainTest, ResumedRunsEvaluationsKeepTheLastRecordOfEachStep) {
  // Killed after step 10, checkpoint at step 7: the resumed run evaluates
  // step 10 again (and appends it a second time).
  Result killed = Run({"--config=" + tiny_, "--run_dir=cut", "--threads=1",
                       "--set=run_config.eval_every_steps=5"},
                      KillAtStepEnvironment(10));
  ASSERT_NE(killed.exit_code, 0) << killed.output;
  // Make the first record of step 10 recognisably stale.
  std::string evals = ReadFile(tmp_ / "cut/evals.jsonl");
  ASSERT_THAT(evals, HasSubstr("\"step\": 10,"));
  {
    std::ofstream out(tmp_ / "cut/evals.jsonl", std::ios::app);
    out << R"({"step":10,"epoch":0,"test":{"accuracy":-1}})"
        << "\n";
    out << R"({"step":3,"epoch":0,"test":{"accuracy":-3}})"
        << "\n";
  }
  Result resumed = Run({"--resume=cut", "--threads=1"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  std::vector<StepEvalRecord> records =
      ReadStepEvalRecords((tmp_ / "cut").string());
  // One per step, sorted; step 10 is the resumed run's, not the stale one.
  ASSERT_EQ(records.size(), 5u) << ReadFile(tmp_ / "cut/evals.jsonl");
  const int64_t steps[] = {3, 5, 10, 15, 20};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(records[i].step, steps[i]);
  EXPECT_GE(records[2].test.at("accuracy"), 0.0);
  EXPECT_EQ(records[0].test.at("accuracy"), -3);
  // A record without the training's clock reads NaN.
  EXPECT_TRUE(std::isnan(records[0].train_seconds));
  EXPECT_GE(records[2].train_seconds, 0.0);
}

TEST_F(MainTest, UnknownModelExitsTwoWithTheKnownNames) {
  Result r = Run({"--model=srwm_typo"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("error: --model=srwm_typo: unknown model "
                                  "'srwm_typo'; known models: "));
  EXPECT_THAT(r.output, ::testing::ContainsRegex("known models: .*mlp"));
  EXPECT_FALSE(fs::exists(tmp_ / "saves"));
}

TEST_F(MainTest, UnknownOptimizerFromTheFlagNamesTheFlag) {
  Result r = Run({"--model=mlp", "--optimizer=adamm"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output,
              HasSubstr("error: --optimizer=adamm: unknown optimizer 'adamm'; "
                        "known optimizers: adagrad, adam, adamax, adamw, "
                        "rmsprop, sgd"));
}

TEST_F(MainTest, BadConfigFileExitsTwoNamingFileAndFieldAndWritesNothing) {
  std::ofstream(tmp_ / "bad.json")
      << R"({"model": "mlp", "optim_config": {"name": "adam", "lr": -0.5}})";
  Result r = Run({"--config=bad.json"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("error: bad.json: "));
  EXPECT_FALSE(fs::exists(tmp_ / "saves"));
}

TEST_F(MainTest, BadPluginSectionIsCaughtBeforeTheRunStarts) {
  Result r = Run({"--model=mlp", "--set=model_config.layer_sizes=[8,0]"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output,
              HasSubstr("error: --set=model_config.layer_sizes=[8,0]: "
                        "model_config.layer_sizes[1]: must be >= 1 (got 0)"));
  EXPECT_FALSE(fs::exists(tmp_ / "saves"));
}

TEST_F(MainTest, BadFlagsExitTwo) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{
           {"--no_such_flag"}, {"--threads=many"}, {"--model=mlp", "stray"}}) {
    Result r = Run(args);
    EXPECT_EQ(r.exit_code, 2) << absl::StrJoin(args, " ") << "\n" << r.output;
    EXPECT_THAT(r.output, HasSubstr("error: "));
  }
}

TEST_F(MainTest, HelpExitsZeroAndExplains) {
  Result r = Run({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.stdout_only, HasSubstr("--model"));
  EXPECT_THAT(r.stdout_only, HasSubstr("--set"));
  EXPECT_THAT(r.stdout_only, HasSubstr("Examples:"));
}

TEST_F(MainTest, PrintConfigShowsTheResolvedConfig) {
  Result r = Run({"--model=mlp", "--print_config", "--seed=11",
                  "--optimizer=sgd", "--set=optim_config.lr=0.25"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  absl::StatusOr<RunConfig> printed = ParseRunConfig(r.stdout_only, "stdout");
  ASSERT_TRUE(printed.ok()) << printed.status() << r.stdout_only;
  EXPECT_EQ(printed->seed(), 11u);
  EXPECT_EQ(printed->optim_config().name(), "sgd");
  EXPECT_DOUBLE_EQ(printed->optim_config().lr(), 0.25);
  // Every field of every section with its value in force, the plugins'
  // sections included (mlp's dropout, sgd's momentum).
  for (const char* shown :
       {"\"dropout\": 0", "\"activation\": \"relu\"", "\"momentum\": 0",
        "\"nesterov\": false", "\"test_fraction\": 0.2", "\"data_subset\": 1",
        "\"mode\": \"max\""}) {
    EXPECT_THAT(r.stdout_only, HasSubstr(shown));
  }
}

TEST_F(MainTest, DivergingRunFailsWithExitOneAndKeepsTheLog) {
  Result r = Run({"--config=" + tiny_, "--run_dir=run", "--threads=1",
                  "--optimizer=sgd", "--set=optim_config.lr=1e30"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("error: loss became"));
  EXPECT_THAT(r.output, HasSubstr("The last good checkpoint: "));
  // Dated like every other line of log.txt.
  EXPECT_THAT(ReadFile(tmp_ / "run/log.txt"),
              ::testing::ContainsRegex(
                  "[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}  error: loss "
                  "became"));
}

TEST_F(MainTest, ResumeAutoStartsContinuesAndRefusesAnotherConfig) {
  Result whole = Run({"--config=" + tiny_, "--run_dir=whole", "--threads=1"});
  ASSERT_EQ(whole.exit_code, 0) << whole.output;
  const std::vector<std::string> restartable = {
      "--config=" + tiny_, "--run_dir=auto", "--resume=auto", "--threads=1"};
  // No checkpoint yet: it starts (and here dies after step 10).
  Result first = Run(restartable, KillAtStepEnvironment(10));
  ASSERT_NE(first.exit_code, 0) << first.output;
  EXPECT_THAT(first.output, HasSubstr("run directory: "));
  // The same command again continues from the step-7 checkpoint.
  Result again = Run(restartable);
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_THAT(again.output, HasSubstr("0 epochs and 7 batches done, step 7"));
  EXPECT_EQ(ReadFile(tmp_ / "auto/checkpoints/step-000000024.weights.pt"),
            ReadFile(tmp_ / "whole/checkpoints/step-000000024.weights.pt"));
  // Finished: says so and changes nothing.
  const std::string metrics = ReadFile(tmp_ / "auto/metrics.json");
  const std::string log = ReadFile(tmp_ / "auto/log.txt");
  Result done = Run(restartable);
  EXPECT_EQ(done.exit_code, 0) << done.output;
  EXPECT_THAT(done.output,
              HasSubstr("the run is finished (2 epochs, 24 steps"));
  EXPECT_EQ(ReadFile(tmp_ / "auto/metrics.json"), metrics);
  EXPECT_EQ(ReadFile(tmp_ / "auto/log.txt"), log);
  // Another config in the same directory is refused, naming the field.
  std::vector<std::string> other = restartable;
  other.push_back("--set=optim_config.lr=0.02");
  Result refused = Run(other);
  EXPECT_EQ(refused.exit_code, 2) << refused.output;
  EXPECT_THAT(refused.output, HasSubstr("is another config than this"));
  EXPECT_THAT(refused.output, HasSubstr("\"lr\": 0.02"));
  Result no_dir = Run({"--config=" + tiny_, "--resume=auto"});
  EXPECT_EQ(no_dir.exit_code, 2) << no_dir.output;
  EXPECT_THAT(no_dir.output, HasSubstr("--resume=auto needs --run_dir"));
  // An attempt killed before it wrote config.json left its lock and the
  // start of its log: the directory is restarted. Anything else there is
  // refused.
  fs::create_directories(tmp_ / "early");
  std::ofstream(tmp_ / "early/.lock") << "4242\n";
  std::ofstream(tmp_ / "early/log.txt") << "run directory: early\n";
  Result early = Run(
      {"--config=" + tiny_, "--run_dir=early", "--resume=auto", "--threads=1"});
  EXPECT_EQ(early.exit_code, 0) << early.output;
  EXPECT_EQ(ReadFile(tmp_ / "early/checkpoints/step-000000024.weights.pt"),
            ReadFile(tmp_ / "whole/checkpoints/step-000000024.weights.pt"));
  fs::create_directories(tmp_ / "foreign");
  std::ofstream(tmp_ / "foreign/notes.txt") << "mine\n";
  Result foreign = Run({"--config=" + tiny_, "--run_dir=foreign",
                        "--resume=auto", "--threads=1"});
  EXPECT_EQ(foreign.exit_code, 2) << foreign.output;
  EXPECT_THAT(foreign.output, HasSubstr("not empty and not a run directory"));
}

TEST_F(MainTest, RunDirectoryHasOneWriterAndADeadOneBlocksNothing) {
  Result first = Run({"--config=" + tiny_, "--run_dir=busy", "--threads=1"});
  ASSERT_EQ(first.exit_code, 0) << first.output;
  // The finished run's process is gone: its lock went with it.
  ASSERT_TRUE(fs::exists(tmp_ / "busy/.lock"));
  // Another live process (this test) holds the directory.
  const int fd = open((tmp_ / "busy/.lock").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(flock(fd, LOCK_EX | LOCK_NB), 0);
  const std::string pid = std::to_string(getpid());
  ASSERT_EQ(ftruncate(fd, 0), 0);
  ASSERT_EQ(pwrite(fd, pid.data(), pid.size(), 0),
            static_cast<ssize_t>(pid.size()));
  const std::string metrics = ReadFile(tmp_ / "busy/metrics.json");
  Result blocked =
      Run({"--resume=busy", "--set=run_config.epochs=3", "--threads=1"});
  EXPECT_EQ(blocked.exit_code, 2) << blocked.output;
  EXPECT_THAT(blocked.output, HasSubstr("in use by process " + pid));
  EXPECT_EQ(ReadFile(tmp_ / "busy/metrics.json"), metrics);
  close(fd);
  Result extended =
      Run({"--resume=busy", "--set=run_config.epochs=3", "--threads=1"});
  EXPECT_EQ(extended.exit_code, 0) << extended.output;
  EXPECT_THAT(extended.output, HasSubstr("epoch 3/3"));
}

TEST_F(MainTest, ListWithoutBracketsGetsTheListSyntax) {
  Result r = Run({"--model=mlp", "--set=model_config.layer_sizes=128,64",
                  "--print_config"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("a list is written [128,64]"));
}

TEST_F(MainTest, SavedConfigWritesTheSeedAsANumber) {
  Result r = Run({"--config=" + tiny_, "--seed=7", "--print_config"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.stdout_only, HasSubstr("\"seed\": 7"));
}

TEST_F(MainTest, HelpfullAndVersionExitZero) {
  Result full = Run({"--helpfull"});
  EXPECT_EQ(full.exit_code, 0) << full.output;
  EXPECT_THAT(full.output, HasSubstr("--threads"));
  EXPECT_THAT(full.output, HasSubstr("OUROBOROS_DIST_TIMEOUT"));
  EXPECT_THAT(full.output, HasSubstr("OUROBOROS_PLUGIN_PATH"));
  EXPECT_THAT(full.output, HasSubstr("OUROBOROS_PYTHON"));
  Result short_help = Run({"--helpshort"});
  EXPECT_EQ(short_help.exit_code, 0) << short_help.output;
  EXPECT_THAT(short_help.output, HasSubstr("--model"));
  Result version = Run({"--version"});
  EXPECT_EQ(version.exit_code, 0) << version.output;
  EXPECT_THAT(version.output, HasSubstr("LibTorch 1.13"));
  // The commit comes from tools/workspace_status (the test's sandbox has no
  // git to compare with): 12 hex digits, or "unknown" outside a checkout.
  EXPECT_THAT(
      version.output,
      ::testing::ContainsRegex("^ouroboros [0-9]+\\.[0-9]+\\.[0-9]+ \\(commit "
                               "([0-9a-f]{12}|unknown), plugin ABI [0-9]+\\)"));
  EXPECT_THAT(version.output, HasSubstr("BLAS: OpenBLAS 0."));
  EXPECT_THAT(version.output, HasSubstr("plugin ABI"));
}

TEST_F(MainTest, FlagfileFlagsAreCheckedLikeTheCommandLines) {
  std::ofstream(tmp_ / "flags.txt") << "# a run's flags\n--config=" << tiny_
                                    << "\n--set=optim_config.lr=0.02\n\n-v=1\n";
  Result good = Run({"--flagfile=flags.txt", "--print_config"});
  ASSERT_EQ(good.exit_code, 0) << good.output;
  EXPECT_THAT(good.stdout_only, HasSubstr("\"lr\": 0.02"));
  std::ofstream(tmp_ / "bad.txt") << "--config=" << tiny_ << "\n--nosuch=1\n";
  Result bad = Run({"--flagfile=bad.txt", "--print_config"});
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_THAT(bad.output, HasSubstr("unknown flag --nosuch (in flagfile "));
  Result missing = Run({"--flagfile=none.txt"});
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
  EXPECT_THAT(missing.output, HasSubstr("--flagfile=none.txt: cannot read"));
  Result glog = Run(
      {"--config=" + tiny_, "--minloglevel=0", "-v", "1", "--print_config"});
  EXPECT_EQ(glog.exit_code, 0) << glog.output;
}

TEST_F(MainTest, EarlyStoppingEndsTheRunAndIsExactAcrossResume) {
  // No improvement of more than 1.0 in accuracy is possible: the run stops
  // after epoch 1 (the best) and 2 more epochs without improvement.
  const std::vector<std::string> early = {
      "--config=" + tiny_, "--threads=1", "--set=run_config.epochs=6",
      "--set=score_config.patience=2", "--set=score_config.min_delta=1.0"};
  std::vector<std::string> whole = early;
  whole.push_back("--run_dir=whole");
  Result r = Run(whole);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("early stopping after epoch 3"));
  absl::StatusOr<google::protobuf::Value> metrics =
      ReadJsonFile((tmp_ / "whole/metrics.json").string());
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  const auto& fields = metrics->struct_value().fields();
  EXPECT_EQ(fields.at("epochs").number_value(), 3);
  EXPECT_TRUE(fields.at("early_stopping")
                  .struct_value()
                  .fields()
                  .at("stopped")
                  .bool_value());
  // Killed in epoch 3 (step 30 of 36), resumed: the same end.
  std::vector<std::string> cut = early;
  cut.push_back("--run_dir=cut");
  Result killed = Run(cut, KillAtStepEnvironment(30));
  ASSERT_NE(killed.exit_code, 0) << killed.output;
  Result resumed = Run({"--resume=cut", "--threads=1"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  const std::string a = ReadFile(tmp_ / "whole/metrics.json");
  const std::string b = ReadFile(tmp_ / "cut/metrics.json");
  EXPECT_EQ(a.substr(0, a.find("final_checkpoint")),
            b.substr(0, b.find("final_checkpoint")));
  // A run that stopped early is finished.
  Result again = Run({"--resume=cut", "--threads=1"});
  EXPECT_EQ(again.exit_code, 0) << again.output;
  EXPECT_THAT(again.output, HasSubstr("the run is finished"));
}

// metrics.json marks a run finished for --resume, so it is the last file a
// run writes: a run that ends before its family's own results (here the
// SRWM's fewshot.json cannot be written) has none, and its resume writes
// them. Before, a kill in the meta-test left a "finished" run without
// fewshot.json (the resume matrix, seed 500659874).
TEST_F(MainTest, AFamilysResultsAreWrittenBeforeTheRunCountsAsFinished) {
  const std::vector<std::string> srwm = {
      "--model=srwm",
      "--run_dir=srwm",
      "--resume=auto",
      "--threads=1",
      "--set=data_config.source_config.images=synthetic",
      "--set=data_config.synthetic.num_samples=100",
      "--set=data_config.synthetic.num_features=256",
      "--set=data_config.synthetic.num_classes=10",
      "--set=data_config.source_config.skip_mnist_digits=true",
      "--set=data_config.source_config.train_episodes_per_epoch=16",
      "--set=data_config.source_config.eval_episodes=8",
      "--set=run_config.epochs=1",
      "--set=run_config.skip_plots=true",
      "--set=model_config.hidden_size=16",
      "--set=model_config.num_heads=2",
      "--set=model_config.num_layers=1",
      "--set=model_config.encoder_channels=4"};
  // A directory where fewshot.json goes: the meta-test cannot write it
  // (config.json: an earlier attempt's run directory, which --resume=auto
  // starts afresh in).
  std::filesystem::create_directories(tmp_ / "srwm/fewshot.json");
  std::ofstream(tmp_ / "srwm/config.json") << "{}";
  Result blocked = Run(srwm);
  ASSERT_NE(blocked.exit_code, 0) << blocked.output;
  EXPECT_THAT(blocked.output, HasSubstr("fewshot.json"));
  EXPECT_FALSE(std::filesystem::exists(tmp_ / "srwm/metrics.json"));
  std::filesystem::remove(tmp_ / "srwm/fewshot.json");
  Result resumed = Run(srwm);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_THAT(resumed.output, HasSubstr("meta-test meta_test: accuracy"));
  EXPECT_TRUE(std::filesystem::is_regular_file(tmp_ / "srwm/fewshot.json"));
  EXPECT_TRUE(std::filesystem::is_regular_file(tmp_ / "srwm/metrics.json"));
  Result done = Run(srwm);
  EXPECT_EQ(done.exit_code, 0) << done.output;
  EXPECT_THAT(done.output, HasSubstr("the run is finished"));
}

}  // namespace
}  // namespace ouroboros
