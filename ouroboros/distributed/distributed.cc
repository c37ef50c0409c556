#include "ouroboros/distributed/distributed.h"

#include <ATen/ATen.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "ouroboros/base/errors.h"
#include "ouroboros/base/status_macros.h"

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

// Groups tensors of one dtype, so that each group travels as one flat
// message.
std::map<at::ScalarType, std::vector<at::Tensor>> ByDtype(
    const std::vector<at::Tensor>& tensors) {
  std::map<at::ScalarType, std::vector<at::Tensor>> groups;
  for (const at::Tensor& t : tensors) groups[t.scalar_type()].push_back(t);
  return groups;
}

// One flat tensor of the tensors' values, with `extra` more (uninitialized)
// elements at its end.
at::Tensor Flatten(const std::vector<at::Tensor>& tensors, int64_t extra = 0) {
  int64_t total = extra;
  for (const at::Tensor& t : tensors) total += t.numel();
  at::Tensor flat = at::empty({total}, tensors.front().options());
  int64_t offset = 0;
  for (const at::Tensor& t : tensors) {
    flat.narrow(0, offset, t.numel()).copy_(t.detach().reshape({-1}));
    offset += t.numel();
  }
  return flat;
}

void Unflatten(const at::Tensor& flat, const std::vector<at::Tensor>& tensors) {
  int64_t offset = 0;
  for (const at::Tensor& t : tensors) {
    const int64_t n = t.numel();
    t.detach().copy_(flat.narrow(0, offset, n).view_as(t));
    offset += n;
  }
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
  absl::StatusOr<int> overlap = IntFromEnv("OUROBOROS_DIST_OVERLAP", 1, 0);
  if (!overlap.ok()) return overlap.status();
  if (*overlap > 1) {
    return absl::InvalidArgumentError(
        "environment variable OUROBOROS_DIST_OVERLAP must be 0 or 1");
  }
  config.overlap_backward = *overlap == 1;
  absl::StatusOr<int> bucket =
      IntFromEnv("OUROBOROS_DIST_BUCKET_KIB", config.bucket_kib, 1);
  if (!bucket.ok()) return bucket.status();
  config.bucket_kib = *bucket;
  absl::StatusOr<int> group_rank = IntFromEnv("GROUP_RANK", 0, 0);
  if (!group_rank.ok()) return group_rank.status();
  config.group_rank = *group_rank;
  absl::StatusOr<int> local_world =
      IntFromEnv("LOCAL_WORLD_SIZE", config.world_size, 1);
  if (!local_world.ok()) return local_world.status();
  config.local_world_size = *local_world;
  absl::StatusOr<int> restarts = IntFromEnv("TORCHELASTIC_RESTART_COUNT", 0, 0);
  if (!restarts.ok()) return restarts.status();
  config.restart_count = *restarts;
  if (const char* agent = std::getenv("TORCHELASTIC_USE_AGENT_STORE")) {
    // torchrun writes Python's str(bool).
    config.use_agent_store = std::string(agent) == "True";
  }
  if (const char* names = std::getenv("GLOO_SOCKET_IFNAME"); names && *names) {
    config.gloo_interfaces = absl::StrSplit(names, ',', absl::SkipEmpty());
  }
  return config;
}

absl::StatusOr<std::string> LocalAddressTowards(const std::string& host) {
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (int error = getaddrinfo(host.c_str(), "9", &hints, &found); error != 0) {
    return absl::NotFoundError(
        absl::StrCat("cannot resolve '", host, "': ", gai_strerror(error)));
  }
  std::string local;
  for (addrinfo* a = found; a != nullptr && local.empty(); a = a->ai_next) {
    const int fd = socket(a->ai_family, SOCK_DGRAM, 0);
    if (fd < 0) continue;
    // connect() on a datagram socket only picks the route and the source
    // address; nothing is sent.
    sockaddr_storage address = {};
    socklen_t length = sizeof(address);
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
      char text[INET6_ADDRSTRLEN] = {};
      const void* raw =
          address.ss_family == AF_INET
              ? static_cast<const void*>(
                    &reinterpret_cast<sockaddr_in*>(&address)->sin_addr)
              : static_cast<const void*>(
                    &reinterpret_cast<sockaddr_in6*>(&address)->sin6_addr);
      if (inet_ntop(address.ss_family, raw, text, sizeof(text)) != nullptr) {
        local = text;
      }
    }
    close(fd);
  }
  freeaddrinfo(found);
  if (local.empty()) {
    return absl::UnavailableError(
        absl::StrCat("no local route reaches '", host, "'"));
  }
  return local;
}

absl::StatusOr<int> FreeLocalPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::UnavailableError("cannot open a socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  const bool ok =
      bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  close(fd);
  if (!ok) return absl::UnavailableError("cannot find a free local port");
  return ntohs(address.sin_port);
}

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
  std::chrono::milliseconds timeout;
  // StartSumInPlace's collectives in flight, by ticket.
  std::map<int64_t, c10::intrusive_ptr<c10d::Work>> pending;
  int64_t next_ticket = 0;

  // Waits for a collective, turning a failure (a dead rank, a timeout) into
  // a Status that says what was going on.
  absl::Status Wait(const c10::intrusive_ptr<c10d::Work>& work,
                    const std::string& what, int rank) {
    return CallTorch(absl::StrCat(what, " on rank ", rank,
                                  " (did another rank stop or die?)"),
                     [&] { work->wait(timeout); });
  }
};

ProcessGroup::ProcessGroup(DistributedConfig config, std::unique_ptr<Impl> impl,
                           std::string device)
    : config_(std::move(config)),
      device_(std::move(device)),
      impl_(std::move(impl)) {}

ProcessGroup::~ProcessGroup() = default;

namespace {

// The Gloo devices the ranks talk through, into `devices`: the interfaces of
// GLOO_SOCKET_IFNAME, else the address this host reaches MASTER_ADDR from,
// else Gloo's default; the choice, described for the log.
std::string AddGlooDevice(
    const DistributedConfig& config,
    std::vector<std::shared_ptr<gloo::transport::Device>>& devices) {
  if (!config.gloo_interfaces.empty()) {
    for (const std::string& name : config.gloo_interfaces) {
      devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(name));
    }
    return absl::StrCat("interface ",
                        absl::StrJoin(config.gloo_interfaces, ","),
                        " (GLOO_SOCKET_IFNAME)");
  }
  absl::StatusOr<std::string> local = LocalAddressTowards(config.master_addr);
  if (local.ok()) {
    devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(*local));
    return absl::StrCat(*local, " (the route to MASTER_ADDR ",
                        config.master_addr, ")");
  }
  devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  return absl::StrCat("Gloo's default device (", local.status().message(), ")");
}

// The defined gradients of `parameters` in buckets of consecutive tensors
// of one dtype, each up to `bucket_bytes` (or one tensor, if larger).
std::vector<std::vector<at::Tensor>> GradientBuckets(
    const std::vector<at::Tensor>& parameters, int64_t bucket_bytes) {
  std::vector<std::vector<at::Tensor>> buckets;
  int64_t bytes = 0;
  for (const at::Tensor& p : parameters) {
    if (!p.grad().defined()) continue;
    const at::Tensor& g = p.grad();
    const int64_t size = g.numel() * g.element_size();
    if (buckets.empty() || bytes + size > bucket_bytes ||
        buckets.back().front().scalar_type() != g.scalar_type()) {
      buckets.emplace_back();
      bytes = 0;
    }
    buckets.back().push_back(g);
    bytes += size;
  }
  return buckets;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ProcessGroup>> ProcessGroup::Connect(
    const DistributedConfig& config) {
  auto impl = std::make_unique<Impl>();
  impl->timeout = std::chrono::milliseconds(
      static_cast<int64_t>(config.timeout_seconds * 1000));
  auto gloo_options = c10d::ProcessGroupGloo::Options::create(impl->timeout);
  std::string device;
  absl::Status status = CallTorch("choosing the Gloo device", [&] {
    device = AddGlooDevice(config, gloo_options->devices);
  });
  if (!status.ok()) return status;
  status = CallTorch(
      absl::StrCat("joining the process group at ", config.master_addr, ":",
                   config.master_port, " as rank ", config.rank, " of ",
                   config.world_size, " (Gloo device: ", device, ")"),
      [&] {
        c10d::TCPStoreOptions options;
        options.port = static_cast<uint16_t>(config.master_port);
        // Under torchrun the agent serves the store; a rank that served one
        // too would fail with "Address already in use".
        options.isServer = !config.use_agent_store && config.rank == 0;
        options.numWorkers = config.world_size;
        options.waitWorkers = !config.use_agent_store;
        options.timeout = impl->timeout;
        auto tcp =
            c10::make_intrusive<c10d::TCPStore>(config.master_addr, options);
        if (config.use_agent_store) {
          // The agent's store outlives a restart: keys of the last attempt
          // must not be read by this one.
          impl->store = c10::make_intrusive<c10d::PrefixStore>(
              absl::StrCat("/worker/attempt_", config.restart_count), tcp);
        } else {
          impl->store = tcp;
        }
        impl->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(
            impl->store, config.rank, config.world_size, gloo_options);
      });
  if (!status.ok()) return status;
  return std::unique_ptr<ProcessGroup>(
      new ProcessGroup(config, std::move(impl), device));
}

absl::Status ProcessGroup::BroadcastFromRankZero(
    const std::vector<at::Tensor>& tensors) {
  if (tensors.empty()) return absl::OkStatus();
  std::vector<std::pair<std::vector<at::Tensor>, std::vector<at::Tensor>>>
      messages;  // (the tensors, their flat message)
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  absl::Status status = CallTorch("broadcast", [&] {
    for (auto& [dtype, group] : ByDtype(tensors)) {
      messages.push_back({group, {Flatten(group)}});
      c10d::BroadcastOptions options;
      options.rootRank = 0;
      works.push_back(impl_->gloo->broadcast(messages.back().second, options));
    }
  });
  if (!status.ok()) return status;
  for (const auto& work : works) {
    RETURN_IF_ERROR(
        impl_->Wait(work, "broadcasting from rank 0", config_.rank));
  }
  return CallTorch("broadcast", [&] {
    for (const auto& [group, flat] : messages) Unflatten(flat[0], group);
  });
}

absl::Status ProcessGroup::AverageGradients(
    const std::vector<at::Tensor>& parameters, int* stop_votes,
    int64_t bucket_bytes) {
  const std::vector<std::vector<at::Tensor>> buckets =
      GradientBuckets(parameters, bucket_bytes);
  std::vector<std::vector<at::Tensor>> flats;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  absl::Status status = CallTorch("averaging gradients", [&] {
    for (size_t b = 0; b < buckets.size(); ++b) {
      const bool votes_here = stop_votes != nullptr && b + 1 == buckets.size();
      at::Tensor flat = Flatten(buckets[b], votes_here ? 1 : 0);
      if (votes_here) flat[flat.numel() - 1].fill_(*stop_votes);
      flats.push_back({flat});
    }
    if (stop_votes != nullptr && buckets.empty()) {
      flats.push_back({at::full({1}, *stop_votes, at::kFloat)});
    }
    // Every bucket in flight before the first wait: Gloo works on them
    // while this thread flattens the next.
    for (auto& flat : flats) works.push_back(impl_->gloo->allreduce(flat));
  });
  for (size_t i = 0; status.ok() && i < works.size(); ++i) {
    status = CallTorch("averaging gradients",
                       [&] { works[i]->wait(impl_->timeout); });
  }
  if (status.ok()) {
    status = CallTorch("averaging gradients", [&] {
      for (size_t b = 0; b < flats.size(); ++b) {
        at::Tensor flat = flats[b][0];
        if (stop_votes != nullptr && b + 1 == flats.size()) {
          *stop_votes = static_cast<int>(
              std::lround(flat[flat.numel() - 1].item<double>()));
          flat = flat.narrow(0, 0, flat.numel() - 1);
        }
        if (b < buckets.size()) {
          flat.div_(config_.world_size);
          Unflatten(flat, buckets[b]);
        }
      }
    });
  }
  if (!status.ok()) {
    return absl::Status(status.code(),
                        absl::StrCat(status.message(), " (rank ", config_.rank,
                                     "; did another rank stop or die?)"));
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

absl::StatusOr<int64_t> ProcessGroup::StartSumInPlace(const at::Tensor& flat) {
  std::vector<at::Tensor> one = {flat};
  c10::intrusive_ptr<c10d::Work> work;
  RETURN_IF_ERROR(
      CallTorch("all-reduce", [&] { work = impl_->gloo->allreduce(one); }));
  const int64_t ticket = impl_->next_ticket++;
  impl_->pending[ticket] = std::move(work);
  return ticket;
}

absl::Status ProcessGroup::WaitForSum(int64_t ticket) {
  auto work = impl_->pending.find(ticket);
  if (work == impl_->pending.end()) {
    return absl::InternalError(
        absl::StrCat("no all-reduce in flight with ticket ", ticket));
  }
  c10::intrusive_ptr<c10d::Work> started = std::move(work->second);
  impl_->pending.erase(work);
  return impl_->Wait(started, "summing over the ranks", config_.rank);
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
