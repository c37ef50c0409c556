// What the tune shows of its trials: trials.csv, the table it logs at the
// end, the line under its progress bar, and every trial on one chart.
#ifndef PLUGINS_TUNE_TRIAL_REPORTS_H_
#define PLUGINS_TUNE_TRIAL_REPORTS_H_

#include <string>
#include <vector>

#include "ouroboros/config/config.h"
#include "plugins/tune/trial_store.h"
#include "plugins/tune/tune.pb.h"

namespace ouroboros::tune {

// trials.csv: trial,state,<searched paths>,<metric>,epochs,seconds.
std::string TrialsCsv(const TunePipelineConfig& tune,
                      const std::vector<TrialRecord>& records);

// The same as a table for the log, one trial a line.
std::string TrialTable(const TunePipelineConfig& tune,
                       const std::vector<TrialRecord>& records);

// "2 running, 1 failed, best accuracy 0.9100 (trial-003)".
std::string TrialsProgress(const TunePipelineConfig& tune,
                           const std::vector<TrialRecord>& records);

// Every trial that got as far as an epoch on one chart, in <run_dir>/plots.
void PlotTrials(const RunConfig& config, const std::string& run_dir,
                const TunePipelineConfig& tune,
                const std::vector<TrialRecord>& records);

}  // namespace ouroboros::tune

#endif  // PLUGINS_TUNE_TRIAL_REPORTS_H_
