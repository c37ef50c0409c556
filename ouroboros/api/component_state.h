// State a model, hook or data generator keeps beyond its module's tensors (a
// cursor, a counter, a shuffled order, snapshots), saved in the checkpoint
// with everything else so that a resumed run continues exactly.
//
//   absl::Status SaveState(ComponentState* state) const override {
//     state->SetInt("cursor", cursor_);
//     state->SetTensor("order", order_);
//     return absl::OkStatus();
//   }
//   absl::Status LoadState(const ComponentState& state) override {
//     ASSIGN_OR_RETURN(cursor_, state.GetInt("cursor"));
//     ASSIGN_OR_RETURN(order_, state.GetTensor("order"));
//     return absl::OkStatus();
//   }
//
// As Lightning's on_save_checkpoint / on_load_checkpoint and PyTorch's
// get_extra_state. The Trainer saves each component's state under its
// owner's name ("model mlp", "hooks[0] introspection_record"); the file's
// CRC32C covers it. A component that writes nothing has no state. On resume
// a component whose state is missing from the checkpoint, or whose LoadState
// fails ("does not parse"), stops the run with an error naming the owner.
#ifndef OUROBOROS_API_COMPONENT_STATE_H_
#define OUROBOROS_API_COMPONENT_STATE_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ouroboros {

class ComponentState {
 public:
  template <typename T>
  using Entries = std::map<std::string, T, std::less<>>;

  void SetInt(const std::string& key, int64_t value) { ints_[key] = value; }
  void SetDouble(const std::string& key, double value) {
    doubles_[key] = value;
  }
  void SetString(const std::string& key, std::string value) {
    strings_[key] = std::move(value);
  }
  // Saved as it is at the call (the checkpoint writes it before anything
  // else runs).
  void SetTensor(const std::string& key, at::Tensor value) {
    tensors_[key] = std::move(value);
  }

  // NotFound naming the key and its kind when the state has no such entry.
  absl::StatusOr<int64_t> GetInt(absl::string_view key) const;
  absl::StatusOr<double> GetDouble(absl::string_view key) const;
  absl::StatusOr<std::string> GetString(absl::string_view key) const;
  absl::StatusOr<at::Tensor> GetTensor(absl::string_view key) const;
  bool Has(absl::string_view key) const;

  bool empty() const {
    return ints_.empty() && doubles_.empty() && strings_.empty() &&
           tensors_.empty();
  }
  bool operator==(const ComponentState& other) const;

  const Entries<int64_t>& ints() const { return ints_; }
  const Entries<double>& doubles() const { return doubles_; }
  const Entries<std::string>& strings() const { return strings_; }
  const Entries<at::Tensor>& tensors() const { return tensors_; }

 private:
  Entries<int64_t> ints_;
  Entries<double> doubles_;
  Entries<std::string> strings_;
  Entries<at::Tensor> tensors_;
};

// Owner name -> its state, as a checkpoint holds them.
using ComponentStates = std::map<std::string, ComponentState>;

// Something with checkpointed state; Model, TrainerHook and SampleGenerator
// derive from it. Both default to no state.
class Stateful {
 public:
  virtual ~Stateful() = default;
  // Called when a checkpoint is written (after the step, epoch or hook work
  // it follows). Writes nothing by default.
  virtual absl::Status SaveState(ComponentState* /*state*/) const {
    return absl::OkStatus();
  }
  // Called once on resume, before training goes on (hooks: before their
  // OnTrainBegin), with what SaveState wrote.
  virtual absl::Status LoadState(const ComponentState& /*state*/) {
    return absl::OkStatus();
  }
};

// A component and the name its state has in a checkpoint ("model mlp",
// "hooks[0] record").
using NamedComponent = std::pair<std::string, Stateful*>;

// Each component's SaveState, keeping those that wrote something; an error
// names the component.
absl::StatusOr<ComponentStates> CollectComponentStates(
    const std::vector<NamedComponent>& components);

// On resume: each component's LoadState from `saved`, what the checkpoint
// `checkpoint` holds. A component with state but none saved is an error
// (another config wrote the checkpoint), unless the checkpoint predates
// component states (`saved_by_a_version_with_states` false: a warning, and
// the component starts afresh). A saved state that no component claims is
// a warning.
absl::Status RestoreComponentStates(
    const std::vector<NamedComponent>& components, ComponentStates saved,
    bool saved_by_a_version_with_states, const std::string& checkpoint);

}  // namespace ouroboros

#endif  // OUROBOROS_API_COMPONENT_STATE_H_
