#include "ouroboros/runs/run_spec.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "ouroboros/api/registry.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/json.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/config/config.h"
#include "ouroboros/runs/run_dir.h"

namespace ouroboros {
namespace {

std::string Field(const std::string& where, absl::string_view field) {
  return where.empty() ? std::string(field) : absl::StrCat(where, ".", field);
}

absl::StatusOr<ResolvedRunSpec> FromFile(
    const RunSpecSource& source, const std::vector<std::string>& overrides) {
  const std::string& typed = source.config_file;
  const std::string path = UserPath(typed);
  absl::StatusOr<RunConfig> config = LoadRunConfigFile(path, overrides);
  if (!config.ok()) {
    // Messages name the file as the user typed it.
    std::string message(config.status().message());
    if (path != typed) absl::StrReplaceAll({{path, typed}}, &message);
    absl::Status error(config.status().code(), message);
    return source.where.empty()
               ? error
               : WithContext(error, Field(source.where, "config"));
  }
  return ResolvedRunSpec{*std::move(config), typed};
}

absl::StatusOr<ResolvedRunSpec> FromModelDefault(
    const RunSpecSource& source, const std::vector<std::string>& overrides,
    const PluginRegistry* registry) {
  const std::string flag = source.where.empty()
                               ? absl::StrCat("--model=", source.model)
                               : Field(source.where, "model");
  if (registry == nullptr) {
    return absl::InternalError(
        absl::StrCat(flag, ": a model's default config needs the registry"));
  }
  absl::StatusOr<const ModelEntry*> entry = registry->FindModel(source.model);
  if (!entry.ok()) return WithContext(entry.status(), flag);
  if ((*entry)->default_config_json.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": model '", source.model,
                     "' has no default config; give a config file"));
  }
  const std::string name =
      source.where.empty()
          ? absl::StrCat("<default config of model '", source.model, "'>")
          : absl::StrCat(flag, " '", source.model, "' (its default config)");
  ASSIGN_OR_RETURN(
      RunConfig config,
      ParseRunConfig((*entry)->default_config_json, name, overrides));
  return ResolvedRunSpec{std::move(config), name};
}

}  // namespace

absl::StatusOr<ResolvedRunSpec> ResolveRunSpec(
    const RunSpecSource& source, const std::vector<std::string>& overrides,
    const PluginRegistry* registry) {
  const int given = !source.config_file.empty() +
                    (source.inline_config != nullptr) + !source.model.empty();
  if (given != 1) {
    if (source.where.empty()) {
      std::vector<std::string> models;
      if (registry != nullptr) models = registry->Names(PluginKind::kModel);
      return absl::InvalidArgumentError(absl::StrCat(
          "give --model=NAME (runs its default config) or --config=FILE; "
          "known models: ",
          models.empty() ? "(none loaded)" : absl::StrJoin(models, ", ")));
    }
    return ConfigFieldError(source.where,
                            "give exactly one of config, inline_config, "
                            "model");
  }
  absl::StatusOr<ResolvedRunSpec> resolved;
  if (!source.config_file.empty()) {
    resolved = FromFile(source, overrides);
  } else if (source.inline_config != nullptr) {
    const std::string name = Field(source.where, "inline_config");
    google::protobuf::Value value;
    *value.mutable_struct_value() = *source.inline_config;
    absl::StatusOr<RunConfig> config =
        ParseRunConfig(FormatJson(value), name, overrides);
    if (!config.ok()) return config.status();
    resolved = ResolvedRunSpec{*std::move(config), name};
  } else {
    resolved = FromModelDefault(source, overrides, registry);
  }
  if (!resolved.ok()) return resolved.status();
  if (resolved->config.pipeline().empty()) {
    resolved->config.set_pipeline(kDefaultPipeline);
  }
  return resolved;
}

absl::Status ValidateRunSpec(const RunConfig& config,
                             const PluginRegistry& registry) {
  // A composite pipeline's config has no training sections of its own, and
  // a config read without a model (it came from --model) has them checked
  // once the model is set.
  absl::StatusOr<const PipelineEntry*> pipeline =
      registry.FindPipeline(config.pipeline());
  if (pipeline.ok() && !(*pipeline)->composite && !config.model().empty()) {
    RETURN_IF_ERROR(ValidateRunConfig(config));
  }
  return registry.CheckConfig(config);
}

}  // namespace ouroboros
