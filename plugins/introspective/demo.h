// Pipeline `introspective_demo` (what --model=introspective runs): records
// the weight histories of one run, trains the introspection network I on
// them, then runs another model on other data plain and with jumps, per
// seed, and prints the steps each needs to reach the plain run's final test
// metric.
//
//   record run (child process, hook introspection_record)
//     -> <run dir>/record/introspection_histories.pt
//   I trained here (model_config, optim_config, run_config of this config)
//     -> <run dir>/introspection_net.pt
//   target runs (child processes, run_config.eval_every_steps set):
//     <run dir>/targets/plain-seedS, jump-seedS (hook introspection_jump)
//     -> <run dir>/results.json, results.md
#ifndef PLUGINS_INTROSPECTIVE_DEMO_H_
#define PLUGINS_INTROSPECTIVE_DEMO_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ouroboros/interfaces.h"
#include "ouroboros/trainer.h"
#include "plugins/introspective/introspective.pb.h"

namespace ouroboros::introspective {

inline constexpr char kDemoPipelineName[] = "introspective_demo";

// The first evaluated step whose test `metric` reaches `target` (>= when
// higher is better, else <=), or -1 if none does.
int64_t StepsToTarget(const std::vector<StepEvalRecord>& records,
                      const std::string& metric, double target,
                      bool higher_is_better);

// pipeline_config checked ("pipeline_config.<field>: reason"), defaults
// filled in.
absl::StatusOr<DemoPipelineConfig> ParseDemoConfig(const RunConfig& config);

absl::StatusOr<std::unique_ptr<Pipeline>> MakeDemoPipeline(
    const PipelineContext& context);

}  // namespace ouroboros::introspective

#endif  // PLUGINS_INTROSPECTIVE_DEMO_H_
