// Registers model `continual` and the data sources `permuted` and `split`
// (continual.h, task_sequences.h).
#include "ouroboros/api/plugin_api.h"
#include "ouroboros/config/config.h"
#include "plugins/hypernetwork/continual.h"
#include "plugins/hypernetwork/continual_default_config.h"
#include "plugins/hypernetwork/task_sequences.h"

namespace ouroboros::hypernetwork {
namespace {

absl::Status ValidateContinual(const RunConfig& config) {
  return ParseContinualConfig(config).status();
}

absl::Status ValidateTaskSequence(const RunConfig& config) {
  return ParseTaskSequenceConfig(config).status();
}

}  // namespace

OUROBOROS_REGISTER_MODEL(
    kContinualModel,
    "Continual learning (von Oswald et al. 2020): a task-conditioned (full "
    "or chunked) hypernetwork makes the main network's weights per task; "
    "baselines finetune, online EWC, joint",
    MakeContinualModel, kContinualDefaultConfigJson, ValidateContinual,
    SectionDefaultsOf<ContinualConfig>());
OUROBOROS_REGISTER_DATA_SOURCE(
    kPermutedSource,
    "A task sequence: the base images (source_config.images) under a "
    "seeded pixel permutation per task",
    MakeTaskSequence, ValidateTaskSequence,
    SectionDefaultsOf<TaskSequenceConfig>(FillDerivedTaskSequenceDefaults));
OUROBOROS_REGISTER_DATA_SOURCE(
    kSplitSource,
    "A task sequence: consecutive pairs (classes_per_task) of the base "
    "images' classes per task",
    MakeTaskSequence, ValidateTaskSequence,
    SectionDefaultsOf<TaskSequenceConfig>(FillDerivedTaskSequenceDefaults));

}  // namespace ouroboros::hypernetwork
