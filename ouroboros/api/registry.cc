#include "ouroboros/api/registry.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "glog/logging.h"
#include "ouroboros/api/data.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/status_macros.h"

namespace ouroboros {
namespace {

template <typename Entry>
std::vector<std::string> KeysOf(
    const std::map<std::string, Entry, std::less<>>& entries) {
  std::vector<std::string> names;
  names.reserve(entries.size());
  for (const auto& [name, entry] : entries) names.push_back(name);
  return names;
}

template <typename Entry>
void EraseSource(std::map<std::string, Entry, std::less<>>& entries,
                 absl::string_view source) {
  for (auto it = entries.begin(); it != entries.end();) {
    it = it->second.source == source ? entries.erase(it) : std::next(it);
  }
}

}  // namespace

absl::string_view PluginKindName(PluginKind kind) {
  switch (kind) {
    case PluginKind::kModel:
      return "model";
    case PluginKind::kDataSource:
      return "data source";
    case PluginKind::kOptimizer:
      return "optimizer";
    case PluginKind::kPipeline:
      return "pipeline";
    case PluginKind::kHook:
      return "hook";
  }
  return "unknown";
}

PluginRegistry& PluginRegistry::Global() {
  // Leaked on purpose: plugins may still hold entries at exit.
  static PluginRegistry* registry = [] {
    auto* global = new PluginRegistry;
    absl::Status status = RegisterBuiltinDataSources(*global);
    if (!status.ok()) LOG(ERROR) << status;
    return global;
  }();
  return *registry;
}

template <typename Entry>
absl::Status PluginRegistry::Add(PluginKind kind, Table<Entry>& table,
                                 Entry entry) {
  if (entry.name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a ", PluginKindName(kind), " from ", entry.source, " has no name"));
  }
  if (!entry.factory) {
    return absl::InvalidArgumentError(
        absl::StrCat(PluginKindName(kind), " '", entry.name, "' from ",
                     entry.source, " has no factory"));
  }
  auto it = table.entries.find(entry.name);
  if (it != table.entries.end()) {
    return absl::AlreadyExistsError(absl::StrCat(
        PluginKindName(kind), " '", entry.name, "' from ", entry.source,
        " is already registered by ", it->second.source));
  }
  std::string name = entry.name;
  table.entries.emplace(std::move(name), std::move(entry));
  return absl::OkStatus();
}

template <typename Entry>
absl::StatusOr<const Entry*> PluginRegistry::Find(
    PluginKind kind, const Table<Entry>& table, absl::string_view name) const {
  auto it = table.entries.find(name);
  if (it != table.entries.end()) return &it->second;
  std::vector<std::string> known = KeysOf(table.entries);
  return absl::NotFoundError(absl::StrCat(
      "unknown ", PluginKindName(kind), " '", name, "'; known ",
      PluginKindName(kind),
      "s: ", known.empty() ? "(none loaded)" : absl::StrJoin(known, ", ")));
}

absl::Status PluginRegistry::Register(ModelEntry entry) {
  return Add(PluginKind::kModel, models_, std::move(entry));
}
absl::Status PluginRegistry::Register(DataSourceEntry entry) {
  return Add(PluginKind::kDataSource, data_sources_, std::move(entry));
}
absl::Status PluginRegistry::Register(OptimizerEntry entry) {
  return Add(PluginKind::kOptimizer, optimizers_, std::move(entry));
}
absl::Status PluginRegistry::Register(PipelineEntry entry) {
  return Add(PluginKind::kPipeline, pipelines_, std::move(entry));
}
absl::Status PluginRegistry::Register(HookEntry entry) {
  return Add(PluginKind::kHook, hooks_, std::move(entry));
}

absl::StatusOr<const ModelEntry*> PluginRegistry::FindModel(
    absl::string_view name) const {
  return Find(PluginKind::kModel, models_, name);
}
absl::StatusOr<const DataSourceEntry*> PluginRegistry::FindDataSource(
    absl::string_view name) const {
  return Find(PluginKind::kDataSource, data_sources_, name);
}
absl::StatusOr<const OptimizerEntry*> PluginRegistry::FindOptimizer(
    absl::string_view name) const {
  return Find(PluginKind::kOptimizer, optimizers_, name);
}
absl::StatusOr<const PipelineEntry*> PluginRegistry::FindPipeline(
    absl::string_view name) const {
  return Find(PluginKind::kPipeline, pipelines_, name);
}
absl::StatusOr<const HookEntry*> PluginRegistry::FindHook(
    absl::string_view name) const {
  return Find(PluginKind::kHook, hooks_, name);
}

std::vector<const HookEntry*> PluginRegistry::HooksForEveryRun() const {
  std::vector<const HookEntry*> every_run;
  for (const auto& [name, entry] : hooks_.entries) {
    if (entry.in_every_run) every_run.push_back(&entry);
  }
  return every_run;
}

std::vector<std::string> PluginRegistry::Names(PluginKind kind) const {
  switch (kind) {
    case PluginKind::kModel:
      return KeysOf(models_.entries);
    case PluginKind::kDataSource:
      return KeysOf(data_sources_.entries);
    case PluginKind::kOptimizer:
      return KeysOf(optimizers_.entries);
    case PluginKind::kPipeline:
      return KeysOf(pipelines_.entries);
    case PluginKind::kHook:
      return KeysOf(hooks_.entries);
  }
  return {};
}

std::vector<RegisteredPlugin> PluginRegistry::List() const {
  std::vector<RegisteredPlugin> rows;
  auto add = [&rows](PluginKind kind, const auto& entries) {
    for (const auto& [name, e] : entries) {
      rows.push_back({kind, name, e.description, e.source});
    }
  };
  add(PluginKind::kModel, models_.entries);
  add(PluginKind::kDataSource, data_sources_.entries);
  add(PluginKind::kOptimizer, optimizers_.entries);
  add(PluginKind::kPipeline, pipelines_.entries);
  add(PluginKind::kHook, hooks_.entries);
  return rows;
}

absl::Status PluginRegistry::CheckConfig(const RunConfig& config) const {
  // An unknown or missing name is reported at the field that names it.
  auto at_field = [](absl::string_view field, const absl::Status& status) {
    return absl::Status(status.code(),
                        absl::StrCat(field, ": ", status.message()));
  };
  absl::StatusOr<const PipelineEntry*> pipeline =
      FindPipeline(config.pipeline());
  if (!pipeline.ok()) return at_field("pipeline", pipeline.status());
  if ((*pipeline)->composite) {
    // Its own config only says what to run; the runs check their configs.
    if (!(*pipeline)->validate_config) return absl::OkStatus();
    return (*pipeline)->validate_config(config);
  }
  if (config.model().empty()) {
    return ConfigFieldError("model", "missing: give --model");
  }
  absl::StatusOr<const ModelEntry*> model = FindModel(config.model());
  if (!model.ok()) return at_field("model", model.status());
  absl::StatusOr<const DataSourceEntry*> data =
      FindDataSource(config.data_config().dataset());
  if (!data.ok()) return at_field("data_config.dataset", data.status());
  absl::StatusOr<const OptimizerEntry*> optimizer =
      FindOptimizer(config.optim_config().name());
  if (!optimizer.ok()) return at_field("optim_config.name", optimizer.status());
  for (const ConfigValidator* validate :
       {&(*model)->validate_config, &(*data)->validate_config,
        &(*optimizer)->validate_config, &(*pipeline)->validate_config}) {
    if (!*validate) continue;
    RETURN_IF_ERROR((*validate)(config));
  }
  for (int i = 0; i < config.hooks_size(); ++i) {
    const std::string field = absl::StrCat("hooks[", i, "]");
    absl::StatusOr<const HookEntry*> hook = FindHook(config.hooks(i).name());
    if (!hook.ok()) return at_field(field + ".name", hook.status());
    if (!(*hook)->validate_config) continue;
    RETURN_IF_ERROR((*hook)->validate_config(config.hooks(i).config(),
                                             field + ".config", config));
  }
  return absl::OkStatus();
}

absl::Status PluginRegistry::FillDefaults(RunConfig* config) const {
  // `entry` (if registered) fills the section at `path`.
  const auto fill = [config](const auto& entry, absl::string_view path,
                             google::protobuf::Struct* section) {
    if (!entry.ok() || !(*entry)->section_defaults) return absl::OkStatus();
    absl::StatusOr<google::protobuf::Struct> filled =
        (*entry)->section_defaults(*section, path, *config);
    if (!filled.ok()) return filled.status();
    *section = *std::move(filled);
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(fill(FindPipeline(config->pipeline()), "pipeline_config",
                       config->mutable_pipeline_config()));
  if (!config->model().empty()) {
    RETURN_IF_ERROR(fill(FindModel(config->model()), "model_config",
                         config->mutable_model_config()));
  }
  DataConfig& data = *config->mutable_data_config();
  if (!data.dataset().empty()) {
    RETURN_IF_ERROR(fill(FindDataSource(data.dataset()),
                         "data_config.source_config",
                         data.mutable_source_config()));
  }
  OptimConfig& optim = *config->mutable_optim_config();
  if (!optim.name().empty()) {
    RETURN_IF_ERROR(fill(FindOptimizer(optim.name()), "optim_config.params",
                         optim.mutable_params()));
  }
  for (int i = 0; i < config->hooks_size(); ++i) {
    HookConfig& hook = *config->mutable_hooks(i);
    RETURN_IF_ERROR(fill(FindHook(hook.name()),
                         absl::StrCat("hooks[", i, "].config"),
                         hook.mutable_config()));
  }
  return absl::OkStatus();
}

void PluginRegistry::RemoveSource(absl::string_view source) {
  EraseSource(models_.entries, source);
  EraseSource(data_sources_.entries, source);
  EraseSource(optimizers_.entries, source);
  EraseSource(pipelines_.entries, source);
  EraseSource(hooks_.entries, source);
}

}  // namespace ouroboros
