#include "ouroboros/api/component_state.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "glog/logging.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/status_macros.h"

namespace ouroboros {
namespace {

template <typename T>
absl::StatusOr<T> Lookup(const ComponentState::Entries<T>& entries,
                         absl::string_view key, absl::string_view kind) {
  auto it = entries.find(key);
  if (it == entries.end()) {
    return absl::NotFoundError(
        absl::StrCat("no ", kind, " '", key, "' in the saved state"));
  }
  return it->second;
}

}  // namespace

absl::StatusOr<int64_t> ComponentState::GetInt(absl::string_view key) const {
  return Lookup(ints_, key, "integer");
}

absl::StatusOr<double> ComponentState::GetDouble(absl::string_view key) const {
  return Lookup(doubles_, key, "number");
}

absl::StatusOr<std::string> ComponentState::GetString(
    absl::string_view key) const {
  return Lookup(strings_, key, "string");
}

absl::StatusOr<at::Tensor> ComponentState::GetTensor(
    absl::string_view key) const {
  return Lookup(tensors_, key, "tensor");
}

bool ComponentState::Has(absl::string_view key) const {
  return ints_.count(key) > 0 || doubles_.count(key) > 0 ||
         strings_.count(key) > 0 || tensors_.count(key) > 0;
}

bool ComponentState::operator==(const ComponentState& other) const {
  if (ints_ != other.ints_ || doubles_ != other.doubles_ ||
      strings_ != other.strings_ || tensors_.size() != other.tensors_.size()) {
    return false;
  }
  for (const auto& [key, tensor] : tensors_) {
    auto it = other.tensors_.find(key);
    if (it == other.tensors_.end() ||
        tensor.defined() != it->second.defined()) {
      return false;
    }
    if (tensor.defined() && (tensor.scalar_type() != it->second.scalar_type() ||
                             !at::equal(tensor, it->second))) {
      return false;
    }
  }
  return true;
}

absl::StatusOr<ComponentStates> CollectComponentStates(
    const std::vector<NamedComponent>& components) {
  ComponentStates states;
  for (const auto& [owner, component] : components) {
    ComponentState saved;
    absl::Status status = component->SaveState(&saved);
    if (!status.ok()) {
      return absl::Status(
          status.code(),
          absl::StrCat("saving the state of ", owner, ": ", status.message()));
    }
    if (!saved.empty()) states[owner] = std::move(saved);
  }
  return states;
}

absl::Status RestoreComponentStates(
    const std::vector<NamedComponent>& components, ComponentStates saved,
    bool saved_by_a_version_with_states, const std::string& checkpoint) {
  for (const auto& [owner, component] : components) {
    auto found = saved.find(owner);
    if (found == saved.end()) {
      // A component with nothing to save now had nothing saved then.
      ComponentState fresh;
      RETURN_IF_ERROR(component->SaveState(&fresh));
      if (fresh.empty()) continue;
      if (!saved_by_a_version_with_states) {
        LOG(WARNING) << absl::StrFormat(
            "%s was written before checkpoints held the components' own "
            "state; %s starts its state afresh, so this resumed run may "
            "differ from an uninterrupted one",
            checkpoint, owner);
        continue;
      }
      return absl::FailedPreconditionError(absl::StrFormat(
          "%s: the checkpoint holds no state of %s, which keeps state (was "
          "it written by another config?)",
          checkpoint, owner));
    }
    absl::Status status;
    const absl::Status thrown = CallTorch("loading the state of " + owner, [&] {
      status = component->LoadState(found->second);
    });
    if (!thrown.ok()) status = thrown;
    if (!status.ok()) {
      return absl::FailedPreconditionError(
          absl::StrFormat("%s: the state of %s does not parse: %s", checkpoint,
                          owner, status.message()));
    }
    LOG(INFO) << "resumed the own state of " << owner;
    saved.erase(found);
  }
  for (const auto& [owner, unused] : saved) {
    LOG(WARNING) << absl::StrFormat(
        "%s holds state of %s, which this run does not have; ignored",
        checkpoint, owner);
  }
  return absl::OkStatus();
}

}  // namespace ouroboros
