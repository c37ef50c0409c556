// run_config.histogram_every_epochs (builtin_hooks.h).
#include <torch/nn/module.h>

#include "ouroboros/hooks/builtin_hooks.h"

namespace ouroboros {
namespace {

class WeightHistograms : public TrainerHook {
 public:
  explicit WeightHistograms(int64_t every_epochs)
      : every_epochs_(every_epochs) {}

  absl::Status OnEvaluation(const TrainingView& view,
                            const EpochEvaluation& /*evaluation*/) override {
    if (view.epoch % every_epochs_ != 0) return absl::OkStatus();
    for (const auto& item : view.module->named_parameters()) {
      view.actions->LogHistogram("weights/" + item.key(), item.value());
    }
    return absl::OkStatus();
  }

 private:
  const int64_t every_epochs_;
};

}  // namespace

std::unique_ptr<TrainerHook> MakeWeightHistograms(int64_t every_epochs) {
  return std::make_unique<WeightHistograms>(every_epochs);
}

}  // namespace ouroboros
