// Run configs: JSON files checked against the schema in config.proto.
//
//   absl::StatusOr<RunConfig> config =
//       LoadRunConfigFile("configs/mlp.json", {"optim_config.lr=0.01"});
//   // error: "configs/mlp.json: optim_config.lr: must be > 0 (got -1)"
//
// Reading is strict: JSON syntax errors give line and column, duplicate keys
// and unknown fields are errors, values must have the field's type, and the
// core sections are validated (learning rate > 0, batch size >= 1, ...).
// Plugins parse their own sections (model_config, ...) with
// ParseConfigSection(), which is just as strict and names the full path.
#ifndef OUROBOROS_CONFIG_CONFIG_H_
#define OUROBOROS_CONFIG_CONFIG_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "google/protobuf/struct.pb.h"
#include "ouroboros/config/config.pb.h"
#include "ouroboros/config/config_defaults.h"

namespace ouroboros {

// The pipeline of a config that names none: one Trainer run.
inline constexpr char kDefaultPipeline[] = "train";

// Parses `json` (read from `source`, used in messages), applies the
// "field.path=value" `overrides` in order, and validates the result. A value
// that is valid JSON is used as such ("3", "[64,32]", "\"adam\""); anything
// else is taken as a string ("adam").
absl::StatusOr<RunConfig> ParseRunConfig(
    absl::string_view json, absl::string_view source,
    const std::vector<std::string>& overrides = {});

// Reads the file and calls ParseRunConfig; NotFound if it cannot be read.
absl::StatusOr<RunConfig> LoadRunConfigFile(
    const std::string& path, const std::vector<std::string>& overrides = {});

// Prefixes a "field.path: reason" error with where that field's value came
// from: "--set=<override>" when one of `overrides` wrote it, else `source`.
absl::Status AttributeConfigError(const absl::Status& error,
                                  absl::string_view source,
                                  const std::vector<std::string>& overrides);

// Fills the core sections' defaults: the ones config.proto declares, then
// score_config.mode (min for a monitored loss, else max). ParseRunConfig
// does it; so does the Trainer, for a config built in code.
absl::Status FillCoreDefaults(RunConfig* config);

// Semantic checks of the core sections; "field.path: reason" on failure.
absl::Status ValidateRunConfig(const RunConfig& config);
// Only the run name (all a composite pipeline's own config needs).
absl::Status ValidateRunName(const RunConfig& config);

// Strictly parses a plugin's section into its own message and fills the
// fields it leaves out from their declared defaults (config_defaults.h).
// Errors read "<section_path>.<field>: <reason>".
absl::Status ParseConfigSection(const google::protobuf::Struct& section,
                                absl::string_view section_path,
                                google::protobuf::Message* out);

// ParseConfigSection into a new message of type Section:
//   ASSIGN_OR_RETURN(MlpConfig mlp,
//                    ParseSection<MlpConfig>(config.model_config(),
//                                            "model_config"));
template <typename Section>
absl::StatusOr<Section> ParseSection(const google::protobuf::Struct& section,
                                     absl::string_view section_path) {
  Section parsed;
  absl::Status status = ParseConfigSection(section, section_path, &parsed);
  if (!status.ok()) return status;
  return parsed;
}

// A plugin's section with every default filled in, as config.json and
// --print_config show it: the declared ones, then any the plugin derives
// from other fields (of the section, or of the whole `config`). A plugin
// registers one with its section's message:
//   OUROBOROS_REGISTER_MODEL(..., SectionDefaultsOf<MlpConfig>());
//   OUROBOROS_REGISTER_MODEL(..., SectionDefaultsOf<HypernetworkConfig>(
//                                     FillDerivedDefaults));
// where FillDerivedDefaults(HypernetworkConfig*, const RunConfig&) is the
// function the plugin's own parser calls after ParseSection. It may see a
// section that its validator will refuse, and must leave such values be.
using SectionDefaults = std::function<absl::StatusOr<google::protobuf::Struct>(
    const google::protobuf::Struct& section, absl::string_view section_path,
    const RunConfig& config)>;

template <typename Section>
SectionDefaults SectionDefaultsOf(void (*derive)(Section*,
                                                 const RunConfig&) = nullptr) {
  return
      [derive](
          const google::protobuf::Struct& section,
          absl::string_view section_path,
          const RunConfig& config) -> absl::StatusOr<google::protobuf::Struct> {
        absl::StatusOr<Section> parsed =
            ParseSection<Section>(section, section_path);
        if (!parsed.ok()) return parsed.status();
        if (derive != nullptr) derive(&*parsed, config);
        return MessageToStruct(*parsed);
      };
}

// The resolved config as pretty JSON (every field, defaults included), which
// ParseRunConfig reads back to the same config.
std::string RunConfigToJson(const RunConfig& config);

}  // namespace ouroboros

#endif  // OUROBOROS_CONFIG_CONFIG_H_
