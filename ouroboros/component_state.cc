#include "ouroboros/component_state.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"

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

}  // namespace ouroboros
