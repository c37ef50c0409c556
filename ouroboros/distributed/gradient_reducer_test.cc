#include "ouroboros/distributed/gradient_reducer.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "ouroboros/distributed/distributed.h"

namespace ouroboros {
namespace {

// A net whose parameters make several 4 KiB buckets.
torch::nn::Sequential SmallNet() {
  return torch::nn::Sequential(torch::nn::Linear(20, 48), torch::nn::ReLU(),
                               torch::nn::Linear(48, 32), torch::nn::Tanh(),
                               torch::nn::Linear(32, 5));
}

// `source`'s values in a new net of the same shape.
torch::nn::Sequential CopyOf(torch::nn::Sequential& source) {
  torch::nn::Sequential copy = SmallNet();
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < copy->parameters().size(); ++i) {
    copy->parameters()[i].copy_(source->parameters()[i]);
  }
  return copy;
}

at::Tensor Loss(torch::nn::Sequential& net, const at::Tensor& inputs) {
  return net->forward(inputs).pow(2).mean();
}

struct Rank {
  torch::nn::Sequential overlapped{nullptr}, after{nullptr};
  std::vector<at::Tensor> inputs;  // one batch per step
  int votes_overlapped = -1, votes_after = -1;
  int64_t buckets = 0, started_in_backward = 0;
  std::string error;
};

// Two ranks as two threads of this process, joined on a free local port;
// `body` runs on each with its process group.
void RunTwoRanks(const std::function<void(ProcessGroup&, int)>& body,
                 std::vector<std::string>* errors) {
  absl::StatusOr<int> port = FreeLocalPort();
  ASSERT_TRUE(port.ok()) << port.status();
  std::vector<std::thread> threads;
  for (int rank = 0; rank < 2; ++rank) {
    threads.emplace_back([&, rank] {
      DistributedConfig config;
      config.rank = rank;
      config.world_size = 2;
      config.master_port = *port;
      config.timeout_seconds = 60;
      absl::StatusOr<std::unique_ptr<ProcessGroup>> group =
          ProcessGroup::Connect(config);
      if (!group.ok()) {
        (*errors)[rank] = std::string(group.status().message());
        return;
      }
      body(**group, rank);
    });
  }
  for (std::thread& t : threads) t.join();
}

TEST(GradientReducerTest, OverlappedMeansAreBitIdenticalToAveragingAfter) {
  at::set_num_threads(1);
  torch::manual_seed(1);
  torch::nn::Sequential init = SmallNet();
  Rank ranks[2];
  for (int r = 0; r < 2; ++r) {
    ranks[r].overlapped = CopyOf(init);
    ranks[r].after = CopyOf(init);
    for (int step = 0; step < 3; ++step) {
      ranks[r].inputs.push_back(at::randn({16, 20}));  // other data per rank
    }
  }
  std::vector<std::string> errors(2);
  RunTwoRanks(
      [&](ProcessGroup& group, int r) {
        Rank& rank = ranks[r];
        absl::StatusOr<std::unique_ptr<GradientReducer>> reducer =
            GradientReducer::Create(&group, rank.overlapped->parameters(),
                                    /*bucket_bytes=*/4096);
        if (!reducer.ok()) {
          errors[r] = std::string(reducer.status().message());
          return;
        }
        rank.buckets = (*reducer)->buckets();
        for (const at::Tensor& inputs : rank.inputs) {
          for (auto* net : {&rank.overlapped, &rank.after}) {
            for (at::Tensor& p : (*net)->parameters()) {
              if (p.grad().defined()) p.mutable_grad().zero_();
            }
          }
          // Rank 1 votes to stop.
          (*reducer)->Arm(/*stop_vote=*/r);
          Loss(rank.overlapped, inputs).backward();
          absl::StatusOr<int> votes = (*reducer)->Finish();
          if (!votes.ok()) {
            errors[r] = std::string(votes.status().message());
            return;
          }
          rank.votes_overlapped = *votes;
          rank.started_in_backward = (*reducer)->buckets_started_in_backward();
          Loss(rank.after, inputs).backward();
          int after_votes = r;
          absl::Status averaged =
              group.AverageGradients(rank.after->parameters(), &after_votes);
          if (!averaged.ok()) {
            errors[r] = std::string(averaged.message());
            return;
          }
          rank.votes_after = after_votes;
        }
      },
      &errors);
  for (int r = 0; r < 2; ++r) {
    ASSERT_EQ(errors[r], "") << "rank " << r;
    EXPECT_EQ(ranks[r].votes_overlapped, 1);
    EXPECT_EQ(ranks[r].votes_after, 1);
    // 20x48 weights alone fill a 4 KiB bucket: several buckets, and the
    // backward started all but the last.
    EXPECT_GE(ranks[r].buckets, 3);
    EXPECT_GE(ranks[r].started_in_backward, ranks[r].buckets - 1);
    auto overlapped = ranks[r].overlapped->parameters();
    auto after = ranks[r].after->parameters();
    for (size_t i = 0; i < overlapped.size(); ++i) {
      // Bit for bit, and the same on both ranks.
      EXPECT_TRUE(at::equal(overlapped[i].grad(), after[i].grad()))
          << "rank " << r << " parameter " << i;
      EXPECT_TRUE(at::equal(overlapped[i].grad(),
                            ranks[0].overlapped->parameters()[i].grad()));
    }
  }
  // The ranks' own gradients differ, so the mean is not one rank's.
  EXPECT_FALSE(at::equal(ranks[0].inputs[0], ranks[1].inputs[0]));
}

TEST(GradientReducerTest, UnarmedHooksAndARemovedReducerLeaveTheBackwardAlone) {
  at::set_num_threads(1);
  torch::manual_seed(2);
  torch::nn::Sequential net = SmallNet();
  torch::nn::Sequential reference = CopyOf(net);
  at::Tensor inputs = at::randn({8, 20});
  std::vector<std::string> errors(2);
  int64_t started[2] = {-1, -1};
  RunTwoRanks(
      [&](ProcessGroup& group, int r) {
        if (r == 1) return;  // rank 1 only joins
        absl::StatusOr<std::unique_ptr<GradientReducer>> reducer =
            GradientReducer::Create(&group, net->parameters(), 4096);
        if (!reducer.ok()) {
          errors[r] = std::string(reducer.status().message());
          return;
        }
        Loss(net, inputs).backward();  // not armed: no message
        started[0] = (*reducer)->buckets_started_in_backward();
      },
      &errors);
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(started[0], 0);
  // The reducer is gone with its hooks: another backward runs as usual.
  Loss(net, inputs).backward();
  Loss(reference, inputs).backward();
  Loss(reference, inputs).backward();
  for (size_t i = 0; i < net->parameters().size(); ++i) {
    EXPECT_TRUE(at::equal(net->parameters()[i].grad(),
                          reference->parameters()[i].grad()));
  }
}

}  // namespace
}  // namespace ouroboros
