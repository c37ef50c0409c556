#include "plugins/tune/trial_store.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ouroboros/base/files.h"
#include "ouroboros/base/json.h"
#include "ouroboros/runs/run_records.h"

namespace ouroboros::tune {

std::vector<TrialRecord> NewTrialRecords(std::vector<Trial> trials) {
  std::vector<TrialRecord> records;
  for (Trial& trial : trials) {
    TrialRecord record;
    record.name = absl::StrFormat("trial-%03d", trial.index);
    record.trial = std::move(trial);
    records.push_back(std::move(record));
  }
  return records;
}

double LastMetric(const TrialRecord& record) {
  return record.history.empty() ? std::nan("") : record.history.back();
}

std::vector<double> ReadMetricHistory(const std::string& run_dir,
                                      const std::string& metric) {
  std::vector<double> history;
  for (const EpochRecord& record : ReadEpochRecords(run_dir)) {
    auto it = record.metrics.find(metric);
    history.push_back(it == record.metrics.end() ? std::nan("") : it->second);
  }
  return history;
}

google::protobuf::Value TrialToJson(const TrialRecord& record) {
  google::protobuf::Value value;
  auto& trial = *value.mutable_struct_value()->mutable_fields();
  trial["name"].set_string_value(record.name);
  trial["state"].set_string_value(ChildStateName(record.status.state));
  trial["exit_code"].set_number_value(record.status.exit_code);
  trial["seconds"].set_number_value(record.status.seconds);
  trial["rank"].set_number_value(record.rank);
  auto& params = *trial["params"].mutable_struct_value()->mutable_fields();
  for (const auto& [path, param] : record.trial.params) {
    params[path].set_string_value(param);
  }
  auto* history = trial["history"].mutable_list_value();
  for (double metric : record.history) {
    if (std::isfinite(metric)) {
      history->add_values()->set_number_value(metric);
    } else {
      history->add_values()->set_null_value({});
    }
  }
  return value;
}

void TrialFromJson(const google::protobuf::Value& value, TrialRecord* record) {
  const auto& fields = value.struct_value().fields();
  auto number = [&](const char* key) {
    auto it = fields.find(key);
    return it == fields.end() ? 0.0 : it->second.number_value();
  };
  auto state = fields.find("state");
  if (state == fields.end()) return;
  for (ChildState s : {ChildState::kSucceeded, ChildState::kFailed,
                       ChildState::kTimedOut, ChildState::kStopped}) {
    if (state->second.string_value() == ChildStateName(s)) {
      record->done = true;
      record->status.state = s;
    }
  }
  if (!record->done) return;
  record->status.exit_code = static_cast<int>(number("exit_code"));
  record->status.seconds = number("seconds");
  record->rank = static_cast<int>(number("rank"));
  record->history.clear();
  if (auto history = fields.find("history"); history != fields.end()) {
    for (const auto& v : history->second.list_value().values()) {
      record->history.push_back(v.has_number_value() ? v.number_value()
                                                     : std::nan(""));
    }
  }
}

absl::Status WriteTrialStore(const std::string& run_dir,
                             const TunePipelineConfig& tune,
                             const std::vector<TrialRecord>& records) {
  google::protobuf::Value root;
  auto& fields = *root.mutable_struct_value()->mutable_fields();
  fields["metric"].set_string_value(tune.metric());
  fields["mode"].set_string_value(tune.mode());
  auto* list = fields["trials"].mutable_list_value();
  for (const TrialRecord& record : records) {
    *list->add_values() = TrialToJson(record);
  }
  return WriteFileAtomically(run_dir + "/trials.json", FormatJson(root));
}

absl::Status RestoreTrialStore(const std::string& run_dir,
                               std::vector<TrialRecord>* records) {
  const std::string path = run_dir + "/trials.json";
  if (!std::filesystem::exists(path)) return absl::OkStatus();
  absl::StatusOr<google::protobuf::Value> root = ReadJsonFile(path);
  if (!root.ok()) return root.status();
  const auto& trials =
      root->struct_value().fields().at("trials").list_value().values();
  for (const google::protobuf::Value& value : trials) {
    const auto& fields = value.struct_value().fields();
    const std::string name = fields.at("name").string_value();
    auto record =
        std::find_if(records->begin(), records->end(),
                     [&](const TrialRecord& r) { return r.name == name; });
    if (record == records->end()) continue;
    for (const auto& [param, param_value] :
         fields.at("params").struct_value().fields()) {
      auto mine = record->trial.params.find(param);
      if (mine == record->trial.params.end() ||
          mine->second != param_value.string_value()) {
        return absl::FailedPreconditionError(absl::StrCat(
            path, ": ", name, " had ", param, "=", param_value.string_value(),
            "; the config's search changed since, so this tune cannot be "
            "resumed (start a new one)"));
      }
    }
    TrialFromJson(value, &*record);
  }
  return absl::OkStatus();
}

const TrialRecord* BestTrial(const std::vector<TrialRecord>& records,
                             const std::string& mode) {
  const TrialRecord* best = nullptr;
  for (const TrialRecord& record : records) {
    if (record.status.state != ChildState::kSucceeded) continue;
    const double value = LastMetric(record);
    if (!std::isfinite(value)) continue;
    if (best == nullptr || Better(value, LastMetric(*best), mode)) {
      best = &record;
    }
  }
  return best;
}

bool EarlyStoppingEndsTrial(const std::vector<TrialRecord>& records, int index,
                            const TunePipelineConfig& tune) {
  std::vector<std::vector<double>> others;
  for (int j = 0; j < static_cast<int>(records.size()); ++j) {
    if (j != index && !records[j].history.empty()) {
      others.push_back(records[j].history);
    }
  }
  const EarlyStopping& rule = tune.early_stopping();
  const std::vector<double>& history = records[index].history;
  if (rule.method() == "median") {
    return MedianRuleStops(history, others, rule, tune.mode());
  }
  if (rule.method() == "asha") {
    return AshaStops(history, others, rule, tune.mode());
  }
  return false;
}

}  // namespace ouroboros::tune
