// The records a training run appends as it goes, one JSON line each, and
// their readers: the Trainer is their only writer; tune, parallel, the
// introspective demo and the tests read them here
// (ouroboros/runs/plots_1_read.py reads the same files in Python).
//
//   RETURN_IF_ERROR(AppendEpochRecord(run_dir, record));
//   for (const EpochRecord& r : ReadEpochRecords(run_dir)) ...
//
// Appended line by line, so that another process (a tune watching its
// trials, a parallel job drawing its status lines) can follow a run while
// it goes; a reader leaves out a last line still being written. Values
// that are not finite are left out of a record (JSON has no NaN).
#ifndef OUROBOROS_RUNS_RUN_RECORDS_H_
#define OUROBOROS_RUNS_RUN_RECORDS_H_

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace ouroboros {

// kEpochRecordFile (run_layout.h), one per finished epoch, e.g.
// {"epoch":3,"step":1266,"train_loss":0.41,"lr":0.001,
//  "val":{"accuracy":0.86},"model":{}}
struct EpochRecord {
  int64_t epoch = 0;  // 1-based: epochs finished
  int64_t step = 0;
  double train_loss = 0;
  double lr = 0;                          // the epoch's last step's
  std::string evaluated_on;               // "val", or "test" with no val set
  std::map<std::string, double> metrics;  // score_config metrics there
  std::map<std::string, double> model;    // the model's own (Model::OnEpochEnd)
};

absl::Status AppendEpochRecord(const std::string& run_dir,
                               const EpochRecord& record);

// The records of `run_dir` so far (none if the file is not there yet).
std::vector<EpochRecord> ReadEpochRecords(const std::string& run_dir);

// kStepEvalFile, with run_config.eval_every_steps = N > 0: one per N
// optimizer steps, e.g.
// {"step":200,"epoch":2,"train_seconds":3.1,"val":{"accuracy":0.81},
//  "test":{"accuracy":0.80}}
// A resumed run repeats the steps after its checkpoint; the last record of
// a step wins.
struct StepEvalRecord {
  int64_t step = 0;
  int64_t epoch = 0;  // the step's epoch, 1-based (as on the console)
  // Wall seconds this process trained before the evaluation: from the
  // start of its first step, less the time of the step evaluations before
  // (so two runs compare by the cost of their steps, hooks, epoch
  // evaluations and checkpoints). A resumed run counts from its resume;
  // NaN in a record written before this field.
  double train_seconds = std::nan("");
  // Each written only when that split is not empty.
  std::map<std::string, double> val;
  std::map<std::string, double> test;
};

absl::Status AppendStepEvalRecord(const std::string& run_dir,
                                  const StepEvalRecord& record);

// One per step (the last record of a step in the file), sorted by step.
std::vector<StepEvalRecord> ReadStepEvalRecords(const std::string& run_dir);

// kStepLogFile, every run_config.log_every_steps steps, e.g.
// {"step":1250,"epoch":3,"loss":0.39,"lr":0.001}
struct StepLogRecord {
  int64_t step = 0;
  int64_t epoch = 0;  // the epoch under way, 1-based as on the console
  double loss = 0;
  double lr = 0;
};

absl::Status AppendStepLogRecord(const std::string& run_dir,
                                 const StepLogRecord& record);

std::vector<StepLogRecord> ReadStepLogRecords(const std::string& run_dir);

}  // namespace ouroboros

#endif  // OUROBOROS_RUNS_RUN_RECORDS_H_
