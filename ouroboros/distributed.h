// Data-parallel training across processes and hosts on PyTorch's own engine
// (c10d: a TCPStore rendezvous and the Gloo backend), configured the way
// torchrun configures PyTorch: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
// MASTER_PORT.
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
#ifndef OUROBOROS_DISTRIBUTED_H_
#define OUROBOROS_DISTRIBUTED_H_

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
  bool enabled() const { return world_size > 1; }
};

// From torchrun's variables; world size 1 (not distributed) when WORLD_SIZE
// is unset. InvalidArgument naming the variable for a bad value.
// OUROBOROS_DIST_TIMEOUT sets timeout_seconds.
absl::StatusOr<DistributedConfig> DistributedFromEnvironment();

class ProcessGroup {
 public:
  static absl::StatusOr<std::unique_ptr<ProcessGroup>> Connect(
      const DistributedConfig& config);
  ~ProcessGroup();

  const DistributedConfig& config() const { return config_; }
  // Copies rank 0's values into every rank's tensors (in place).
  absl::Status BroadcastFromRankZero(const std::vector<at::Tensor>& tensors);
  // Replaces each parameter's gradient by its mean over the ranks. The
  // gradients travel in flat buckets of at most bucket_bytes (fewer, larger
  // messages than one per tensor).
  absl::Status AverageGradients(const std::vector<at::Tensor>& parameters,
                                int64_t bucket_bytes = 25 << 20);
  // Sum over the ranks, in place.
  absl::Status SumInPlace(at::Tensor& tensor);
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
  ProcessGroup(DistributedConfig config, std::unique_ptr<Impl> impl);
  DistributedConfig config_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ouroboros

#endif  // OUROBOROS_DISTRIBUTED_H_
