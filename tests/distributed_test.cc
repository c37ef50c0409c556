// Distributed data-parallel training end to end: main --nproc=2 starts two
// ranks on 127.0.0.1 (c10d TCPStore + Gloo) that must train to the same
// weights as one process with the doubled batch, and a killed rank must fail
// the job with a clear message instead of hanging.
#include "ouroboros/distributed/distributed.h"

#include <ATen/ATen.h>
#include <torch/serialize.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ouroboros/base/json.h"
#include "tests/test_util.h"

namespace ouroboros {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::ReadFile;

// name -> tensor from a .weights.pt file.
std::map<std::string, at::Tensor> LoadWeights(const fs::path& path) {
  std::string bytes = ReadFile(path);
  std::map<std::string, at::Tensor> weights;
  if (bytes.empty()) return weights;
  c10::IValue value =
      torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end()));
  for (const auto& entry : value.toGenericDict()) {
    weights[entry.key().toStringRef()] = entry.value().toTensor();
  }
  return weights;
}

class DistributedTest : public testing::BuiltFilesTest {
 protected:
  void SetUp() override {
    BuiltFilesTest::SetUp();
    main_ = Built("ouroboros/main");
    tiny_ = Built("tests/testdata/tiny_mlp.json");
  }
  std::string main_;
  std::string tiny_;  // 192 training samples
};

TEST_F(DistributedTest, TwoRanksTrainLikeOneWithTheDoubledBatch) {
  // No dropout: the ranks' random streams differ from the single process's.
  const std::vector<std::string> common = {"--config=" + tiny_, "--threads=1",
                                           "--set=model_config.dropout=0"};
  std::vector<std::string> one = common;
  one.insert(one.end(), {"--run_dir=one", "--set=run_config.batch_size=32"});
  ProcessResult single = RunProgram(main_, one);
  ASSERT_EQ(single.exit_code, 0) << single.output;
  std::vector<std::string> two = common;
  two.insert(two.end(),
             {"--run_dir=two", "--set=run_config.batch_size=16", "--nproc=2"});
  ProcessResult ranks = RunProgram(main_, two);
  ASSERT_EQ(ranks.exit_code, 0) << ranks.output;
  EXPECT_THAT(ranks.output, HasSubstr("distributed: rank 0 of 2"));
  EXPECT_THAT(ranks.output, HasSubstr("epoch 2/2: step 12"));

  // 192 samples / 32 per (global) batch = 6 steps an epoch, 2 epochs.
  auto a = LoadWeights(scratch() / "one/checkpoints/step-000000012.weights.pt");
  auto b = LoadWeights(scratch() / "two/checkpoints/step-000000012.weights.pt");
  ASSERT_FALSE(a.empty());
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, tensor] : a) {
    ASSERT_TRUE(b.count(name)) << name;
    const double difference = (tensor - b.at(name)).abs().max().item<double>();
    EXPECT_LE(difference, 1e-5) << name;
    // Trained: not the initial weights of either.
    EXPECT_GT(tensor.abs().sum().item<double>(), 0) << name;
  }
  // Rank 0 alone wrote the run directory.
  EXPECT_TRUE(fs::exists(scratch() / "two/metrics.json"));
  EXPECT_TRUE(fs::exists(scratch() / "two/log.txt"));
}

TEST_F(DistributedTest, KilledRankFailsTheJobInsteadOfHanging) {
  const auto start = std::chrono::steady_clock::now();
  ProcessResult r = RunProgram(
      main_,
      {"--config=" + tiny_, "--threads=1", "--run_dir=cut", "--nproc=2",
       "--set=run_config.batch_size=16"},
      KillAtStepEnvironment(3, /*rank=*/1) + " OUROBOROS_DIST_TIMEOUT=20");
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("rank 1 was killed by signal 9"));
  EXPECT_THAT(r.output, HasSubstr("the distributed job failed"));
  EXPECT_LT(seconds, 60) << r.output;
}

TEST_F(DistributedTest, KilledJobResumesWithTheSameWorldSize) {
  const std::vector<std::string> run = {
      "--config=" + tiny_, "--threads=1", "--nproc=2",
      "--set=run_config.batch_size=16", "--set=model_config.dropout=0"};
  std::vector<std::string> whole = run;
  whole.push_back("--run_dir=whole");
  ASSERT_EQ(RunProgram(main_, whole).exit_code, 0);
  // Rank 0 dies after step 9; the last checkpoint is step 7 (every 7 steps).
  std::vector<std::string> cut = run;
  cut.push_back("--run_dir=cut");
  ProcessResult killed =
      RunProgram(main_, cut, KillAtStepEnvironment(9, /*rank=*/0));
  ASSERT_EQ(killed.exit_code, 1) << killed.output;
  ProcessResult resumed =
      RunProgram(main_, {"--resume=cut", "--nproc=2", "--threads=1"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_THAT(resumed.output, HasSubstr("1 epochs and 1 batches done, step 7"));
  const std::string expected =
      ReadFile(scratch() / "whole/checkpoints/step-000000012.weights.pt");
  ASSERT_FALSE(expected.empty());
  EXPECT_EQ(ReadFile(scratch() / "cut/checkpoints/step-000000012.weights.pt"),
            expected);
}

TEST_F(DistributedTest, TuneHandsTrialsToEveryRankThroughTheStore) {
  const fs::path config = scratch() / "tune.json";
  std::ofstream(config) << ReadFile(tiny_).substr(0, ReadFile(tiny_).rfind('}'))
                        << R"(, "pipeline": "tune", "pipeline_config": {
      "search": "grid", "max_concurrent": 1, "trial_threads": 1,
      "metric": "accuracy",
      "space": {"optim_config.lr": {"grid": [0.003, 0.01, 0.02, 0.03]}}}})";
  ProcessResult r = RunProgram(
      main_, {"--config=" + config.string(), "--run_dir=tune", "--nproc=2"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  absl::StatusOr<google::protobuf::Value> trials =
      ParseJson(ReadFile(scratch() / "tune/trials.json"));
  ASSERT_TRUE(trials.ok()) << trials.status();
  std::set<int> ranks;
  int succeeded = 0;
  for (const auto& trial :
       trials->struct_value().fields().at("trials").list_value().values()) {
    const auto& fields = trial.struct_value().fields();
    succeeded += fields.at("state").string_value() == "succeeded";
    ranks.insert(static_cast<int>(fields.at("rank").number_value()));
    EXPECT_EQ(fields.at("history").list_value().values_size(), 2);
  }
  EXPECT_EQ(succeeded, 4);
  // Both ranks took trials (each trial takes seconds; both start together).
  EXPECT_EQ(ranks, (std::set<int>{0, 1}));
  // Rank 0 reported and ran the final run, as one plain process.
  EXPECT_TRUE(fs::exists(scratch() / "tune/best_config.json"));
  EXPECT_TRUE(fs::exists(scratch() / "tune/final/metrics.json"));
}

TEST_F(DistributedTest, BadDistributedEnvironmentIsBadInput) {
  ProcessResult r = RunProgram(main_, {"--config=" + tiny_, "--run_dir=x"},
                               "WORLD_SIZE=2 RANK=5");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("RANK must be set to 0..1"));
  ProcessResult both =
      RunProgram(main_, {"--config=" + tiny_, "--run_dir=y", "--nproc=2"},
                 "WORLD_SIZE=2 RANK=0");
  EXPECT_EQ(both.exit_code, 2) << both.output;
  EXPECT_THAT(both.output, HasSubstr("--nproc starts the ranks itself"));
}

TEST(LocalAddressTowardsTest, FindsTheSourceAddressOfTheRoute) {
  absl::StatusOr<std::string> loopback = LocalAddressTowards("127.0.0.1");
  ASSERT_TRUE(loopback.ok()) << loopback.status();
  EXPECT_EQ(*loopback, "127.0.0.1");
  absl::StatusOr<std::string> nowhere =
      LocalAddressTowards("no-such-host.invalid");
  EXPECT_FALSE(nowhere.ok());
  EXPECT_THAT(std::string(nowhere.status().message()),
              HasSubstr("no-such-host.invalid"));
}

TEST(DistributedFromEnvironmentTest, ReadsWhatTorchrunSets) {
  const std::vector<std::pair<const char*, const char*>> torchrun = {
      {"RANK", "3"},
      {"WORLD_SIZE", "4"},
      {"LOCAL_RANK", "1"},
      {"GROUP_RANK", "1"},
      {"LOCAL_WORLD_SIZE", "2"},
      {"MASTER_ADDR", "10.99.0.1"},
      {"MASTER_PORT", "29600"},
      {"TORCHELASTIC_RESTART_COUNT", "2"},
      {"TORCHELASTIC_USE_AGENT_STORE", "True"},
      {"GLOO_SOCKET_IFNAME", "eth0,eth1"}};
  for (const auto& [name, value] : torchrun) setenv(name, value, 1);
  absl::StatusOr<DistributedConfig> config = DistributedFromEnvironment();
  for (const auto& [name, value] : torchrun) unsetenv(name);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->rank, 3);
  EXPECT_EQ(config->local_rank, 1);
  EXPECT_EQ(config->group_rank, 1);
  EXPECT_EQ(config->local_world_size, 2);
  EXPECT_EQ(config->master_addr, "10.99.0.1");
  EXPECT_EQ(config->master_port, 29600);
  EXPECT_EQ(config->restart_count, 2);
  EXPECT_TRUE(config->use_agent_store);
  EXPECT_EQ(config->gloo_interfaces,
            (std::vector<std::string>{"eth0", "eth1"}));
}

}  // namespace
}  // namespace ouroboros
