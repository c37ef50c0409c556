// A minimal valid plugin for the loader tests: one model, one pipeline.
#include <memory>

#include "ouroboros/api/plugin_api.h"

namespace {

absl::StatusOr<std::unique_ptr<ouroboros::Model>> MakeNothing(
    const ouroboros::ModelContext&) {
  return absl::UnimplementedError("test model");
}

absl::StatusOr<std::unique_ptr<ouroboros::Pipeline>> MakeNoPipeline(
    const ouroboros::PipelineContext&) {
  return absl::UnimplementedError("test pipeline");
}

}  // namespace

// Lets a test check that this plugin and the host share one registry.
extern "C" __attribute__((visibility("default"))) void*
good_plugin_global_registry() {
  return &ouroboros::PluginRegistry::Global();
}

OUROBOROS_REGISTER_MODEL("test_model", "A model for the loader tests",
                         MakeNothing, "", nullptr, nullptr);
OUROBOROS_REGISTER_PIPELINE("test_pipeline", "A pipeline for the loader tests",
                            MakeNoPipeline, nullptr, nullptr);
