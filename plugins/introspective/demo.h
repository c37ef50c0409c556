// Pipeline `introspective_demo` (what --model=introspective runs): records
// the weight histories of one run, trains the introspection network I on
// them, then runs another model on other data plain and with jumps, per
// seed (plain, and with jumps for each of pipeline_config.predictors), and
// prints the steps each needs to reach the plain run's best validation
// metric, the wall time with every cost counted and the test metric.
//
//   record run (child process, hook introspection_record)
//     -> <run dir>/record/introspection_histories.pt
//   I trained here (model_config, optim_config, run_config of this config)
//     -> <run dir>/introspection_net.pt
//   target runs (child processes, run_config.eval_every_steps set):
//     <run dir>/targets/plain-seedS, jump-seedS (hook introspection_jump,
//     I), jump_linear-seedS (the linear baseline)
//     -> <run dir>/results.json, results.md
#ifndef PLUGINS_INTROSPECTIVE_DEMO_H_
#define PLUGINS_INTROSPECTIVE_DEMO_H_

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ouroboros/api/interfaces.h"
#include "ouroboros/runs/run_records.h"
#include "ouroboros/train/trainer.h"
#include "plugins/introspective/introspective.pb.h"

namespace ouroboros::introspective {

inline constexpr char kDemoPipelineName[] = "introspective_demo";

// An evaluation (evals.jsonl) where a run reached a validation target.
struct TargetCrossing {
  int64_t step = -1;                    // -1: never
  double value = std::nan("");          // the validation metric there
  double test = std::nan("");           // the test metric there
  double train_seconds = std::nan("");  // StepEvalRecord::train_seconds
};

// The first evaluation whose validation `metric` reaches `target` (>= when
// higher is better, else <=); step -1 if none does.
TargetCrossing FirstValidationCrossing(
    const std::vector<StepEvalRecord>& records, const std::string& metric,
    double target, bool higher_is_better);

// The run's best validation `metric` over its evaluations, at the first
// evaluation that reached it; step -1 if no evaluation has the metric.
absl::StatusOr<TargetCrossing> BestValidation(
    const std::vector<StepEvalRecord>& records, const std::string& metric,
    bool higher_is_better);

// pipeline_config checked ("pipeline_config.<field>: reason"), defaults
// filled in.
absl::StatusOr<DemoPipelineConfig> ParseDemoConfig(const RunConfig& config);

absl::StatusOr<std::unique_ptr<Pipeline>> MakeDemoPipeline(
    const PipelineContext& context);

}  // namespace ouroboros::introspective

#endif  // PLUGINS_INTROSPECTIVE_DEMO_H_
