// Data-parallel training across processes and hosts on PyTorch's own engine
// (c10d: a TCPStore rendezvous and the Gloo backend), configured the way
// torchrun configures PyTorch: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
// MASTER_PORT, and under torchrun also GROUP_RANK, LOCAL_WORLD_SIZE,
// TORCHELASTIC_RESTART_COUNT and TORCHELASTIC_USE_AGENT_STORE (the agent
// serves the store; every rank joins it as a client, under the prefix
// /worker/attempt_<restart count> as PyTorch's own workers do).
//
// The Gloo device (the local address the collectives use) is chosen as
// PyTorch chooses it, except that a host name resolving to the wrong place
// cannot break it: GLOO_SOCKET_IFNAME (comma-separated interfaces) when set;
// otherwise the local address whose route reaches MASTER_ADDR (so every host
// uses its own side of the link that joins it to the master); otherwise
// Gloo's default device (the host name's address).
//
//   absl::StatusOr<DistributedConfig> config = DistributedFromEnvironment();
//   absl::StatusOr<std::unique_ptr<ProcessGroup>> group =
//       ProcessGroup::Connect(*config);
//   (*group)->BroadcastFromRankZero(parameters);   // identical start
//   (*group)->AverageGradients(parameters);         // after every backward
//
// A rank that dies makes the collectives of the others fail after
// timeout_seconds at most (usually at once: Gloo sees the closed socket),
// with an error naming the rank and the operation, instead of hanging.
#ifndef OUROBOROS_DISTRIBUTED_DISTRIBUTED_H_
#define OUROBOROS_DISTRIBUTED_DISTRIBUTED_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ouroboros {

struct DistributedConfig {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // Rendezvous and every collective give up after this long.
  double timeout_seconds = 120;
  // Set by torchrun (defaults: one node of world_size workers, first try).
  int group_rank = 0;
  int local_world_size = 1;
  int restart_count = 0;
  // TORCHELASTIC_USE_AGENT_STORE=True: the launcher's agent already serves
  // the TCPStore on MASTER_PORT.
  bool use_agent_store = false;
  // GLOO_SOCKET_IFNAME, split at commas.
  std::vector<std::string> gloo_interfaces;
  // The Trainer's standard step averages the gradients while the backward
  // runs (GradientReducer), in buckets of at most this many KiB;
  // OUROBOROS_DIST_OVERLAP=0: after the backward, in 25 MiB buckets.
  // OUROBOROS_DIST_BUCKET_KIB sets the size.
  bool overlap_backward = true;
  int bucket_kib = 256;
  bool enabled() const { return world_size > 1; }
};

// From torchrun's variables; world size 1 (not distributed) when WORLD_SIZE
// is unset. InvalidArgument naming the variable for a bad value.
// OUROBOROS_DIST_TIMEOUT sets timeout_seconds; OUROBOROS_DIST_OVERLAP
// (0 or 1) and OUROBOROS_DIST_BUCKET_KIB overlap_backward and bucket_kib.
absl::StatusOr<DistributedConfig> DistributedFromEnvironment();

// The local address of the interface whose route reaches `host` (a name or
// a numeric address): what this machine's packets to `host` leave from. No
// packet is sent.
absl::StatusOr<std::string> LocalAddressTowards(const std::string& host);

// A TCP port that was free a moment ago on 127.0.0.1: a rendezvous port for
// ranks started on this machine.
absl::StatusOr<int> FreeLocalPort();

class ProcessGroup {
 public:
  static absl::StatusOr<std::unique_ptr<ProcessGroup>> Connect(
      const DistributedConfig& config);
  ~ProcessGroup();

  const DistributedConfig& config() const { return config_; }
  // Which Gloo device the group uses and why, e.g. "10.99.0.2 (the route
  // to MASTER_ADDR 10.99.0.1)".
  const std::string& device_description() const { return device_; }
  // Copies rank 0's values into every rank's tensors (in place): one
  // message per dtype, all in flight at once.
  absl::Status BroadcastFromRankZero(const std::vector<at::Tensor>& tensors);
  // Replaces each parameter's gradient by its mean over the ranks. The
  // gradients travel in flat buckets of at most bucket_bytes (fewer, larger
  // messages than one per tensor), all launched before any is waited for.
  // With `stop_votes`: this rank's vote (0 or 1) goes in and the number of
  // ranks that voted comes out, riding on the last bucket, so that the ranks
  // agree on a step to stop at without a message of its own.
  absl::Status AverageGradients(const std::vector<at::Tensor>& parameters,
                                int* stop_votes = nullptr,
                                int64_t bucket_bytes = 25 << 20);
  // Sum over the ranks, in place.
  absl::Status SumInPlace(at::Tensor& tensor);
  // The same, started and left running: returns at once with a ticket that
  // WaitForSum takes (once). For overlapping the messages with computation,
  // as GradientReducer (gradient_reducer.h) does with the backward.
  absl::StatusOr<int64_t> StartSumInPlace(const at::Tensor& flat);
  absl::Status WaitForSum(int64_t ticket);
  absl::Status Barrier();

  // The job's key-value store (the rendezvous TCPStore), for coordination
  // beyond tensors, e.g. handing out tune trials.
  absl::Status StoreSet(const std::string& key, const std::string& value);
  // Waits up to `timeout_seconds` for the key to be set.
  absl::StatusOr<std::string> StoreGet(const std::string& key,
                                       double timeout_seconds);
  // Adds `delta` to an integer key (0 if unset) and returns the new value:
  // an atomic counter across the ranks.
  absl::StatusOr<int64_t> StoreAdd(const std::string& key, int64_t delta);

 private:
  struct Impl;
  ProcessGroup(DistributedConfig config, std::unique_ptr<Impl> impl,
               std::string device);
  DistributedConfig config_;
  std::string device_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ouroboros

#endif  // OUROBOROS_DISTRIBUTED_DISTRIBUTED_H_
