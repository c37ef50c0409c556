#include "ouroboros/api/component_state.h"

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ouroboros {
namespace {

using ::testing::HasSubstr;

// A counter that saves itself when it has counted anything.
class Counter : public Stateful {
 public:
  absl::Status SaveState(ComponentState* state) const override {
    if (count > 0) state->SetInt("count", count);
    return absl::OkStatus();
  }
  absl::Status LoadState(const ComponentState& state) override {
    absl::StatusOr<int64_t> saved = state.GetInt("count");
    if (!saved.ok()) return saved.status();
    count = *saved;
    return absl::OkStatus();
  }
  int64_t count = 0;
};

class BrokenSave : public Stateful {
 public:
  absl::Status SaveState(ComponentState* /*state*/) const override {
    return absl::InternalError("disk full");
  }
};

TEST(ComponentStateTest, KeepsEachKindByKey) {
  ComponentState state;
  EXPECT_TRUE(state.empty());
  state.SetInt("steps", 3);
  state.SetDouble("scale", 0.5);
  state.SetString("phase", "warmup");
  state.SetTensor("snapshot", at::arange(4));
  EXPECT_FALSE(state.empty());
  EXPECT_EQ(*state.GetInt("steps"), 3);
  EXPECT_DOUBLE_EQ(*state.GetDouble("scale"), 0.5);
  EXPECT_EQ(*state.GetString("phase"), "warmup");
  EXPECT_TRUE(state.GetTensor("snapshot")->equal(at::arange(4)));
  EXPECT_TRUE(state.Has("phase"));
  absl::StatusOr<int64_t> missing = state.GetInt("scale");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("no integer 'scale' in the saved state"));
}

TEST(CollectComponentStatesTest, KeepsTheComponentsThatWroteSomething) {
  Counter counted, idle;
  counted.count = 7;
  absl::StatusOr<ComponentStates> states = CollectComponentStates(
      {{"hooks[0] counter", &counted}, {"model idle", &idle}});
  ASSERT_TRUE(states.ok()) << states.status();
  ASSERT_EQ(states->size(), 1u);
  EXPECT_EQ(*states->at("hooks[0] counter").GetInt("count"), 7);

  BrokenSave broken;
  absl::StatusOr<ComponentStates> failed =
      CollectComponentStates({{"hooks[1] broken", &broken}});
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().message(),
            "saving the state of hooks[1] broken: disk full");
}

TEST(RestoreComponentStatesTest, EachComponentGetsItsOwnState) {
  Counter first, second;
  ComponentStates saved;
  saved["a"].SetInt("count", 3);
  saved["b"].SetInt("count", 5);
  ASSERT_TRUE(RestoreComponentStates({{"a", &first}, {"b", &second}}, saved,
                                     true, "step-3.ckpt")
                  .ok());
  EXPECT_EQ(first.count, 3);
  EXPECT_EQ(second.count, 5);
}

TEST(RestoreComponentStatesTest, AComponentWithoutItsSavedStateIsAnError) {
  Counter keeps_state;
  keeps_state.count = 1;  // SaveState would write: it keeps state
  const absl::Status status = RestoreComponentStates(
      {{"hooks[0] counter", &keeps_state}}, {}, true, "step-3.ckpt");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("step-3.ckpt: the checkpoint holds no state of "
                        "hooks[0] counter"));
  // A checkpoint older than component states: the component starts afresh.
  EXPECT_TRUE(RestoreComponentStates({{"hooks[0] counter", &keeps_state}}, {},
                                     false, "old.ckpt")
                  .ok());
  // Nothing to save now, nothing saved then: fine.
  Counter idle;
  EXPECT_TRUE(
      RestoreComponentStates({{"model idle", &idle}}, {}, true, "x.ckpt").ok());
}

TEST(RestoreComponentStatesTest, AStateThatDoesNotParseNamesItsOwner) {
  Counter counter;
  ComponentStates saved;
  saved["data quine"].SetString("count", "three");
  const absl::Status status = RestoreComponentStates(
      {{"data quine", &counter}}, saved, true, "step-9.ckpt");
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("step-9.ckpt: the state of data quine does not "
                        "parse: no integer 'count'"));
}

TEST(RestoreComponentStatesTest, AStateNoComponentClaimsIsIgnored) {
  Counter counter;
  ComponentStates saved;
  saved["a"].SetInt("count", 2);
  saved["hooks[3] gone"].SetInt("count", 9);
  EXPECT_TRUE(
      RestoreComponentStates({{"a", &counter}}, saved, true, "s.ckpt").ok());
  EXPECT_EQ(counter.count, 2);
}

}  // namespace
}  // namespace ouroboros
