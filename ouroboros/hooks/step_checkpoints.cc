// run_config.checkpoint_every_steps (builtin_hooks.h).
#include "ouroboros/hooks/builtin_hooks.h"

namespace ouroboros {
namespace {

class StepCheckpoints : public TrainerHook {
 public:
  explicit StepCheckpoints(int64_t every_steps) : every_steps_(every_steps) {}

  absl::Status OnStepEnd(const TrainingView& view) override {
    if (view.step % every_steps_ != 0) return absl::OkStatus();
    return view.actions->SaveStepCheckpoint();
  }

 private:
  const int64_t every_steps_;
};

}  // namespace

std::unique_ptr<TrainerHook> MakeStepCheckpoints(int64_t every_steps) {
  return std::make_unique<StepCheckpoints>(every_steps);
}

}  // namespace ouroboros
