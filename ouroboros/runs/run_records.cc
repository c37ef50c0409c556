#include "ouroboros/runs/run_records.h"

#include <cmath>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "google/protobuf/struct.pb.h"
#include "ouroboros/base/json.h"
#include "ouroboros/runs/run_layout.h"

namespace ouroboros {
namespace {

using Fields = google::protobuf::Map<std::string, google::protobuf::Value>;

std::map<std::string, double> NumberFields(const google::protobuf::Value& v) {
  std::map<std::string, double> numbers;
  for (const auto& [name, value] : v.struct_value().fields()) {
    if (value.has_number_value()) numbers[name] = value.number_value();
  }
  return numbers;
}

// fields[key] as a number; `absent` when it is not there.
double NumberField(const Fields& fields, const char* key, double absent = 0) {
  auto it = fields.find(key);
  return it == fields.end() ? absent : it->second.number_value();
}

// fields[key]'s numbers; none when it is not there.
std::map<std::string, double> NumbersOf(const Fields& fields, const char* key) {
  auto it = fields.find(key);
  return it == fields.end() ? std::map<std::string, double>()
                            : NumberFields(it->second);
}

}  // namespace

absl::Status AppendEpochRecord(const std::string& run_dir,
                               const EpochRecord& record) {
  google::protobuf::Struct line;
  Fields& fields = *line.mutable_fields();
  fields["epoch"].set_number_value(record.epoch);
  fields["step"].set_number_value(record.step);
  fields["train_loss"].set_number_value(record.train_loss);
  fields["lr"].set_number_value(record.lr);
  fields[record.evaluated_on] = FiniteNumbers(record.metrics);
  fields["model"] = FiniteNumbers(record.model);
  return AppendJsonLine(RunFile(run_dir, kEpochRecordFile), line);
}

std::vector<EpochRecord> ReadEpochRecords(const std::string& run_dir) {
  std::vector<EpochRecord> records;
  for (const google::protobuf::Struct& line :
       ReadJsonLines(RunFile(run_dir, kEpochRecordFile))) {
    const Fields& fields = line.fields();
    EpochRecord record;
    record.epoch = static_cast<int64_t>(NumberField(fields, "epoch"));
    record.step = static_cast<int64_t>(NumberField(fields, "step"));
    record.train_loss = NumberField(fields, "train_loss");
    record.lr = NumberField(fields, "lr");
    for (const char* split : {"val", "test"}) {
      if (fields.find(split) != fields.end()) {
        record.evaluated_on = split;
        record.metrics = NumbersOf(fields, split);
      }
    }
    record.model = NumbersOf(fields, "model");
    records.push_back(std::move(record));
  }
  return records;
}

absl::Status AppendStepEvalRecord(const std::string& run_dir,
                                  const StepEvalRecord& record) {
  google::protobuf::Struct line;
  Fields& fields = *line.mutable_fields();
  fields["step"].set_number_value(record.step);
  fields["epoch"].set_number_value(record.epoch);
  if (std::isfinite(record.train_seconds)) {
    fields["train_seconds"].set_number_value(record.train_seconds);
  }
  if (!record.val.empty()) fields["val"] = FiniteNumbers(record.val);
  if (!record.test.empty()) fields["test"] = FiniteNumbers(record.test);
  return AppendJsonLine(RunFile(run_dir, kStepEvalFile), line);
}

std::vector<StepEvalRecord> ReadStepEvalRecords(const std::string& run_dir) {
  // By step: a later record of a step (a resumed run repeats the steps after
  // its checkpoint) replaces the earlier one.
  std::map<int64_t, StepEvalRecord> by_step;
  for (const google::protobuf::Struct& line :
       ReadJsonLines(RunFile(run_dir, kStepEvalFile))) {
    const Fields& fields = line.fields();
    StepEvalRecord record;
    record.step = static_cast<int64_t>(NumberField(fields, "step"));
    record.epoch = static_cast<int64_t>(NumberField(fields, "epoch"));
    record.train_seconds = NumberField(fields, "train_seconds", std::nan(""));
    record.val = NumbersOf(fields, "val");
    record.test = NumbersOf(fields, "test");
    by_step[record.step] = std::move(record);
  }
  std::vector<StepEvalRecord> records;
  for (auto& [step, record] : by_step) records.push_back(std::move(record));
  return records;
}

absl::Status AppendStepLogRecord(const std::string& run_dir,
                                 const StepLogRecord& record) {
  google::protobuf::Struct line;
  Fields& fields = *line.mutable_fields();
  fields["step"].set_number_value(record.step);
  fields["epoch"].set_number_value(record.epoch);
  fields["loss"].set_number_value(record.loss);
  fields["lr"].set_number_value(record.lr);
  return AppendJsonLine(RunFile(run_dir, kStepLogFile), line);
}

std::vector<StepLogRecord> ReadStepLogRecords(const std::string& run_dir) {
  std::vector<StepLogRecord> records;
  for (const google::protobuf::Struct& line :
       ReadJsonLines(RunFile(run_dir, kStepLogFile))) {
    const Fields& fields = line.fields();
    records.push_back({static_cast<int64_t>(NumberField(fields, "step")),
                       static_cast<int64_t>(NumberField(fields, "epoch")),
                       NumberField(fields, "loss"), NumberField(fields, "lr")});
  }
  return records;
}

}  // namespace ouroboros
