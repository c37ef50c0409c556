// The plugin registry: models, data sources, optimizers, pipelines and hooks
// by name.
//
// One instance, PluginRegistry::Global(), lives in libouroboros_core.so and is
// shared by main and every plugin .so it loads. Plugins do not call Register()
// themselves: they use the OUROBOROS_REGISTER_* macros of plugin_api.h, and the
// loader registers their entries once the plugin's ABI version checks out.
//
//   absl::StatusOr<const ModelEntry*> mlp = registry.FindModel("mlp");
//   if (!mlp.ok()) return mlp.status();  // "unknown model 'x'; known: mlp,
//   ..." auto model = (*mlp)->factory(context);
#ifndef OUROBOROS_API_REGISTRY_H_
#define OUROBOROS_API_REGISTRY_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ouroboros/api/interfaces.h"
#include "ouroboros/config/config.h"

namespace ouroboros {

enum class PluginKind { kModel, kDataSource, kOptimizer, kPipeline, kHook };

// "model", "data source", "optimizer", "pipeline", "hook".
absl::string_view PluginKindName(PluginKind kind);

using ModelFactory =
    std::function<absl::StatusOr<std::unique_ptr<Model>>(const ModelContext&)>;
// The splits of a run's data (config.data_config), reproducible from the
// seed; errors name the file or the field.
using DataSourceFactory =
    std::function<absl::StatusOr<DataSplits>(const DataSourceContext&)>;
using OptimizerFactory =
    std::function<absl::StatusOr<std::unique_ptr<torch::optim::Optimizer>>(
        const OptimizerContext&)>;
using PipelineFactory = std::function<absl::StatusOr<std::unique_ptr<Pipeline>>(
    const PipelineContext&)>;
using HookFactory = std::function<absl::StatusOr<std::unique_ptr<TrainerHook>>(
    const HookContext&)>;

// Checks a plugin's own config section(s) without building anything, so
// that main can refuse a bad config before it creates the run directory.
// Errors read "field.path: reason". May be empty (nothing to check).
using ConfigValidator = std::function<absl::Status(const RunConfig&)>;

struct ModelEntry {
  std::string name;
  std::string description;  // one line, shown by --list_plugins
  ModelFactory factory;
  // A complete run config (JSON) that runs this model when no --config given.
  std::string default_config_json;
  ConfigValidator validate_config;
  // model_config with every default filled in (config.h); may be empty.
  SectionDefaults section_defaults;
  std::string source;  // the .so it came from (set by the loader)
};

// Named by data_config.dataset. Its validator checks data_config (its own
// section is data_config.source_config) against the rest of the config.
struct DataSourceEntry {
  std::string name;
  std::string description;
  DataSourceFactory factory;
  ConfigValidator validate_config;
  // data_config.source_config with its defaults; may be empty.
  SectionDefaults section_defaults;
  std::string source;
};

struct OptimizerEntry {
  std::string name;
  std::string description;
  OptimizerFactory factory;
  ConfigValidator validate_config;
  // optim_config.params with its defaults; may be empty.
  SectionDefaults section_defaults;
  std::string source;
};

struct PipelineEntry {
  std::string name;
  std::string description;
  PipelineFactory factory;
  ConfigValidator validate_config;
  // pipeline_config with its defaults; may be empty.
  SectionDefaults section_defaults;
  std::string source;
  // Runs other configs (e.g. several pipelines side by side): its own config
  // needs no model, data or training sections, only its pipeline_config.
  bool composite = false;
};

// Checks one hook's `config` section; errors read "<section_path>.<field>:
// reason" (section_path is e.g. "hooks[0].config"). `config` is the whole
// run config, for checks against other sections (e.g. the optimizer).
using HookConfigValidator = std::function<absl::Status(
    const google::protobuf::Struct& section, absl::string_view section_path,
    const RunConfig& config)>;

struct HookEntry {
  std::string name;
  std::string description;
  HookFactory factory;
  HookConfigValidator validate_config;
  // Its hooks[i].config with its defaults; may be empty.
  SectionDefaults section_defaults;
  std::string source;
  // Runs in every Trainer run of a process that loaded it, without being
  // named in the config (HookContext::index is -1 and there is no section),
  // after the step's own work (its evaluation and checkpoint). For test
  // seams such as fault injection (tests/fault_injection), and profilers.
  bool in_every_run = false;
};

// One row of PluginRegistry::List().
struct RegisteredPlugin {
  PluginKind kind;
  std::string name;
  std::string description;
  std::string source;
};

class PluginRegistry {
 public:
  PluginRegistry() = default;
  PluginRegistry(const PluginRegistry&) = delete;
  PluginRegistry& operator=(const PluginRegistry&) = delete;

  // The process-wide registry that main and the loaded plugins share.
  static PluginRegistry& Global();

  // AlreadyExists if the name is taken for that kind (the message names both
  // sources); InvalidArgument for an empty name or a missing factory.
  absl::Status Register(ModelEntry entry);
  absl::Status Register(DataSourceEntry entry);
  absl::Status Register(OptimizerEntry entry);
  absl::Status Register(PipelineEntry entry);
  absl::Status Register(HookEntry entry);

  // NotFound listing the known names of that kind.
  absl::StatusOr<const ModelEntry*> FindModel(absl::string_view name) const;
  absl::StatusOr<const DataSourceEntry*> FindDataSource(
      absl::string_view name) const;
  absl::StatusOr<const OptimizerEntry*> FindOptimizer(
      absl::string_view name) const;
  absl::StatusOr<const PipelineEntry*> FindPipeline(
      absl::string_view name) const;
  absl::StatusOr<const HookEntry*> FindHook(absl::string_view name) const;
  // The hooks registered with in_every_run, by name.
  std::vector<const HookEntry*> HooksForEveryRun() const;

  std::vector<std::string> Names(PluginKind kind) const;
  // Every entry, ordered by kind then name.
  std::vector<RegisteredPlugin> List() const;

  // Finds config.model(), data_config.dataset, optim_config.name,
  // config.pipeline() and every hook (NotFound listing the known names) and
  // runs their validators.
  absl::Status CheckConfig(const RunConfig& config) const;

  // Fills every plugin section of `config` with its defaults (the entries'
  // SectionDefaults: model_config, data_config.source_config,
  // optim_config.params, pipeline_config, hooks[i].config), so that
  // config.json and --print_config show every value in force. Sections of
  // names not registered are left as they are (CheckConfig reports them).
  // Errors read "<section>.<field>: reason", as the plugin's parser says.
  absl::Status FillDefaults(RunConfig* config) const;

  // Removes every entry registered from `source` (rolls back a plugin whose
  // registration failed half-way).
  void RemoveSource(absl::string_view source);

 private:
  template <typename Entry>
  struct Table {
    std::map<std::string, Entry, std::less<>> entries;
  };
  template <typename Entry>
  absl::Status Add(PluginKind kind, Table<Entry>& table, Entry entry);
  template <typename Entry>
  absl::StatusOr<const Entry*> Find(PluginKind kind, const Table<Entry>& table,
                                    absl::string_view name) const;

  Table<ModelEntry> models_;
  Table<DataSourceEntry> data_sources_;
  Table<OptimizerEntry> optimizers_;
  Table<PipelineEntry> pipelines_;
  Table<HookEntry> hooks_;
};

}  // namespace ouroboros

#endif  // OUROBOROS_API_REGISTRY_H_
