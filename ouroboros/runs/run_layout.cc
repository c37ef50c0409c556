#include "ouroboros/runs/run_layout.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace ouroboros {

std::string RunFile(absl::string_view run_dir, absl::string_view name) {
  return absl::StrCat(run_dir, "/", name);
}

std::string CheckpointDir(absl::string_view run_dir) {
  return RunFile(run_dir, kCheckpointDir);
}

std::string CheckpointFile(absl::string_view run_dir, absl::string_view name) {
  return absl::StrCat(run_dir, "/", kCheckpointDir, "/", name);
}

std::string CheckpointFileName(int64_t step) {
  return absl::StrFormat("%s%09d%s", kCheckpointPrefix, step,
                         kCheckpointExtension);
}

bool IsStepCheckpointName(absl::string_view file_name) {
  return absl::StartsWith(file_name, kCheckpointPrefix) &&
         absl::EndsWith(file_name, kCheckpointExtension);
}

std::string WeightsPathFor(absl::string_view checkpoint_path) {
  absl::ConsumeSuffix(&checkpoint_path, kCheckpointExtension);
  return absl::StrCat(checkpoint_path, kWeightsExtension);
}

}  // namespace ouroboros
