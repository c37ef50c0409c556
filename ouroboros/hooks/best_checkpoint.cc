// score_config.monitor (builtin_hooks.h).
#include "absl/strings/str_format.h"
#include "glog/logging.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/hooks/builtin_hooks.h"
#include "ouroboros/runs/run_layout.h"

namespace ouroboros {
namespace {

class BestCheckpoint : public TrainerHook {
 public:
  explicit BestCheckpoint(std::string monitor) : monitor_(std::move(monitor)) {}

  absl::Status OnEvaluation(const TrainingView& view,
                            const EpochEvaluation& evaluation) override {
    if (!evaluation.new_best) return absl::OkStatus();
    RETURN_IF_ERROR(view.actions->SaveNamedCheckpoint(kBestCheckpointFile));
    if (view.writes_outputs) {
      LOG(INFO) << absl::StrFormat("new best %s %s %.4f: checkpoints/%s",
                                   SplitName(evaluation.split), monitor_,
                                   view.score.best, kBestCheckpointFile);
    }
    return absl::OkStatus();
  }

 private:
  const std::string monitor_;
};

}  // namespace

std::unique_ptr<TrainerHook> MakeBestCheckpoint(const ScoreConfig& score) {
  return std::make_unique<BestCheckpoint>(score.monitor());
}

}  // namespace ouroboros
