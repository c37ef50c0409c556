#include "ouroboros/runs/checkpoint.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adam.h>
#include <torch/serialize/archive.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ouroboros/base/crc32c.h"

namespace ouroboros {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

struct Net {
  explicit Net(int64_t in = 3) {
    linear = module.register_module("fc", torch::nn::Linear(in, 2));
  }
  torch::nn::Module module;
  torch::nn::Linear linear{nullptr};
};

void TrainSteps(Net& net, torch::optim::Optimizer& optimizer, int steps) {
  for (int i = 0; i < steps; ++i) {
    optimizer.zero_grad();
    net.linear->forward(at::ones({4, net.linear->options.in_features()}))
        .pow(2)
        .sum()
        .backward();
    optimizer.step();
  }
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(getenv("TEST_TMPDIR")) /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  std::string Path(const std::string& name) { return (dir_ / name).string(); }
  fs::path dir_;
};

// The check values of CRC-32C (RFC 3720, B.4), by the instruction and by
// the table, and the two agreeing on every length and alignment.
TEST(Crc32cTest, MatchesTheStandardsCheckValuesBothWays) {
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(internal::Crc32cByTable("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  EXPECT_EQ(Crc32c(""), 0u);
  std::string bytes;
  for (int i = 0; i < 100; ++i) bytes.push_back(static_cast<char>(i * 37));
  for (size_t begin = 0; begin < 9; ++begin) {
    for (size_t size = 0; begin + size <= bytes.size(); ++size) {
      absl::string_view part(bytes.data() + begin, size);
      ASSERT_EQ(Crc32c(part), internal::Crc32cByTable(part))
          << begin << " " << size;
    }
  }
}

TEST_F(CheckpointTest, RestoresWeightsOptimizerPositionAndRng) {
  at::manual_seed(1);
  Net net;
  torch::optim::Adam adam(net.module.parameters(), 0.1);
  TrainSteps(net, adam, 3);
  CheckpointState state;
  state.position = {2, 5, 17};
  state.score.best = 0.75;
  state.score.has_best = true;
  state.last_train_loss = 0.25;
  state.epoch_loss_sum = 1.5;
  state.epoch_loss_count = 4;
  state.epoch_last_lr = 0.01;
  state.last_val = {{"accuracy", 0.625}, {"loss", 1.125}};
  ASSERT_TRUE(SaveCheckpoint(Path("a.ckpt"), net.module, adam, state).ok());
  at::Tensor next_random = at::rand({5});
  // The uninterrupted continuation.
  TrainSteps(net, adam, 2);
  at::Tensor expected = net.linear->weight.clone();

  at::manual_seed(99);
  Net fresh;
  torch::optim::Adam fresh_adam(fresh.module.parameters(), 0.1);
  absl::StatusOr<CheckpointState> loaded =
      LoadCheckpoint(Path("a.ckpt"), fresh.module, fresh_adam);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->position.epoch, 2);
  EXPECT_EQ(loaded->position.batch_in_epoch, 5);
  EXPECT_EQ(loaded->position.step, 17);
  EXPECT_DOUBLE_EQ(loaded->score.best, 0.75);
  EXPECT_TRUE(loaded->score.has_best);
  EXPECT_DOUBLE_EQ(loaded->last_train_loss, 0.25);
  EXPECT_DOUBLE_EQ(loaded->epoch_loss_sum, 1.5);
  EXPECT_EQ(loaded->epoch_loss_count, 4);
  EXPECT_DOUBLE_EQ(loaded->epoch_last_lr, 0.01);
  EXPECT_EQ(loaded->last_val, state.last_val);
  EXPECT_TRUE(at::equal(at::rand({5}), next_random));
  TrainSteps(fresh, fresh_adam, 2);  // needs Adam's moments to match
  EXPECT_TRUE(at::equal(fresh.linear->weight, expected));
}

TEST_F(CheckpointTest, KeepsEachComponentsOwnStateByOwner) {
  Net net;
  torch::optim::Adam adam(net.module.parameters(), 0.1);
  CheckpointState state;
  state.position = {1, 0, 9};
  ComponentState& model = state.components["model quine"];
  model.SetInt("cursor", 42);
  model.SetDouble("scale", 0.125);
  model.SetString("phase", "second pass");
  model.SetTensor("order", at::arange(7).flip(0));
  state.components["hooks[0] introspection_record"].SetTensor("snapshot/40",
                                                              at::rand({3, 2}));
  ASSERT_TRUE(SaveCheckpoint(Path("a.ckpt"), net.module, adam, state).ok());
  absl::StatusOr<CheckpointState> loaded =
      LoadCheckpoint(Path("a.ckpt"), net.module, adam);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(loaded->has_component_states);
  ASSERT_EQ(loaded->components.size(), 2u);
  EXPECT_TRUE(loaded->components.at("model quine") == model);
  EXPECT_TRUE(loaded->components.at("hooks[0] introspection_record") ==
              state.components.at("hooks[0] introspection_record"));
  EXPECT_EQ(*loaded->components.at("model quine").GetInt("cursor"), 42);
  EXPECT_THAT(
      loaded->components.at("model quine").GetInt("nothing").status().message(),
      HasSubstr("no integer 'nothing'"));
  // A different value is a different state.
  ComponentState other = model;
  other.SetTensor("order", at::arange(7));
  EXPECT_FALSE(other == model);
}

TEST_F(CheckpointTest, LoadsACheckpointWrittenBeforeComponentStates) {
  at::manual_seed(3);
  Net net;
  torch::optim::Adam adam(net.module.parameters(), 0.1);
  // The archive as the format-1 writer made it before component states.
  std::string payload;
  {
    torch::serialize::OutputArchive archive;
    c10::Dict<std::string, at::Tensor> tensors;
    for (const auto& item : net.module.named_parameters()) {
      tensors.insert(item.key(), item.value().detach());
    }
    archive.write("model", c10::IValue(tensors));
    torch::serialize::OutputArchive optimizer_archive;
    adam.save(optimizer_archive);
    archive.write("optimizer", optimizer_archive);
    archive.write("epoch", c10::IValue(int64_t{1}));
    archive.write("batch_in_epoch", c10::IValue(int64_t{0}));
    archive.write("step", c10::IValue(int64_t{12}));
    archive.write("best_metric", c10::IValue(0.5));
    archive.write("has_best", c10::IValue(true));
    archive.write("rng_state",
                  at::detail::getDefaultCPUGenerator().get_state());
    archive.save_to([&payload](const void* data, size_t size) -> size_t {
      payload.append(static_cast<const char*>(data), size);
      return size;
    });
  }
  std::string file("OUROBOROS-CKPT\n", 16);
  const auto put = [&file](uint64_t value, int bytes) {
    for (int i = 0; i < bytes; ++i) file.push_back((value >> (8 * i)) & 0xff);
  };
  put(1, 4);
  put(payload.size(), 8);
  put(Crc32c(payload), 4);
  std::ofstream(Path("old.ckpt"), std::ios::binary) << file << payload;
  absl::StatusOr<CheckpointState> loaded =
      LoadCheckpoint(Path("old.ckpt"), net.module, adam);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->position.step, 12);
  EXPECT_FALSE(loaded->has_component_states);
  EXPECT_TRUE(loaded->components.empty());
}

TEST_F(CheckpointTest, RefusesACorruptedFile) {
  Net net;
  torch::optim::Adam adam(net.module.parameters(), 0.1);
  ASSERT_TRUE(SaveCheckpoint(Path("c.ckpt"), net.module, adam, {}).ok());
  std::string bytes;
  {
    std::ifstream in(Path("c.ckpt"), std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  bytes[bytes.size() / 2] ^= 0x40;
  std::ofstream(Path("c.ckpt"), std::ios::binary) << bytes;
  absl::StatusOr<CheckpointState> loaded =
      LoadCheckpoint(Path("c.ckpt"), net.module, adam);
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(loaded.status().message(),
            Path("c.ckpt") +
                ": checkpoint is corrupted (checksum mismatch); "
                "resume from an earlier one");
  std::ofstream(Path("c.ckpt"), std::ios::binary) << bytes.substr(0, 100);
  EXPECT_THAT(
      std::string(
          LoadCheckpoint(Path("c.ckpt"), net.module, adam).status().message()),
      HasSubstr("truncated"));
  std::ofstream(Path("x.ckpt")) << "not a checkpoint at all, no no no";
  EXPECT_THAT(
      std::string(
          LoadCheckpoint(Path("x.ckpt"), net.module, adam).status().message()),
      HasSubstr("not an Ouroboros checkpoint"));
}

TEST_F(CheckpointTest, RefusesAnotherArchitecture) {
  Net net(3);
  torch::optim::Adam adam(net.module.parameters(), 0.1);
  ASSERT_TRUE(SaveCheckpoint(Path("a.ckpt"), net.module, adam, {}).ok());
  Net other(5);
  torch::optim::Adam other_adam(other.module.parameters(), 0.1);
  absl::StatusOr<CheckpointState> loaded =
      LoadCheckpoint(Path("a.ckpt"), other.module, other_adam);
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(loaded.status().message()),
              HasSubstr("written by another model or config"));
}

TEST_F(CheckpointTest, FindsTheNewestAndPrunesOld) {
  fs::create_directories(dir_ / "checkpoints");
  for (int step : {5, 100, 20}) {
    std::ofstream(dir_ / "checkpoints" / CheckpointFileName(step)) << "x";
    std::ofstream(dir_ / "checkpoints" /
                  (CheckpointFileName(step).substr(0, 14) + ".weights.pt"))
        << "x";
  }
  EXPECT_EQ(CheckpointFileName(100), "step-000000100.ckpt");
  absl::StatusOr<std::string> newest = FindCheckpoint(dir_.string());
  ASSERT_TRUE(newest.ok());
  EXPECT_EQ(*newest, (dir_ / "checkpoints/step-000000100.ckpt").string());
  EXPECT_EQ(*FindCheckpoint(Path("checkpoints/step-000000005.ckpt")),
            Path("checkpoints/step-000000005.ckpt"));
  PruneCheckpoints((dir_ / "checkpoints").string(), 2);
  EXPECT_FALSE(fs::exists(dir_ / "checkpoints/step-000000005.ckpt"));
  EXPECT_FALSE(fs::exists(dir_ / "checkpoints/step-000000005.weights.pt"));
  EXPECT_TRUE(fs::exists(dir_ / "checkpoints/step-000000020.ckpt"));
  EXPECT_EQ(FindCheckpoint(Path("nothing")).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(CheckpointTest, PythonTorchLoadsTheWeights) {
  at::manual_seed(3);
  Net net;
  ASSERT_TRUE(SaveWeightsForPython(Path("w.pt"), net.module).ok());
  const double expected = net.linear->weight.sum().item<double>();
  std::string script = Path("check.py");
  std::ofstream(script)
      << "import sys, torch\n"
      << "w = torch.load(sys.argv[1])\n"
      << "assert isinstance(w, dict), type(w)\n"
      << "assert sorted(w) == ['fc.bias', 'fc.weight'], sorted(w)\n"
      << "assert tuple(w['fc.weight'].shape) == (2, 3)\n"
      << "print(repr(float(w['fc.weight'].sum())))\n";
  std::string out = Path("out.txt");
  int rc = std::system(("/usr/bin/python3 " + script + " " + Path("w.pt") +
                        " > " + out + " 2>&1")
                           .c_str());
  std::ifstream in(out);
  std::string printed((std::istreambuf_iterator<char>(in)), {});
  ASSERT_EQ(rc, 0) << printed;
  EXPECT_NEAR(std::stod(printed), expected, 1e-6);
}

}  // namespace
}  // namespace ouroboros
