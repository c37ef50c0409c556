// The `quine_train` pipeline: one Trainer run of the quine, whose training
// step is the core's with the quine's Forward and Loss (L_SR, plus
// lambda * L_task for the auxiliary variant) and whose epochs end with
// regeneration.
//
// Vanilla: the training set (and the validation and test sets) are the
// quine's own coordinates 0..N-1, run_config.batch_size of them per step.
// Auxiliary: the training set is the dataset's images; each step adds the
// L_SR of model_config.coordinates_per_step coordinates (0: all).
// Evaluation reports L_SR, rho and sum(theta^2) over all coordinates, next to
// the task metrics. After a regeneration the optimizer's state is cleared.
#ifndef PLUGINS_QUINE_QUINE_TRAINER_H_
#define PLUGINS_QUINE_QUINE_TRAINER_H_

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "ouroboros/interfaces.h"
#include "ouroboros/trainer.h"
#include "plugins/quine/quine.h"

namespace ouroboros::quine {

class QuineTrainer : public Trainer {
 public:
  explicit QuineTrainer(PipelineContext context);

 protected:
  absl::StatusOr<DataSplits> LoadData() override;
  absl::StatusOr<std::unique_ptr<Model>> BuildModel(
      const DataSpec& spec) override;
  absl::StatusOr<std::map<std::string, double>> Evaluate(
      const Dataset& data) override;
  absl::Status OnEpochEnd(int64_t epoch,
                          std::map<std::string, double>* metrics) override;

 private:
  QuineConfig quine_config_;
  QuineModel* quine_ = nullptr;  // owned by the Trainer
};

absl::StatusOr<std::unique_ptr<Pipeline>> MakeQuinePipeline(
    const PipelineContext& context);

absl::Status ValidateQuinePipelineConfig(const RunConfig& config);

}  // namespace ouroboros::quine

#endif  // PLUGINS_QUINE_QUINE_TRAINER_H_
