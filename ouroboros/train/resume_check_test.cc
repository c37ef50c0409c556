#include "ouroboros/train/resume_check.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ouroboros/api/data.h"
#include "ouroboros/api/interfaces.h"
#include "ouroboros/api/registry.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/config/config.h"

namespace ouroboros {
namespace {

using ::testing::HasSubstr;

// A linear classifier whose loss is scaled by a counter of its own calls:
// state beside its tensors, saved through SaveState only when asked to.
class CountingModel : public Model {
 public:
  explicit CountingModel(bool saves_counter) : saves_counter_(saves_counter) {
    linear_ = module_.register_module("fc", torch::nn::Linear(4, 3));
  }
  torch::nn::Module& module() override { return module_; }
  at::Tensor Forward(const at::Tensor& inputs) override {
    return linear_->forward(inputs);
  }
  at::Tensor Loss(const at::Tensor& outputs,
                  const at::Tensor& targets) override {
    ++calls_;
    return Model::Loss(outputs, targets) * static_cast<double>(1 + calls_ % 3);
  }
  absl::Status SaveState(ComponentState* state) const override {
    if (saves_counter_) state->SetInt("calls", calls_);
    return absl::OkStatus();
  }
  absl::Status LoadState(const ComponentState& state) override {
    ASSIGN_OR_RETURN(calls_, state.GetInt("calls"));
    return absl::OkStatus();
  }

 private:
  bool saves_counter_;
  int64_t calls_ = 0;
  torch::nn::Module module_;
  torch::nn::Linear linear_{nullptr};
};

class ResumeCheckTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    const bool saves = GetParam();
    ASSERT_TRUE(RegisterBuiltinDataSources(registry_).ok());
    ModelFactory counting =
        [saves](const ModelContext&) -> absl::StatusOr<std::unique_ptr<Model>> {
      return std::make_unique<CountingModel>(saves);
    };
    ASSERT_TRUE(registry_
                    .Register(ModelEntry{"counting", "", counting, "", nullptr,
                                         nullptr, ""})
                    .ok());
    ASSERT_TRUE(RegisterTrainerStandIns(registry_).ok());
    absl::StatusOr<RunConfig> config = ParseRunConfig(
        R"({"model": "counting", "seed": 2,
            "data_config": {"dataset": "synthetic", "synthetic":
              {"num_samples": 96, "num_features": 4, "num_classes": 3}},
            "optim_config": {"name": "adam", "lr": 0.05},
            "run_config": {"epochs": 2, "batch_size": 8}})",
        "test.json");
    ASSERT_TRUE(config.ok()) << config.status();
    config_ = *config;
  }
  std::string Dir() const {
    return std::string(std::getenv("TEST_TMPDIR")) + "/resume_" +
           (GetParam() ? "saved" : "lost");
  }
  PluginRegistry registry_;
  RunConfig config_;
};

TEST_P(ResumeCheckTest, PassesOnlyWhenTheStateGoesThroughTheCheckpoint) {
  absl::Status exact = CheckResumeIsExact(config_, registry_, Dir(), 5);
  if (GetParam()) {
    EXPECT_TRUE(exact.ok()) << exact;
  } else {
    EXPECT_EQ(exact.code(), absl::StatusCode::kFailedPrecondition) << exact;
    EXPECT_THAT(std::string(exact.message()),
                HasSubstr("first differing tensor: 'fc."));
  }
}

TEST_P(ResumeCheckTest, RefusesAStopOutsideTheRun) {
  absl::Status outside = CheckResumeIsExact(config_, registry_, Dir(), 500);
  EXPECT_EQ(outside.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(outside.message()), HasSubstr("not inside the run"));
}

INSTANTIATE_TEST_SUITE_P(SavedOrLost, ResumeCheckTest, ::testing::Bool());

}  // namespace
}  // namespace ouroboros
