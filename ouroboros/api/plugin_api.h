// How a plugin .so declares what it provides.
//
// At the bottom of a plugin's .cc, one macro per thing it provides:
//
//   OUROBOROS_REGISTER_MODEL("mlp", "Multi-layer perceptron baseline",
//                            MakeMlp, kDefaultConfigJson, ValidateMlpConfig,
//                            SectionDefaultsOf<MlpConfig>());
//   OUROBOROS_REGISTER_DATA_SOURCE("quine_coordinates", "...",
//                                  MakeCoordinates, ValidateCoordinates,
//                                  nullptr);
//   OUROBOROS_REGISTER_OPTIMIZER("sgd", "Stochastic gradient descent", MakeSgd,
//                                ValidateSgdConfig,
//                                SectionDefaultsOf<SgdParams>());
//   OUROBOROS_REGISTER_PIPELINE("train", "One training run", MakeTrain,
//                               nullptr, nullptr);
//   OUROBOROS_REGISTER_HOOK("introspection_jump", "...", MakeJump,
//                           ValidateJumpConfig,
//                           SectionDefaultsOf<JumpHookConfig>());
//
// The last two arguments of each: a ConfigValidator (or nullptr) that checks
// the plugin's own config section before anything runs, and its
// SectionDefaults (config.h; or nullptr: no section of its own), which
// fills the section's defaults for config.json and --print_config.
//
// and link the plugin with //ouroboros/api:plugin_entry (the ouroboros_plugin()
// Bazel macro does both the linking and the .so). The macros only queue the
// entries inside the plugin; the core's loader dlopen()s the .so, reads
// ouroboros_plugin_info(), refuses a plugin built against another ABI version
// and only then registers the queued entries, all or none.
#ifndef OUROBOROS_API_PLUGIN_API_H_
#define OUROBOROS_API_PLUGIN_API_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "ouroboros/api/registry.h"

namespace ouroboros {

// Bump whenever a public core header changes in a way that breaks plugins
// built against the old one (a class layout, a virtual function, a factory
// signature).
inline constexpr uint32_t kPluginAbiVersion = 15;

// What ouroboros_plugin_info() returns. abi_version must stay the first field
// of every future version: the loader reads it before anything else.
struct PluginInfo {
  uint32_t abi_version;
  // Registers every queued entry into `registry`, stamped with `source`.
  absl::Status (*register_all)(PluginRegistry& registry,
                               const std::string& source);
};

namespace plugin_internal {

using Registration =
    std::function<absl::Status(PluginRegistry&, const std::string& source)>;

// The entries one plugin .so queued. Hidden visibility gives every .so (and
// every executable) its own list, even when several are loaded.
__attribute__((visibility("hidden"))) inline std::vector<Registration>&
QueuedRegistrations() {
  static auto* queued = new std::vector<Registration>;
  return *queued;
}

struct Registrar {
  explicit Registrar(Registration registration) {
    QueuedRegistrations().push_back(std::move(registration));
  }
};

}  // namespace plugin_internal
}  // namespace ouroboros

// The one C entry point every plugin .so exports (defined by
// //ouroboros/api:plugin_entry).
extern "C" const ouroboros::PluginInfo* ouroboros_plugin_info();

#define OUROBOROS_INTERNAL_CONCAT2(a, b) a##b
#define OUROBOROS_INTERNAL_CONCAT(a, b) OUROBOROS_INTERNAL_CONCAT2(a, b)
#define OUROBOROS_INTERNAL_REGISTER(EntryType, ...)                            \
  static ::ouroboros::plugin_internal::Registrar OUROBOROS_INTERNAL_CONCAT(    \
      ouroboros_registrar_, __LINE__)(                                         \
      [](::ouroboros::PluginRegistry& registry, const std::string& source) {   \
        return registry.Register(::ouroboros::EntryType{__VA_ARGS__, source}); \
      })

// name, one-line description, ModelFactory, default run config (JSON),
// ConfigValidator or nullptr, SectionDefaults of model_config or nullptr.
#define OUROBOROS_REGISTER_MODEL(name, description, factory, default_config, \
                                 validator, section_defaults)                \
  OUROBOROS_INTERNAL_REGISTER(ModelEntry, name, description, factory,        \
                              default_config, validator, section_defaults)
// name, one-line description, DataSourceFactory, ConfigValidator or nullptr,
// SectionDefaults of data_config.source_config or nullptr.
#define OUROBOROS_REGISTER_DATA_SOURCE(name, description, factory, validator, \
                                       section_defaults)                      \
  OUROBOROS_INTERNAL_REGISTER(DataSourceEntry, name, description, factory,    \
                              validator, section_defaults)

// name, one-line description, OptimizerFactory, ConfigValidator or nullptr,
// SectionDefaults of optim_config.params or nullptr.
#define OUROBOROS_REGISTER_OPTIMIZER(name, description, factory, validator, \
                                     section_defaults)                      \
  OUROBOROS_INTERNAL_REGISTER(OptimizerEntry, name, description, factory,   \
                              validator, section_defaults)
// name, one-line description, PipelineFactory, ConfigValidator or nullptr,
// SectionDefaults of pipeline_config or nullptr.
#define OUROBOROS_REGISTER_PIPELINE(name, description, factory, validator, \
                                    section_defaults)                      \
  OUROBOROS_INTERNAL_REGISTER(PipelineEntry, name, description, factory,   \
                              validator, section_defaults)

// name, one-line description, HookFactory, HookConfigValidator or nullptr,
// SectionDefaults of its hooks[i].config or nullptr.
#define OUROBOROS_REGISTER_HOOK(name, description, factory, validator, \
                                section_defaults)                      \
  OUROBOROS_INTERNAL_REGISTER(HookEntry, name, description, factory,   \
                              validator, section_defaults)

// name, one-line description, HookFactory: a hook that runs in every Trainer
// run of the process, named in no config (HookEntry::in_every_run).
#define OUROBOROS_REGISTER_HOOK_FOR_EVERY_RUN(name, description, factory)    \
  static ::ouroboros::plugin_internal::Registrar OUROBOROS_INTERNAL_CONCAT(  \
      ouroboros_registrar_, __LINE__)(                                       \
      [](::ouroboros::PluginRegistry& registry, const std::string& source) { \
        ::ouroboros::HookEntry entry{name,    description, factory,          \
                                     nullptr, nullptr,     source};          \
        entry.in_every_run = true;                                           \
        return registry.Register(std::move(entry));                          \
      })

// The same for a pipeline that runs other configs rather than a model of its
// own (PipelineEntry::composite).
#define OUROBOROS_REGISTER_COMPOSITE_PIPELINE(name, description, factory,      \
                                              validator, section_defaults)     \
  static ::ouroboros::plugin_internal::Registrar OUROBOROS_INTERNAL_CONCAT(    \
      ouroboros_registrar_, __LINE__)(                                         \
      [](::ouroboros::PluginRegistry& registry, const std::string& source) {   \
        ::ouroboros::PipelineEntry entry{name,      description,      factory, \
                                         validator, section_defaults, source}; \
        entry.composite = true;                                                \
        return registry.Register(std::move(entry));                            \
      })

#endif  // OUROBOROS_API_PLUGIN_API_H_
