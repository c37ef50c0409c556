#include "ouroboros/runs/run_hparams.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/struct.pb.h"
#include "ouroboros/base/crc32c.h"
#include "ouroboros/base/json.h"
#include "ouroboros/config/config.h"

namespace ouroboros {
namespace {

using google::protobuf::Value;

bool IsScalar(const Value& value) {
  return value.has_number_value() || value.has_string_value() ||
         value.has_bool_value();
}

// A scalar as compact JSON, numbers as FormatJson writes them.
std::string ScalarJson(const Value& value) {
  if (value.has_string_value()) {
    return absl::StrCat("\"", value.string_value(), "\"");
  }
  if (value.has_bool_value()) return value.bool_value() ? "true" : "false";
  return absl::StrFormat("%.17g", value.number_value());
}

void Flatten(const Value& value, const std::string& path,
             std::map<std::string, RunHparams::Setting>* settings) {
  if (value.has_struct_value()) {
    for (const auto& [key, field] : value.struct_value().fields()) {
      Flatten(field, path.empty() ? key : absl::StrCat(path, ".", key),
              settings);
    }
  } else if (value.has_list_value()) {
    const auto& items = value.list_value().values();
    bool scalars = true;
    for (const Value& item : items) scalars = scalars && IsScalar(item);
    if (scalars) {
      (*settings)[path] =
          absl::StrCat("[",
                       absl::StrJoin(items, ", ",
                                     [](std::string* out, const Value& item) {
                                       out->append(ScalarJson(item));
                                     }),
                       "]");
      return;
    }
    for (int i = 0; i < items.size(); ++i) {
      Flatten(items[i], absl::StrCat(path, "[", i, "]"), settings);
    }
  } else if (value.has_number_value()) {
    (*settings)[path] = value.number_value();
  } else if (value.has_bool_value()) {
    (*settings)[path] = value.bool_value();
  } else if (value.has_string_value()) {
    (*settings)[path] = value.string_value();
  }  // null: no value to show
}

std::string SettingText(const RunHparams::Setting& setting) {
  if (const double* number = std::get_if<double>(&setting)) {
    return absl::StrFormat("%.17g", *number);
  }
  if (const bool* flag = std::get_if<bool>(&setting)) {
    return *flag ? "true" : "false";
  }
  return std::get<std::string>(setting);
}

}  // namespace

RunHparams RunHparamsOf(const RunConfig& config, double start_time_secs) {
  RunHparams hparams;
  hparams.start_time_secs = start_time_secs;
  // config.json's own text, so that the paths and values are the ones a
  // user reads there (every field, defaults filled in).
  absl::StatusOr<Value> json = ParseJson(RunConfigToJson(config));
  if (json.ok()) Flatten(*json, "", &hparams.settings);
  std::string key;
  for (const auto& [path, setting] : hparams.settings) {
    if (path == "seed" || path == "run_name") continue;
    absl::StrAppend(&key, path, "=", SettingText(setting), "\n");
  }
  hparams.group_name = absl::StrFormat("config-%08x", Crc32c(key));
  hparams.metric_tags.push_back("train/loss");
  for (const std::string& metric : config.score_config().metrics()) {
    hparams.metric_tags.push_back("val/" + metric);
    hparams.metric_tags.push_back("test/" + metric);
  }
  return hparams;
}

}  // namespace ouroboros
