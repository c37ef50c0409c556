// One run's config from wherever it is given: a file, a JSON object inside
// another config, or a model's embedded default, then the overrides. main
// (--config / --model), tune, parallel and the introspective demo all
// resolve their runs here, so every one reads configs the same way.
//
//   RunSpecSource source;
//   source.where = "pipeline_config.pipelines[2]";
//   source.config_file = spec.config();
//   ASSIGN_OR_RETURN(ResolvedRunSpec run,
//                    ResolveRunSpec(source, {"seed=3"}, &registry));
//   // run.config: pipeline filled in ("train" when the config names none)
#ifndef OUROBOROS_RUNS_RUN_SPEC_H_
#define OUROBOROS_RUNS_RUN_SPEC_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/struct.pb.h"
#include "ouroboros/config/config.pb.h"

namespace ouroboros {

class PluginRegistry;

// Exactly one of config_file, inline_config and model.
struct RunSpecSource {
  // Names the spec in messages ("pipeline_config.record"); empty for the
  // command line, whose errors name the file or the --model flag.
  std::string where;
  // As the user typed it; relative to the directory the command was typed
  // in (UserPath).
  std::string config_file;
  const google::protobuf::Struct* inline_config = nullptr;
  // A model plugin whose embedded default config to run (needs a registry).
  std::string model;
};

struct ResolvedRunSpec {
  RunConfig config;
  // Where the config came from, for messages: the file, the inline
  // config's field, or "<default config of model 'mlp'>".
  std::string source;
};

// Reads the config, applies `overrides` ("field.path=value") in order and
// fills in kDefaultPipeline when it names no pipeline. Syntax and the core
// sections are checked as ParseRunConfig does; the plugins' sections are
// not (ValidateRunSpec).
absl::StatusOr<ResolvedRunSpec> ResolveRunSpec(
    const RunSpecSource& source, const std::vector<std::string>& overrides,
    const PluginRegistry* registry);

// The whole config against the loaded plugins: every name is known, and the
// training sections (for a pipeline that trains a model) and every plugin's
// own section are valid. "field.path: reason" on failure.
absl::Status ValidateRunSpec(const RunConfig& config,
                             const PluginRegistry& registry);

}  // namespace ouroboros

#endif  // OUROBOROS_RUNS_RUN_SPEC_H_
