#include "ouroboros/runs/checkpoint.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize.h>
#include <torch/serialize/archive.h>
#include <torch/utils.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ouroboros/base/crc32c.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/files.h"
#include "ouroboros/base/status_macros.h"

namespace ouroboros {
namespace {

namespace fs = std::filesystem;

// File layout: magic (16 bytes), format version (u32), payload size (u64),
// CRC32C of the payload (u32), payload (a LibTorch archive). Little-endian.
constexpr char kMagic[16] = {'O', 'U', 'R', 'O', 'B', 'O', 'R',  'O',
                             'S', '-', 'C', 'K', 'P', 'T', '\n', '\0'};
constexpr uint32_t kFormatVersion = 1;
constexpr size_t kHeaderSize = 16 + 4 + 8 + 4;

template <typename T>
void PutLittleEndian(T value, std::string* out) {
  for (size_t i = 0; i < sizeof(T); ++i) {
    out->push_back(static_cast<char>((value >> (8 * i)) & 0xff));
  }
}

template <typename T>
T GetLittleEndian(const char* p) {
  T value = 0;
  for (size_t i = 0; i < sizeof(T); ++i) {
    value |= static_cast<T>(static_cast<unsigned char>(p[i])) << (8 * i);
  }
  return value;
}

// Parameters and buffers by their dotted names ("layers.linear0.weight").
c10::Dict<std::string, at::Tensor> NamedTensors(torch::nn::Module& module) {
  c10::Dict<std::string, at::Tensor> tensors;
  for (const auto& item : module.named_parameters()) {
    tensors.insert(item.key(), item.value().detach());
  }
  for (const auto& item : module.named_buffers()) {
    tensors.insert(item.key(), item.value());
  }
  return tensors;
}

// Copies saved tensors into the module's, checking that every name and shape
// matches (LibTorch's own Module::load would silently reshape).
void CopyNamedTensors(const c10::IValue& saved, torch::nn::Module& module) {
  std::map<std::string, at::Tensor> by_name;
  for (const auto& entry : saved.toGenericDict()) {
    by_name[entry.key().toStringRef()] = entry.value().toTensor();
  }
  auto targets = module.named_parameters();
  std::vector<std::pair<std::string, at::Tensor>> all;
  for (const auto& item : targets) all.emplace_back(item.key(), item.value());
  for (const auto& item : module.named_buffers()) {
    all.emplace_back(item.key(), item.value());
  }
  TORCH_CHECK(all.size() == by_name.size(), "the checkpoint has ",
              by_name.size(), " tensors, the model ", all.size());
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : all) {
    auto it = by_name.find(name);
    TORCH_CHECK(it != by_name.end(), "the checkpoint has no tensor '", name,
                "'");
    TORCH_CHECK(it->second.sizes() == tensor.sizes(), "tensor '", name,
                "' has shape ", it->second.sizes(), " in the checkpoint but ",
                tensor.sizes(), " in the model");
    tensor.copy_(it->second);
  }
}

// The components' states: the owners' names in order, then four typed
// dictionaries per owner, keyed by its index (archive keys cannot hold the
// owners' free-form names).
constexpr char kComponentOwnersKey[] = "component_owners";

std::string ComponentKey(size_t index, absl::string_view kind) {
  return absl::StrCat("component_", index, "_", kind);
}

template <typename T>
c10::Dict<std::string, T> ToDict(const ComponentState::Entries<T>& entries) {
  c10::Dict<std::string, T> dict;
  for (const auto& [key, value] : entries) dict.insert(key, value);
  return dict;
}

void WriteComponentStates(const ComponentStates& components,
                          torch::serialize::OutputArchive& archive) {
  c10::List<std::string> owners;
  size_t index = 0;
  for (const auto& [owner, state] : components) {
    owners.push_back(owner);
    archive.write(ComponentKey(index, "ints"),
                  c10::IValue(ToDict(state.ints())));
    archive.write(ComponentKey(index, "doubles"),
                  c10::IValue(ToDict(state.doubles())));
    archive.write(ComponentKey(index, "strings"),
                  c10::IValue(ToDict(state.strings())));
    c10::Dict<std::string, at::Tensor> tensors;
    for (const auto& [key, tensor] : state.tensors()) {
      // Detached and contiguous: the checkpoint keeps the values, not a view
      // into a live parameter.
      tensors.insert(key, tensor.detach().contiguous());
    }
    archive.write(ComponentKey(index, "tensors"), c10::IValue(tensors));
    ++index;
  }
  archive.write(kComponentOwnersKey, c10::IValue(owners));
}

// False when the archive predates component states.
bool ReadComponentStates(torch::serialize::InputArchive& archive,
                         ComponentStates* components) {
  c10::IValue owners;
  if (!archive.try_read(kComponentOwnersKey, owners)) return false;
  size_t index = 0;
  for (const c10::IValue& owner : owners.toListRef()) {
    ComponentState& state = (*components)[owner.toStringRef()];
    // Each of the four dictionaries, its entries through `set`.
    const auto read = [&](absl::string_view kind, const auto& set) {
      c10::IValue dict;
      archive.read(ComponentKey(index, kind), dict);
      for (const auto& entry : dict.toGenericDict()) {
        set(entry.key().toStringRef(), entry.value());
      }
    };
    read("ints", [&](const std::string& key, const c10::IValue& v) {
      state.SetInt(key, v.toInt());
    });
    read("doubles", [&](const std::string& key, const c10::IValue& v) {
      state.SetDouble(key, v.toDouble());
    });
    read("strings", [&](const std::string& key, const c10::IValue& v) {
      state.SetString(key, v.toStringRef());
    });
    read("tensors", [&](const std::string& key, const c10::IValue& v) {
      state.SetTensor(key, v.toTensor());
    });
    ++index;
  }
  return true;
}

}  // namespace

absl::Status SaveCheckpoint(const std::string& path, torch::nn::Module& module,
                            const torch::optim::Optimizer& optimizer,
                            const CheckpointState& state) {
  std::string payload;
  absl::Status status = CallTorch("writing checkpoint " + path, [&] {
    torch::serialize::OutputArchive archive;
    archive.write("model", c10::IValue(NamedTensors(module)));
    torch::serialize::OutputArchive optimizer_archive;
    optimizer.save(optimizer_archive);
    archive.write("optimizer", optimizer_archive);
    archive.write("epoch", c10::IValue(state.position.epoch));
    archive.write("batch_in_epoch", c10::IValue(state.position.batch_in_epoch));
    archive.write("step", c10::IValue(state.position.step));
    archive.write("best_metric", c10::IValue(state.score.best));
    archive.write("has_best", c10::IValue(state.score.has_best));
    archive.write("epochs_without_improvement",
                  c10::IValue(state.score.epochs_without_improvement));
    archive.write("last_train_loss", c10::IValue(state.last_train_loss));
    archive.write("epoch_loss_sum", c10::IValue(state.epoch_loss_sum));
    archive.write("epoch_loss_count", c10::IValue(state.epoch_loss_count));
    archive.write("epoch_last_lr", c10::IValue(state.epoch_last_lr));
    c10::Dict<std::string, double> last_val;
    for (const auto& [name, value] : state.last_val) {
      last_val.insert(name, value);
    }
    archive.write("last_val", c10::IValue(last_val));
    archive.write("rng_state",
                  at::detail::getDefaultCPUGenerator().get_state());
    WriteComponentStates(state.components, archive);
    archive.save_to([&payload](const void* data, size_t size) -> size_t {
      payload.append(static_cast<const char*>(data), size);
      return size;
    });
  });
  if (!status.ok()) return status;
  std::string file(kMagic, sizeof(kMagic));
  PutLittleEndian<uint32_t>(kFormatVersion, &file);
  PutLittleEndian<uint64_t>(payload.size(), &file);
  PutLittleEndian<uint32_t>(Crc32c(payload), &file);
  file += payload;
  return WriteFileAtomically(path, file);
}

namespace {

// The payload of the checkpoint file at `path`, once its header, format
// version, size and checksum are right: DataLoss naming what is wrong.
absl::StatusOr<std::string> ReadVerifiedPayload(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open checkpoint (",
                                            std::strerror(errno), ")"));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string file = buffer.str();
  if (file.size() < kHeaderSize ||
      std::memcmp(file.data(), kMagic, sizeof(kMagic)) != 0) {
    return absl::DataLossError(
        absl::StrCat(path, ": not an Ouroboros checkpoint (bad header)"));
  }
  const uint32_t version = GetLittleEndian<uint32_t>(file.data() + 16);
  if (version != kFormatVersion) {
    return absl::DataLossError(absl::StrCat(path, ": checkpoint format ",
                                            version,
                                            " is not supported (this build "
                                            "reads format ",
                                            kFormatVersion, ")"));
  }
  const uint64_t size = GetLittleEndian<uint64_t>(file.data() + 20);
  const uint32_t crc = GetLittleEndian<uint32_t>(file.data() + 28);
  if (file.size() - kHeaderSize != size) {
    return absl::DataLossError(absl::StrCat(
        path, ": checkpoint is truncated or padded (",
        file.size() - kHeaderSize, " payload bytes, header says ", size, ")"));
  }
  if (Crc32c(absl::string_view(file).substr(kHeaderSize)) != crc) {
    return absl::DataLossError(absl::StrCat(
        path,
        ": checkpoint is corrupted (checksum mismatch); resume from an "
        "earlier one"));
  }
  file.erase(0, kHeaderSize);  // the payload, without a copy of it
  return file;
}

// The position, the scores and the losses saved beside the weights; fields
// older checkpoints lack keep their defaults.
void ReadTrainingState(torch::serialize::InputArchive& archive,
                       CheckpointState* state) {
  c10::IValue value;
  archive.read("epoch", value);
  state->position.epoch = value.toInt();
  archive.read("batch_in_epoch", value);
  state->position.batch_in_epoch = value.toInt();
  archive.read("step", value);
  state->position.step = value.toInt();
  archive.read("best_metric", value);
  state->score.best = value.toDouble();
  archive.read("has_best", value);
  state->score.has_best = value.toBool();
  // Checkpoints from before early stopping have no counter: 0.
  if (archive.try_read("epochs_without_improvement", value)) {
    state->score.epochs_without_improvement = value.toInt();
  }
  // Checkpoints from before 2026-12-04 have no losses: 0.
  if (archive.try_read("last_train_loss", value)) {
    state->last_train_loss = value.toDouble();
  }
  if (archive.try_read("epoch_loss_sum", value)) {
    state->epoch_loss_sum = value.toDouble();
  }
  if (archive.try_read("epoch_loss_count", value)) {
    state->epoch_loss_count = value.toInt();
  }
  if (archive.try_read("epoch_last_lr", value)) {
    state->epoch_last_lr = value.toDouble();
  }
  // Checkpoints from before 2026-12-06 have no validation metrics: none.
  if (archive.try_read("last_val", value)) {
    for (const auto& entry : value.toGenericDict()) {
      state->last_val[entry.key().toStringRef()] = entry.value().toDouble();
    }
  }
}

}  // namespace

absl::StatusOr<CheckpointState> LoadCheckpoint(
    const std::string& path, torch::nn::Module& module,
    torch::optim::Optimizer& optimizer) {
  ASSIGN_OR_RETURN(const std::string payload, ReadVerifiedPayload(path));
  CheckpointState state;
  absl::Status status = CallTorch("reading checkpoint " + path, [&] {
    torch::serialize::InputArchive archive;
    archive.load_from(payload.data(), payload.size());
    c10::IValue saved;
    archive.read("model", saved);
    CopyNamedTensors(saved, module);
    torch::serialize::InputArchive optimizer_archive;
    archive.read("optimizer", optimizer_archive);
    optimizer.load(optimizer_archive);
    ReadTrainingState(archive, &state);
    state.has_component_states =
        ReadComponentStates(archive, &state.components);
    at::Tensor rng;
    archive.read("rng_state", rng);
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(rng);
  });
  if (!status.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        status.message(),
        " (was the checkpoint written by another model or config?)"));
  }
  return state;
}

absl::Status SaveWeightsForPython(const std::string& path,
                                  torch::nn::Module& module) {
  std::vector<char> bytes;
  absl::Status status = CallTorch("writing weights " + path, [&] {
    bytes = torch::pickle_save(c10::IValue(NamedTensors(module)));
  });
  if (!status.ok()) return status;
  return WriteFileAtomically(path, std::string(bytes.begin(), bytes.end()));
}

absl::StatusOr<std::string> FindCheckpoint(const std::string& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return path;
  fs::path dir = CheckpointDir(path);
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(
        absl::StrCat(path,
                     ": neither a checkpoint file nor a run directory with a "
                     "checkpoints/ folder"));
  }
  std::string newest;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (IsStepCheckpointName(name) &&
        name > fs::path(newest).filename().string()) {
      newest = entry.path().string();
    }
  }
  if (newest.empty()) {
    return absl::NotFoundError(absl::StrCat(
        dir.string(), ": no step-*.ckpt checkpoint to resume from"));
  }
  return newest;
}

void PruneCheckpoints(const std::string& dir, int keep) {
  if (keep <= 0) return;
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (IsStepCheckpointName(name)) {
      names.push_back(name);
    }
  }
  std::sort(names.begin(), names.end());
  for (size_t i = 0; i + keep < names.size(); ++i) {
    const std::string checkpoint = (fs::path(dir) / names[i]).string();
    fs::remove(checkpoint, ec);
    fs::remove(WeightsPathFor(checkpoint), ec);
  }
}

}  // namespace ouroboros
