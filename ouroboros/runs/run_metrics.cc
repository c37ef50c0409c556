#include "ouroboros/runs/run_metrics.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/struct.pb.h"
#include "ouroboros/base/files.h"
#include "ouroboros/base/json.h"
#include "ouroboros/runs/run_layout.h"

namespace ouroboros {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

// Reads the fields of one JSON object of metrics.json, each by its type;
// the first wrong one is remembered as the error, naming file and field.
class FieldReader {
 public:
  FieldReader(const std::string& path, std::string prefix, const Struct& object)
      : path_(path), prefix_(std::move(prefix)), object_(object) {}

  const Value* Find(const char* key, Value::KindCase kind,
                    const char* kind_name) {
    auto it = object_.fields().find(key);
    if (it == object_.fields().end()) return nullptr;
    if (it->second.kind_case() != kind) {
      Fail(key, absl::StrCat("must be ", kind_name));
      return nullptr;
    }
    return &it->second;
  }
  void Number(const char* key, double* out) {
    if (const Value* v = Find(key, Value::kNumberValue, "a number")) {
      *out = v->number_value();
    }
  }
  void Integer(const char* key, int64_t* out) {
    if (const Value* v = Find(key, Value::kNumberValue, "a number")) {
      if (v->number_value() != std::floor(v->number_value())) {
        Fail(key, "must be a whole number");
        return;
      }
      *out = static_cast<int64_t>(v->number_value());
    }
  }
  void String(const char* key, std::string* out) {
    if (const Value* v = Find(key, Value::kStringValue, "a string")) {
      *out = v->string_value();
    }
  }
  void Bool(const char* key, bool* out) {
    if (const Value* v = Find(key, Value::kBoolValue, "true or false")) {
      *out = v->bool_value();
    }
  }
  void Metrics(const char* key, std::map<std::string, double>* out) {
    const Value* v = Find(key, Value::kStructValue, "an object");
    if (v == nullptr) return;
    for (const auto& [name, value] : v->struct_value().fields()) {
      if (value.kind_case() != Value::kNumberValue) {
        Fail(absl::StrCat(key, ".", name), "must be a number");
        continue;
      }
      (*out)[name] = value.number_value();
    }
  }
  const absl::Status& status() const { return status_; }

 private:
  void Fail(const std::string& key, const std::string& reason) {
    if (!status_.ok()) return;
    status_ = absl::InvalidArgumentError(
        absl::StrCat(path_, ": ", prefix_, key, ": ", reason));
  }

  const std::string& path_;
  std::string prefix_;
  const Struct& object_;
  absl::Status status_;
};

}  // namespace

double RunMetrics::TestMetric(const std::string& name) const {
  auto it = test.find(name);
  return it == test.end() ? std::nan("") : it->second;
}

absl::Status WriteRunMetrics(const std::string& run_dir,
                             const RunMetrics& metrics) {
  Value root;
  auto* fields = root.mutable_struct_value()->mutable_fields();
  (*fields)["epochs"].set_number_value(static_cast<double>(metrics.epochs));
  (*fields)["steps"].set_number_value(static_cast<double>(metrics.steps));
  (*fields)["last_train_loss"].set_number_value(metrics.last_train_loss);
  (*fields)["val"] = FiniteNumbers(metrics.val);
  (*fields)["test"] = FiniteNumbers(metrics.test);
  (*fields)["final_checkpoint"].set_string_value(metrics.final_checkpoint);
  if (metrics.early_stopping.has_value()) {
    const EarlyStoppingRecord& record = *metrics.early_stopping;
    auto& early =
        *(*fields)["early_stopping"].mutable_struct_value()->mutable_fields();
    early["stopped"].set_bool_value(record.stopped);
    early["monitor"].set_string_value(record.monitor);
    early["patience"].set_number_value(static_cast<double>(record.patience));
    early["min_delta"].set_number_value(record.min_delta);
    early["best"].set_number_value(record.best);
  }
  return WriteFileAtomically(RunFile(run_dir, kMetricsFile), FormatJson(root));
}

absl::StatusOr<RunMetrics> ReadRunMetrics(const std::string& run_dir) {
  const std::string path = RunFile(run_dir, kMetricsFile);
  absl::StatusOr<Value> root = ReadJsonFile(path);
  if (!root.ok()) return root.status();
  if (root->kind_case() != Value::kStructValue) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": must be a JSON object"));
  }
  RunMetrics metrics;
  FieldReader reader(path, "", root->struct_value());
  reader.Integer("epochs", &metrics.epochs);
  reader.Integer("steps", &metrics.steps);
  reader.Number("last_train_loss", &metrics.last_train_loss);
  reader.Metrics("val", &metrics.val);
  reader.Metrics("test", &metrics.test);
  reader.String("final_checkpoint", &metrics.final_checkpoint);
  if (!reader.status().ok()) return reader.status();
  if (const Value* early =
          reader.Find("early_stopping", Value::kStructValue, "an object")) {
    EarlyStoppingRecord record;
    FieldReader fields(path, "early_stopping.", early->struct_value());
    fields.Bool("stopped", &record.stopped);
    fields.String("monitor", &record.monitor);
    fields.Integer("patience", &record.patience);
    fields.Number("min_delta", &record.min_delta);
    fields.Number("best", &record.best);
    if (!fields.status().ok()) return fields.status();
    metrics.early_stopping = std::move(record);
  }
  if (!reader.status().ok()) return reader.status();
  return metrics;
}

}  // namespace ouroboros
