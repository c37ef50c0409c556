#include "ouroboros/distributed.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cstdlib>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "ouroboros/errors.h"

namespace ouroboros {
namespace {

// An integer environment variable, or `fallback` when it is unset.
absl::StatusOr<int> IntFromEnv(const char* name, int fallback, int min) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  int value = 0;
  if (!absl::SimpleAtoi(text, &value) || value < min) {
    return absl::InvalidArgumentError(
        absl::StrCat("environment variable ", name, "='", text,
                     "': must be an integer >= ", min));
  }
  return value;
}

}  // namespace

absl::StatusOr<DistributedConfig> DistributedFromEnvironment() {
  DistributedConfig config;
  absl::StatusOr<int> world = IntFromEnv("WORLD_SIZE", 1, 1);
  if (!world.ok()) return world.status();
  config.world_size = *world;
  if (!config.enabled()) return config;
  absl::StatusOr<int> rank = IntFromEnv("RANK", -1, 0);
  if (!rank.ok()) return rank.status();
  if (*rank < 0 || *rank >= config.world_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "environment variable RANK must be set to 0..", config.world_size - 1,
        " when WORLD_SIZE=", config.world_size));
  }
  config.rank = *rank;
  absl::StatusOr<int> local_rank = IntFromEnv("LOCAL_RANK", config.rank, 0);
  if (!local_rank.ok()) return local_rank.status();
  config.local_rank = *local_rank;
  absl::StatusOr<int> port = IntFromEnv("MASTER_PORT", 29500, 1);
  if (!port.ok()) return port.status();
  if (*port > 65535) {
    return absl::InvalidArgumentError("MASTER_PORT must be <= 65535");
  }
  config.master_port = *port;
  if (const char* addr = std::getenv("MASTER_ADDR"); addr && *addr) {
    config.master_addr = addr;
  }
  absl::StatusOr<int> timeout = IntFromEnv("OUROBOROS_DIST_TIMEOUT", 120, 1);
  if (!timeout.ok()) return timeout.status();
  config.timeout_seconds = *timeout;
  return config;
}

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
  std::chrono::milliseconds timeout;

  // Waits for a collective, turning a failure (a dead rank, a timeout) into
  // a Status that says what was going on.
  absl::Status Wait(const c10::intrusive_ptr<c10d::Work>& work,
                    const std::string& what, int rank) {
    return CallTorch(absl::StrCat(what, " on rank ", rank,
                                  " (did another rank stop or die?)"),
                     [&] { work->wait(timeout); });
  }
};

ProcessGroup::ProcessGroup(DistributedConfig config, std::unique_ptr<Impl> impl)
    : config_(std::move(config)), impl_(std::move(impl)) {}

ProcessGroup::~ProcessGroup() = default;

absl::StatusOr<std::unique_ptr<ProcessGroup>> ProcessGroup::Connect(
    const DistributedConfig& config) {
  auto impl = std::make_unique<Impl>();
  impl->timeout = std::chrono::milliseconds(
      static_cast<int64_t>(config.timeout_seconds * 1000));
  absl::Status status = CallTorch(
      absl::StrCat("joining the process group at ", config.master_addr, ":",
                   config.master_port, " as rank ", config.rank, " of ",
                   config.world_size),
      [&] {
        c10d::TCPStoreOptions options;
        options.port = static_cast<uint16_t>(config.master_port);
        options.isServer = config.rank == 0;
        options.numWorkers = config.world_size;
        options.waitWorkers = true;
        options.timeout = impl->timeout;
        impl->store =
            c10::make_intrusive<c10d::TCPStore>(config.master_addr, options);
        auto gloo_options =
            c10d::ProcessGroupGloo::Options::create(impl->timeout);
        gloo_options->devices.push_back(
            c10d::ProcessGroupGloo::createDeviceForHostname(
                config.master_addr));
        impl->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(
            impl->store, config.rank, config.world_size, gloo_options);
      });
  if (!status.ok()) return status;
  return std::unique_ptr<ProcessGroup>(
      new ProcessGroup(config, std::move(impl)));
}

absl::Status ProcessGroup::BroadcastFromRankZero(
    const std::vector<at::Tensor>& tensors) {
  for (const at::Tensor& tensor : tensors) {
    std::vector<at::Tensor> one = {tensor.detach()};
    c10d::BroadcastOptions options;
    options.rootRank = 0;
    c10::intrusive_ptr<c10d::Work> work;
    absl::Status status = CallTorch(
        "broadcast", [&] { work = impl_->gloo->broadcast(one, options); });
    if (!status.ok()) return status;
    if (absl::Status s =
            impl_->Wait(work, "broadcasting the parameters", config_.rank);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status ProcessGroup::AverageGradients(
    const std::vector<at::Tensor>& parameters, int64_t bucket_bytes) {
  std::vector<at::Tensor> grads;
  for (const at::Tensor& p : parameters) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  size_t start = 0;
  while (start < grads.size()) {
    size_t end = start;
    int64_t bytes = 0;
    do {
      bytes += grads[end].numel() * grads[end].element_size();
      ++end;
    } while (end < grads.size() &&
             bytes + grads[end].numel() * grads[end].element_size() <=
                 bucket_bytes);
    absl::Status status = CallTorch("averaging gradients", [&] {
      std::vector<at::Tensor> flat_parts;
      for (size_t i = start; i < end; ++i) {
        flat_parts.push_back(grads[i].reshape({-1}));
      }
      std::vector<at::Tensor> bucket = {at::cat(flat_parts)};
      auto work = impl_->gloo->allreduce(bucket);
      work->wait(impl_->timeout);
      bucket[0].div_(config_.world_size);
      int64_t offset = 0;
      for (size_t i = start; i < end; ++i) {
        const int64_t n = grads[i].numel();
        grads[i].copy_(bucket[0].narrow(0, offset, n).view_as(grads[i]));
        offset += n;
      }
    });
    if (!status.ok()) {
      return absl::Status(
          status.code(), absl::StrCat(status.message(), " (rank ", config_.rank,
                                      "; did another rank stop or die?)"));
    }
    start = end;
  }
  return absl::OkStatus();
}

absl::Status ProcessGroup::SumInPlace(at::Tensor& tensor) {
  std::vector<at::Tensor> one = {tensor};
  c10::intrusive_ptr<c10d::Work> work;
  absl::Status status =
      CallTorch("all-reduce", [&] { work = impl_->gloo->allreduce(one); });
  if (!status.ok()) return status;
  return impl_->Wait(work, "summing over the ranks", config_.rank);
}

absl::Status ProcessGroup::Barrier() {
  at::Tensor token = at::zeros({1});
  return SumInPlace(token);
}

absl::Status ProcessGroup::StoreSet(const std::string& key,
                                    const std::string& value) {
  return CallTorch("store set " + key, [&] {
    impl_->store->set(key, std::vector<uint8_t>(value.begin(), value.end()));
  });
}

absl::StatusOr<std::string> ProcessGroup::StoreGet(const std::string& key,
                                                   double timeout_seconds) {
  std::string value;
  absl::Status status =
      CallTorch(absl::StrCat("waiting for '", key, "' in the store (rank ",
                             config_.rank, ")"),
                [&] {
                  impl_->store->wait(
                      {key}, std::chrono::milliseconds(
                                 static_cast<int64_t>(timeout_seconds * 1000)));
                  std::vector<uint8_t> bytes = impl_->store->get(key);
                  value.assign(bytes.begin(), bytes.end());
                });
  if (!status.ok()) return status;
  return value;
}

absl::StatusOr<int64_t> ProcessGroup::StoreAdd(const std::string& key,
                                               int64_t delta) {
  int64_t value = 0;
  absl::Status status = CallTorch(
      "store add " + key, [&] { value = impl_->store->add(key, delta); });
  if (!status.ok()) return status;
  return value;
}

}  // namespace ouroboros
