// metrics.json, the final result of a Trainer run (run_layout.h), as a
// typed record: the Trainer is its only writer; resume, tune, parallel and
// the introspective demo read it through ReadRunMetrics rather than by key
// name.
//
//   RETURN_IF_ERROR(WriteRunMetrics(run_dir, metrics));
//   absl::StatusOr<RunMetrics> done = ReadRunMetrics(run_dir);
//   if (done.ok()) double accuracy = done->TestMetric("accuracy");
//
// The file:
//   {"epochs": 5, "steps": 2110, "last_train_loss": 0.31,
//    "val": {"accuracy": 0.88, ...}, "test": {...},
//    "final_checkpoint": "<run_dir>/checkpoints/step-000002110.ckpt",
//    "early_stopping": {"stopped": false, "monitor": "accuracy",
//                       "patience": 3, "min_delta": 0, "best": 0.88}}
// Metrics that are not finite (a zero quine's rho) are left out of "val"
// and "test"; "early_stopping" is there only when score_config.patience > 0.
#ifndef OUROBOROS_RUNS_RUN_METRICS_H_
#define OUROBOROS_RUNS_RUN_METRICS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ouroboros {

struct EarlyStoppingRecord {
  bool stopped = false;  // patience ran out before run_config.epochs
  std::string monitor;
  int64_t patience = 0;
  double min_delta = 0;
  double best = 0;  // of `monitor`
};

struct RunMetrics {
  int64_t epochs = 0;  // completed
  int64_t steps = 0;   // optimizer steps in all
  double last_train_loss = 0;
  std::map<std::string, double> val;   // at the best or last checkpoint
  std::map<std::string, double> test;  // on the test set, at the end
  std::string final_checkpoint;
  std::optional<EarlyStoppingRecord> early_stopping;

  // test[name], or NaN when the run has no such finite test metric.
  double TestMetric(const std::string& name) const;
};

// Writes <run_dir>/metrics.json atomically (a reader never sees half).
absl::Status WriteRunMetrics(const std::string& run_dir,
                             const RunMetrics& metrics);

// NotFound when the run left no metrics.json (not finished); InvalidArgument
// naming the file and the field when the file is not JSON or a field has the
// wrong type. Fields left out take their defaults.
absl::StatusOr<RunMetrics> ReadRunMetrics(const std::string& run_dir);

}  // namespace ouroboros

#endif  // OUROBOROS_RUNS_RUN_METRICS_H_
