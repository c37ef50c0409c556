// run_config.checkpoint_every_epochs (builtin_hooks.h).
#include "ouroboros/hooks/builtin_hooks.h"

namespace ouroboros {
namespace {

class EpochCheckpoints : public TrainerHook {
 public:
  explicit EpochCheckpoints(int64_t every_epochs)
      : every_epochs_(every_epochs) {}

  absl::Status OnEvaluation(const TrainingView& view,
                            const EpochEvaluation& /*evaluation*/) override {
    if (view.epoch % every_epochs_ != 0) return absl::OkStatus();
    return view.actions->SaveStepCheckpoint();
  }

 private:
  const int64_t every_epochs_;
};

}  // namespace

std::unique_ptr<TrainerHook> MakeEpochCheckpoints(int64_t every_epochs) {
  return std::make_unique<EpochCheckpoints>(every_epochs);
}

}  // namespace ouroboros
