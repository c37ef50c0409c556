// The tune's trial store: what the tune knows of each trial, kept in
// trials.json so that a stopped tune resumes with its finished trials, and
// passed between the ranks of a distributed tune as the same JSON. Which
// trial is best, and whether the early-stopping rule ends one, are read
// from it.
//
//   std::vector<TrialRecord> records = ...;       // one per Trial
//   RETURN_IF_ERROR(RestoreTrialStore(run_dir, &records));  // on resume
//   ...
//   RETURN_IF_ERROR(WriteTrialStore(run_dir, tune, records));
//   const TrialRecord* best = BestTrial(records, tune.mode());
#ifndef PLUGINS_TUNE_TRIAL_STORE_H_
#define PLUGINS_TUNE_TRIAL_STORE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "google/protobuf/struct.pb.h"
#include "ouroboros/config/config.h"
#include "ouroboros/distributed/child_process.h"
#include "plugins/tune/search.h"
#include "plugins/tune/tune.pb.h"

namespace ouroboros::tune {

// What the tune knows of one trial.
struct TrialRecord {
  Trial trial;
  std::string name;  // trial-003
  ChildJobStatus status;
  std::vector<double> history;  // the metric after each finished epoch
  int64_t epochs = 0;           // its config's run_config.epochs
  int rank = 0;                 // the rank that ran it (distributed tune)
  RunConfig config;             // what the trial runs
  bool done = false;            // known from before a resume
};

// One record per trial, named trial-<index>.
std::vector<TrialRecord> NewTrialRecords(std::vector<Trial> trials);

// The last value of the metric, or NaN before the first epoch.
double LastMetric(const TrialRecord& record);

// The metric after each epoch of the run in `run_dir` (NaN where it was not
// finite), from its epochs.jsonl.
std::vector<double> ReadMetricHistory(const std::string& run_dir,
                                      const std::string& metric);

// One trial as JSON: name, state, exit code, seconds, rank, params and
// history (a non-finite value is null). TrialFromJson reads the outcome
// back (state, exit code, seconds, rank, history; the params are checked by
// RestoreTrialStore, not read); a state that had not ended leaves the
// record as it was.
google::protobuf::Value TrialToJson(const TrialRecord& record);
void TrialFromJson(const google::protobuf::Value& value, TrialRecord* record);

// <run_dir>/trials.json, written atomically.
absl::Status WriteTrialStore(const std::string& run_dir,
                             const TunePipelineConfig& tune,
                             const std::vector<TrialRecord>& records);

// The finished trials of <run_dir>/trials.json into `records` (matched by
// name). No file: nothing to restore. FailedPrecondition, naming the file,
// when a trial there had other values than the config's search gives now.
absl::Status RestoreTrialStore(const std::string& run_dir,
                               std::vector<TrialRecord>* records);

// The best trial that ran to its end with a finite metric, or nullptr.
const TrialRecord* BestTrial(const std::vector<TrialRecord>& records,
                             const std::string& mode);

// Whether the tune's early-stopping rule (search.h) ends trial `index`,
// against the histories of every other trial that has one.
bool EarlyStoppingEndsTrial(const std::vector<TrialRecord>& records, int index,
                            const TunePipelineConfig& tune);

}  // namespace ouroboros::tune

#endif  // PLUGINS_TUNE_TRIAL_STORE_H_
