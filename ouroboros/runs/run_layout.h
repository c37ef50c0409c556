// The run directory's layout: every file and folder the core writes in it,
// named once. Plugins that read a run's outputs (tune, parallel, the
// introspective demo) use these too, so a rename happens in one place.
//
//   <run_dir>/config.json            the resolved config (RunConfigToJson)
//            log.txt                 every console line, with its time
//            metrics.json            the final result of a Trainer run
//            epochs.jsonl            one record per epoch (trainer.h)
//            evals.jsonl             one record per eval_every_steps
//            steps.jsonl             loss and lr every log_every_steps
//            plots/                  PNGs drawn when the run ends (plots.h)
//            tensorboard/            TensorBoard event files
//            checkpoints/config.json the config the checkpoints belong to
//            checkpoints/step-000000500.ckpt        resumable state
//            checkpoints/step-000000500.weights.pt  the weights, for Python
//            checkpoints/best.ckpt (+ best.weights.pt)
//            .lock                   held by the process writing the run
#ifndef OUROBOROS_RUNS_RUN_LAYOUT_H_
#define OUROBOROS_RUNS_RUN_LAYOUT_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace ouroboros {

inline constexpr char kConfigFile[] = "config.json";
inline constexpr char kLogFile[] = "log.txt";
inline constexpr char kMetricsFile[] = "metrics.json";
inline constexpr char kEpochRecordFile[] = "epochs.jsonl";
inline constexpr char kStepEvalFile[] = "evals.jsonl";
inline constexpr char kStepLogFile[] = "steps.jsonl";
inline constexpr char kPlotsDir[] = "plots";
inline constexpr char kTensorBoardDir[] = "tensorboard";
inline constexpr char kCheckpointDir[] = "checkpoints";
inline constexpr char kLockFile[] = ".lock";

inline constexpr char kCheckpointPrefix[] = "step-";
inline constexpr char kCheckpointExtension[] = ".ckpt";
inline constexpr char kWeightsExtension[] = ".weights.pt";
inline constexpr char kBestCheckpointFile[] = "best.ckpt";

// <run_dir>/<name>.
std::string RunFile(absl::string_view run_dir, absl::string_view name);
// <run_dir>/checkpoints, and <run_dir>/checkpoints/<name>.
std::string CheckpointDir(absl::string_view run_dir);
std::string CheckpointFile(absl::string_view run_dir, absl::string_view name);

// "step-000000500.ckpt".
std::string CheckpointFileName(int64_t step);
// Whether `file_name` is a step checkpoint's name (not best.ckpt).
bool IsStepCheckpointName(absl::string_view file_name);
// The weights file saved beside a checkpoint: ".../step-1.ckpt" ->
// ".../step-1.weights.pt".
std::string WeightsPathFor(absl::string_view checkpoint_path);

}  // namespace ouroboros

#endif  // OUROBOROS_RUNS_RUN_LAYOUT_H_
