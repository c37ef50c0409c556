// score_config.patience (builtin_hooks.h).
#include "absl/strings/str_format.h"
#include "ouroboros/hooks/builtin_hooks.h"

namespace ouroboros {
namespace {

class EarlyStopping : public TrainerHook {
 public:
  explicit EarlyStopping(const ScoreConfig& score) : score_(score) {}

  // A resumed run whose patience ran out before its checkpoint stops again.
  absl::Status OnTrainBegin(const TrainingView& view) override {
    StopIfPatienceRanOut(view);
    return absl::OkStatus();
  }

  absl::Status OnEvaluation(const TrainingView& view,
                            const EpochEvaluation& /*evaluation*/) override {
    StopIfPatienceRanOut(view);
    return absl::OkStatus();
  }

 private:
  void StopIfPatienceRanOut(const TrainingView& view) const {
    if (view.score.epochs_without_improvement < score_.patience()) return;
    view.actions->EndRunEarly(absl::StrFormat(
        "early stopping after epoch %d: %s did not improve by more than %g "
        "for %d epochs (best %.4f)",
        view.epoch, score_.monitor(), score_.min_delta(),
        view.score.epochs_without_improvement, view.score.best));
  }

  const ScoreConfig score_;
};

}  // namespace

std::unique_ptr<TrainerHook> MakeEarlyStopping(const ScoreConfig& score) {
  return std::make_unique<EarlyStopping>(score);
}

}  // namespace ouroboros
