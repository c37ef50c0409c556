#include "ouroboros/config/config.h"

#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/util/json_util.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/files.h"
#include "ouroboros/base/json.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/config/config_checks.h"
#include "ouroboros/config/config_defaults.h"
#include "ouroboros/config/config_schema.h"

namespace ouroboros {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

// Protobuf names types as TYPE_INT32 etc.; say what the user should write.
std::string ExpectedKind(absl::string_view type) {
  if (type == "TYPE_INT32" || type == "TYPE_SINT32" || type == "TYPE_SFIXED32")
    return "a whole number in 32-bit range";
  if (type == "TYPE_INT64" || type == "TYPE_SINT64" || type == "TYPE_SFIXED64")
    return "a whole number";
  if (type == "TYPE_UINT32" || type == "TYPE_FIXED32")
    return "a non-negative whole number in 32-bit range";
  if (type == "TYPE_UINT64" || type == "TYPE_FIXED64")
    return "a non-negative whole number";
  if (type == "TYPE_DOUBLE" || type == "TYPE_FLOAT") return "a number";
  if (type == "TYPE_STRING") return "a string";
  if (type == "TYPE_BOOL") return "true or false";
  if (absl::EndsWith(type, "google.protobuf.Struct")) return "a JSON object";
  if (absl::EndsWith(type, "google.protobuf.ListValue")) return "a list";
  return std::string(type);
}

// Turns protobuf's JSON-to-message errors, e.g.
//   "(optim_config) lrr: Cannot find field."
//   "(optim_config.lr): invalid value "abc" for type TYPE_DOUBLE"
// into {"optim_config.lrr", "unknown field"}.
std::pair<std::string, std::string> SplitProtobufError(
    absl::string_view message) {
  std::string path;
  absl::string_view rest = message;
  if (absl::ConsumePrefix(&rest, "(")) {
    size_t close = rest.find(')');
    if (close != absl::string_view::npos) {
      path = std::string(rest.substr(0, close));
      rest.remove_prefix(close + 1);
    }
  }
  if (!absl::ConsumePrefix(&rest, ": ")) {
    absl::ConsumePrefix(&rest, " ");
    size_t colon = rest.find(": ");
    if (colon != absl::string_view::npos) {
      absl::string_view key = rest.substr(0, colon);
      path = path.empty() ? std::string(key) : absl::StrCat(path, ".", key);
      rest.remove_prefix(colon + 2);
    }
  }
  std::string reason;
  if (rest == "Cannot find field.") {
    reason = "unknown field (not in the schema)";
  } else if (absl::StartsWith(rest, "invalid value ")) {
    size_t for_type = rest.rfind(" for type ");
    if (for_type != absl::string_view::npos) {
      absl::string_view value = rest.substr(14, for_type - 14);
      absl::string_view type = rest.substr(for_type + 10);
      reason = absl::StrCat("invalid value ", value, ": expected ",
                            ExpectedKind(type));
      // --set=model_config.layer_sizes=128,64 arrives as the string
      // "128,64": show the list syntax.
      absl::string_view unquoted = value;
      absl::ConsumePrefix(&unquoted, "\"");
      absl::ConsumeSuffix(&unquoted, "\"");
      if (absl::StrContains(unquoted, ',')) {
        absl::StrAppend(&reason, " (a list is written [", unquoted, "])");
      }
    }
  } else if (absl::StrContains(rest, "is not repeating, cannot start list")) {
    reason = "expected an object or a single value, not a list";
  } else if (absl::StrContains(rest, "Root element must be a message")) {
    reason = "the config must be a JSON object";
  }
  if (reason.empty()) reason = std::string(rest);
  return {path, reason};
}

std::string ToJsonString(const google::protobuf::Message& message);

// The schema check first (config_schema.h: the types, the names), then
// Protobuf's parser (ranges, and anything the check lets through).
absl::Status JsonToMessage(const Struct& root, absl::string_view path_prefix,
                           google::protobuf::Message* out) {
  RETURN_IF_ERROR(
      CheckJsonAgainstSchema(root, *out->GetDescriptor(), path_prefix));
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(ToJsonString(root),
                                                            out, options);
  if (status.ok()) return absl::OkStatus();
  auto [path, reason] = SplitProtobufError(status.message().as_string());
  if (!path_prefix.empty()) {
    path = path.empty() ? std::string(path_prefix)
                        : absl::StrCat(path_prefix, ".", path);
  }
  return ConfigFieldError(path.empty() ? "<config>" : path, reason);
}

std::string ToJsonString(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  // Struct/Value round-trip without loss; this cannot fail for them.
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

struct Override {
  std::string text;  // as given, for messages
  std::vector<std::string> path;
  std::string dotted_path;
  Value value;
};

absl::StatusOr<Override> ParseOverride(const std::string& text) {
  Override o;
  o.text = text;
  size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--set=", text,
                     ": expected field.path=value, e.g. optim_config.lr=0.01"));
  }
  o.dotted_path = text.substr(0, eq);
  o.path = absl::StrSplit(o.dotted_path, '.');
  for (const std::string& part : o.path) {
    if (part.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--set=", text, ": empty component in field path '",
                       o.dotted_path, "'"));
    }
  }
  std::string value_text = text.substr(eq + 1);
  absl::StatusOr<Value> parsed = ParseJson(value_text);
  if (parsed.ok()) {
    o.value = *std::move(parsed);
  } else {
    o.value.set_string_value(value_text);
  }
  return o;
}

absl::Status ApplyOverride(const Override& o, Struct* root) {
  Struct* node = root;
  for (size_t i = 0; i + 1 < o.path.size(); ++i) {
    Value& child = (*node->mutable_fields())[o.path[i]];
    if (child.kind_case() == Value::KIND_NOT_SET) {
      child.mutable_struct_value();
    } else if (child.kind_case() != Value::kStructValue) {
      std::vector<std::string> prefix(o.path.begin(), o.path.begin() + i + 1);
      return absl::InvalidArgumentError(absl::StrCat(
          "--set=", o.text, ": '", absl::StrJoin(prefix, "."),
          "' is not an object, so it has no field '", o.path[i + 1], "'"));
    }
    node = child.mutable_struct_value();
  }
  (*node->mutable_fields())[o.path.back()] = o.value;
  return absl::OkStatus();
}

// True when one field path is the other or lies inside it
// ("model_config.layer_sizes[1]" is inside "model_config").
bool PathsOverlap(absl::string_view a, absl::string_view b) {
  auto inside = [](absl::string_view child, absl::string_view parent) {
    return absl::StartsWith(child, parent) &&
           (child.size() == parent.size() || child[parent.size()] == '.' ||
            child[parent.size()] == '[');
  };
  return inside(a, b) || inside(b, a);
}

bool IsSafeName(absl::string_view name) {
  if (name.empty() || name == "." || name == "..") return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

absl::Status ValidateDataConfig(const DataConfig& data) {
  // Any name: the data sources are plugins (the registry says which exist).
  // The synthetic and idx sections are the core's own, checked here.
  const std::string& name = data.dataset();
  if (name.empty()) {
    return ConfigFieldError("data_config.dataset",
                            "missing (--list_plugins shows the data sources)");
  }
  if (name == "synthetic") {
    const SyntheticData& synthetic = data.synthetic();
    RETURN_IF_ERROR(CheckAtLeast("data_config.synthetic.num_samples",
                                 synthetic.num_samples(), 1));
    RETURN_IF_ERROR(CheckAtLeast("data_config.synthetic.num_features",
                                 synthetic.num_features(), 1));
    RETURN_IF_ERROR(CheckAtLeast("data_config.synthetic.num_classes",
                                 synthetic.num_classes(), 2));
    RETURN_IF_ERROR(CheckFiniteAtLeast("data_config.synthetic.noise",
                                       synthetic.noise(), 0));
  }
  if (name == "idx") {
    const IdxFiles& f = data.idx_files();
    for (auto [file, field] : {std::pair<const std::string&, const char*>{
                                   f.train_images(), "train_images"},
                               {f.train_labels(), "train_labels"},
                               {f.test_images(), "test_images"},
                               {f.test_labels(), "test_labels"}}) {
      if (file.empty()) {
        return ConfigFieldError(
            absl::StrCat("data_config.idx_files.", field),
            "missing: the idx dataset needs all four files");
      }
    }
  }
  RETURN_IF_ERROR(CheckInRange("data_config.data_subset", data.data_subset(),
                               0.0, 1.0, Interval::kOpenClosed));
  const SplitConfig& split = data.split();
  RETURN_IF_ERROR(CheckOneOf("data_config.split.method", split.method(),
                             {"holdout", "kfold"}, "split"));
  RETURN_IF_ERROR(CheckInRange("data_config.split.val_fraction",
                               split.val_fraction(), 0.0, 1.0,
                               Interval::kClosedOpen));
  RETURN_IF_ERROR(CheckInRange("data_config.split.test_fraction",
                               split.test_fraction(), 0.0, 1.0,
                               Interval::kOpen));
  if (split.method() == "kfold") {
    RETURN_IF_ERROR(CheckAtLeast("data_config.split.folds", split.folds(), 2,
                                 " for kfold"));
    RETURN_IF_ERROR(CheckInRange("data_config.split.fold", split.fold(), 0,
                                 split.folds() - 1));
  }
  return CheckAtLeast("data_config.prefetch_batches", data.prefetch_batches(),
                      0);
}

absl::Status ValidateScheduler(const SchedulerConfig& s, double lr) {
  const std::string& name = s.name();
  if (name == "none" || name == "linear_warmup") {
  } else if (name == "step") {
    RETURN_IF_ERROR(CheckAtLeast("optim_config.scheduler.step_size",
                                 s.step_size(), 1, " epoch"));
  } else if (name == "multistep") {
    if (s.milestones().empty()) {
      return ConfigFieldError("optim_config.scheduler.milestones",
                              "multistep needs at least one milestone epoch");
    }
    for (int i = 1; i < s.milestones_size(); ++i) {
      if (s.milestones(i) <= s.milestones(i - 1)) {
        return ConfigFieldError("optim_config.scheduler.milestones",
                                "must be strictly increasing");
      }
    }
  } else if (name == "cosine_warm_restarts") {
    RETURN_IF_ERROR(
        CheckAtLeast("optim_config.scheduler.t_0", s.t_0(), 1, " epoch"));
    RETURN_IF_ERROR(
        CheckAtLeast("optim_config.scheduler.t_mult", s.t_mult(), 1));
    if (!(s.eta_min() >= 0 && s.eta_min() <= lr)) {
      return ConfigFieldError(
          "optim_config.scheduler.eta_min",
          absl::StrCat("must be in [0, optim_config.lr] (got ", s.eta_min(),
                       ")"));
    }
  } else if (name == "cyclic") {
    if (!(s.max_lr() > lr) || !std::isfinite(s.max_lr())) {
      return ConfigFieldError(
          "optim_config.scheduler.max_lr",
          absl::StrCat("must be > optim_config.lr (got ", s.max_lr(), ")"));
    }
    RETURN_IF_ERROR(CheckAtLeast("optim_config.scheduler.step_size_up",
                                 s.step_size_up(), 1, " step"));
  } else {
    return ConfigFieldError(
        "optim_config.scheduler.name",
        absl::StrCat("unknown scheduler '", name,
                     "'; known: none, step, multistep, cosine_warm_restarts, "
                     "cyclic, linear_warmup"));
  }
  if (name == "step" || name == "multistep") {
    RETURN_IF_ERROR(CheckAbove("optim_config.scheduler.gamma", s.gamma(), 0.0));
  }
  return CheckAtLeast("optim_config.scheduler.warmup_steps", s.warmup_steps(),
                      name == "linear_warmup" ? 1 : 0);
}

absl::Status ValidateScore(const ScoreConfig& score) {
  auto known = [](const std::string& m) {
    return m == "loss" || m == "accuracy" || m == "precision" ||
           m == "recall" || m == "f1" || m == "auroc";
  };
  for (int i = 0; i < score.metrics_size(); ++i) {
    if (!known(score.metrics(i))) {
      return ConfigFieldError(
          absl::StrCat("score_config.metrics[", i, "]"),
          absl::StrCat(
              "unknown metric '", score.metrics(i),
              "'; known: loss, accuracy, precision, recall, f1, auroc"));
    }
  }
  if (!score.monitor().empty() && !known(score.monitor())) {
    return ConfigFieldError(
        "score_config.monitor",
        absl::StrCat("unknown metric '", score.monitor(),
                     "'; known: loss, accuracy, precision, recall, f1, auroc"));
  }
  RETURN_IF_ERROR(
      CheckOneOf("score_config.mode", score.mode(), {"max", "min"}, "mode"));
  RETURN_IF_ERROR(CheckAtLeast("score_config.patience", score.patience(), 0));
  if (score.patience() > 0 && score.monitor().empty()) {
    return ConfigFieldError("score_config.patience",
                            "early stopping needs score_config.monitor");
  }
  return CheckAtLeast("score_config.min_delta", score.min_delta(), 0.0);
}

}  // namespace

absl::StatusOr<RunConfig> ParseRunConfig(
    absl::string_view json, absl::string_view source,
    const std::vector<std::string>& overrides) {
  absl::StatusOr<Value> document = ParseJson(json);
  if (!document.ok()) return WithContext(document.status(), source);
  if (document->kind_case() != Value::kStructValue) {
    return WithContext(
        ConfigFieldError("<config>", "the config must be a JSON object"),
        source);
  }
  Struct root = document->struct_value();
  for (const std::string& text : overrides) {
    absl::StatusOr<Override> o = ParseOverride(text);
    if (!o.ok()) return o.status();
    RETURN_IF_ERROR(ApplyOverride(*o, &root));
  }

  RunConfig config;
  absl::Status status = JsonToMessage(root, "", &config);
  if (status.ok()) status = FillCoreDefaults(&config);
  // A config without a model (a composite pipeline's, or one whose model
  // comes from --model) has its training sections checked once the model is
  // known: PluginRegistry::CheckConfig.
  if (status.ok()) {
    status = config.model().empty() ? ValidateRunName(config)
                                    : ValidateRunConfig(config);
  }
  if (status.ok()) return config;
  return AttributeConfigError(status, source, overrides);
}

absl::Status AttributeConfigError(const absl::Status& error,
                                  absl::string_view source,
                                  const std::vector<std::string>& overrides) {
  absl::string_view message = error.message();
  absl::string_view error_path = message.substr(0, message.find(": "));
  // The last --set that wrote the field (or a parent or child of it) wins.
  for (auto it = overrides.rbegin(); it != overrides.rend(); ++it) {
    absl::string_view path = absl::string_view(*it).substr(0, it->find('='));
    if (PathsOverlap(error_path, path)) {
      return WithContext(error, absl::StrCat("--set=", *it));
    }
  }
  return WithContext(error, source);
}

absl::StatusOr<RunConfig> LoadRunConfigFile(
    const std::string& path, const std::vector<std::string>& overrides) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) {
    // "<path>: cannot read (<reason>)" says which kind of file it was.
    std::string message(text.status().message());
    absl::StrReplaceAll({{": cannot read (", ": cannot read config file ("}},
                        &message);
    return absl::Status(text.status().code(), message);
  }
  return ParseRunConfig(*text, path, overrides);
}

absl::Status FillCoreDefaults(RunConfig* config) {
  RETURN_IF_ERROR(FillDeclaredDefaults(config));
  ScoreConfig& score = *config->mutable_score_config();
  if (!score.has_mode()) {
    score.set_mode(score.monitor() == "loss" ? "min" : "max");
  }
  return absl::OkStatus();
}

absl::Status ValidateRunName(const RunConfig& config) {
  if (!config.run_name().empty() && !IsSafeName(config.run_name())) {
    return ConfigFieldError(
        "run_name", absl::StrCat("'", config.run_name(),
                                 "' must be a plain directory name (letters, "
                                 "digits, '_', '-', '.')"));
  }
  return absl::OkStatus();
}

absl::Status ValidateRunConfig(const RunConfig& config) {
  RETURN_IF_ERROR(ValidateRunName(config));
  RETURN_IF_ERROR(ValidateDataConfig(config.data_config()));
  const OptimConfig& optim = config.optim_config();
  RETURN_IF_ERROR(CheckFiniteAbove("optim_config.lr", optim.lr(), 0));
  RETURN_IF_ERROR(
      CheckFiniteAtLeast("optim_config.weight_decay", optim.weight_decay(), 0));
  RETURN_IF_ERROR(CheckFiniteAtLeast("optim_config.grad_clip_norm",
                                     optim.grad_clip_norm(), 0,
                                     ", 0 meaning off"));
  RETURN_IF_ERROR(ValidateScheduler(optim.scheduler(), optim.lr()));
  RETURN_IF_ERROR(ValidateScore(config.score_config()));
  const TrainConfig& run = config.run_config();
  RETURN_IF_ERROR(CheckAtLeast("run_config.epochs", run.epochs(), 1));
  RETURN_IF_ERROR(CheckAtLeast("run_config.batch_size", run.batch_size(), 1));
  RETURN_IF_ERROR(CheckAtLeast("run_config.max_steps", run.max_steps(), 0,
                               ", 0 meaning no limit"));
  RETURN_IF_ERROR(
      CheckAtLeast("run_config.log_every_steps", run.log_every_steps(), 0));
  return CheckAtLeast("run_config.eval_every_steps", run.eval_every_steps(), 0,
                      ", 0 meaning never");
}

absl::Status ParseConfigSection(const Struct& section,
                                absl::string_view section_path,
                                google::protobuf::Message* out) {
  RETURN_IF_ERROR(JsonToMessage(section, section_path, out));
  return FillDeclaredDefaults(out);
}

std::string RunConfigToJson(const RunConfig& config) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(config, &json, options);
  // Re-format for stable, readable output (sorted keys, two-space indent).
  absl::StatusOr<Value> value = ParseJson(json);
  if (!value.ok()) return json;
  // Protobuf writes 64-bit integers as strings ("seed": "1"); a seed that a
  // double holds exactly is written as the number a user would type.
  auto& fields = *value->mutable_struct_value()->mutable_fields();
  if (auto seed = fields.find("seed");
      seed != fields.end() && seed->second.has_string_value()) {
    uint64_t number = 0;
    if (absl::SimpleAtoi(seed->second.string_value(), &number) &&
        number <= (uint64_t{1} << 53)) {
      seed->second.set_number_value(static_cast<double>(number));
    }
  }
  return FormatJson(*value);
}

}  // namespace ouroboros
