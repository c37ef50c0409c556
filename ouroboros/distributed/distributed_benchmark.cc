// The cost of one gradient bucket's all-reduce against what the link
// carries: two ranks time ProcessGroup::AverageGradients on one bucket of
// --megabytes, and a plain TCP copy of the same bytes between them, measured
// in the same run on the same link.
//
//   bazel-bin/ouroboros/distributed/distributed_benchmark  # 2 ranks here
//   RANK=0 WORLD_SIZE=2 MASTER_ADDR=10.99.0.1 MASTER_PORT=29533
//     bazel-bin/ouroboros/distributed/distributed_benchmark  # one per host
//   (the variables and the command on one line)
//
// Without WORLD_SIZE it forks itself into two ranks on 127.0.0.1. With it,
// each host runs one rank (the raw copy uses MASTER_PORT + 1). Rank 0 prints
// the medians and their ratio; 1.0 would be an all-reduce at the link's
// copy rate (two ranks: each sends and receives the bucket once).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ouroboros/base/status_macros.h"
#include "ouroboros/distributed/distributed.h"

ABSL_FLAG(double, megabytes, 25, "Size of the bucket (DDP's default: 25).");
ABSL_FLAG(int, repeats, 10, "Timed repetitions of each measurement.");

namespace ouroboros {
namespace {

using Clock = std::chrono::steady_clock;

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// "min-max" in milliseconds: how noisy the machine was.
std::string Range(const std::vector<double>& values) {
  auto [low, high] = std::minmax_element(values.begin(), values.end());
  return absl::StrFormat("%.1f-%.1f", *low * 1e3, *high * 1e3);
}

// Rank 0's side: accepts rank 1 on `port`, then receives `bytes` `repeats`
// times, timing each copy from its first byte to its last and acknowledging
// it so the next starts on an idle link. Seconds per copy.
absl::StatusOr<std::vector<double>> ReceiveTimedCopies(int port, int64_t bytes,
                                                       int repeats) {
  const int server = socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  address.sin_port = htons(port);
  if (bind(server, reinterpret_cast<sockaddr*>(&address), sizeof(address)) ||
      listen(server, 1)) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", port));
  }
  const int peer = accept(server, nullptr, nullptr);
  close(server);
  std::vector<char> buffer(1 << 20);
  std::vector<double> seconds;
  for (int r = 0; r < repeats; ++r) {
    int64_t left = bytes;
    Clock::time_point start;
    bool started = false;
    while (left > 0) {
      const ssize_t n =
          recv(peer, buffer.data(), std::min<int64_t>(left, buffer.size()), 0);
      if (n <= 0) return absl::UnavailableError("the copy broke off");
      if (!started) start = Clock::now();
      started = true;
      left -= n;
    }
    seconds.push_back(
        std::chrono::duration<double>(Clock::now() - start).count());
    const char ack = 1;
    if (send(peer, &ack, 1, 0) != 1) {
      return absl::UnavailableError("the copy broke off");
    }
  }
  close(peer);
  return seconds;
}

// Rank 1's side: connects to rank 0 (retrying while it starts listening),
// then sends `bytes` `repeats` times, each after the last one's ack.
absl::Status SendCopies(const std::string& address, int port, int64_t bytes,
                        int repeats) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(address.c_str(), std::to_string(port).c_str(), &hints,
                  &found) != 0) {
    return absl::NotFoundError("cannot resolve MASTER_ADDR");
  }
  int fd = -1;
  for (int attempt = 0; attempt < 200 && fd < 0; ++attempt) {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, found->ai_addr, found->ai_addrlen) != 0) {
      close(fd);
      fd = -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  freeaddrinfo(found);
  if (fd < 0) return absl::UnavailableError("cannot reach rank 0");
  const std::vector<char> buffer(1 << 20, 1);
  for (int r = 0; r < repeats; ++r) {
    int64_t left = bytes;
    while (left > 0) {
      const ssize_t n =
          send(fd, buffer.data(), std::min<int64_t>(left, buffer.size()), 0);
      if (n <= 0) return absl::UnavailableError("the copy broke off");
      left -= n;
    }
    char ack = 0;
    if (recv(fd, &ack, 1, 0) != 1) {
      return absl::UnavailableError("the copy broke off");
    }
  }
  close(fd);
  return absl::OkStatus();
}

// Rank 1 sends `bytes` `repeats` times; rank 0 receives and times each copy
// from its first byte to its last. Returns rank 0's seconds per copy (rank
// 1: none).
absl::StatusOr<std::vector<double>> TimeTcpCopies(const DistributedConfig& dc,
                                                  int64_t bytes, int repeats) {
  const int port = dc.master_port + 1;
  if (dc.rank == 0) return ReceiveTimedCopies(port, bytes, repeats);
  RETURN_IF_ERROR(SendCopies(dc.master_addr, port, bytes, repeats));
  return std::vector<double>();
}

absl::Status Run() {
  absl::StatusOr<DistributedConfig> dc = DistributedFromEnvironment();
  if (!dc.ok()) return dc.status();
  if (dc->world_size != 2) {
    return absl::InvalidArgumentError("run with WORLD_SIZE=2 (or unset)");
  }
  const int repeats = std::max(1, absl::GetFlag(FLAGS_repeats));
  const int64_t bytes =
      static_cast<int64_t>(absl::GetFlag(FLAGS_megabytes) * 1e6) / 4 * 4;
  absl::StatusOr<std::vector<double>> copies =
      TimeTcpCopies(*dc, bytes, repeats);
  if (!copies.ok()) return copies.status();

  absl::StatusOr<std::unique_ptr<ProcessGroup>> group =
      ProcessGroup::Connect(*dc);
  if (!group.ok()) return group.status();
  at::set_num_threads(1);
  at::Tensor parameter = at::zeros({bytes / 4}).requires_grad_();
  parameter.mutable_grad() = at::ones({bytes / 4});
  std::vector<double> reduces;
  for (int r = 0; r < repeats + 2; ++r) {  // two warm-ups
    const Clock::time_point start = Clock::now();
    if (absl::Status s = (*group)->AverageGradients({parameter}); !s.ok()) {
      return s;
    }
    if (r >= 2) {
      reduces.push_back(
          std::chrono::duration<double>(Clock::now() - start).count());
    }
  }
  if (dc->rank != 0) return absl::OkStatus();
  const double copy = Median(*copies);
  const double reduce = Median(reduces);
  std::printf(
      "link: %s\n"
      "TCP copy of %.1f MB rank 1 -> rank 0: %.2f ms (%.0f MB/s), median of "
      "%d (range %s ms)\n"
      "all-reduce (AverageGradients) of one %.1f MB bucket: %.2f ms, median "
      "of %d (range %s ms)\n"
      "all-reduce / copy: %.2fx\n",
      (*group)->device_description().c_str(), bytes / 1e6, copy * 1e3,
      bytes / 1e6 / copy, repeats, Range(*copies).c_str(), bytes / 1e6,
      reduce * 1e3, repeats, Range(reduces).c_str(), reduce / copy);
  return absl::OkStatus();
}

}  // namespace
}  // namespace ouroboros

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  pid_t child = -1;
  if (std::getenv("WORLD_SIZE") == nullptr) {
    // Two ranks on this machine; fork before any LibTorch thread exists.
    absl::StatusOr<int> free_port = ouroboros::FreeLocalPort();
    if (!free_port.ok()) {
      std::fprintf(stderr, "error: %s\n",
                   free_port.status().ToString().c_str());
      return 1;
    }
    const std::string port = std::to_string(*free_port);
    setenv("WORLD_SIZE", "2", 1);
    setenv("MASTER_ADDR", "127.0.0.1", 1);
    setenv("MASTER_PORT", port.c_str(), 1);
    child = fork();
    setenv("RANK", child == 0 ? "1" : "0", 1);
  }
  absl::Status status = ouroboros::Run();
  if (!status.ok())
    std::fprintf(stderr, "error: %s\n", status.ToString().c_str());
  if (child > 0) {
    int child_status = 0;
    waitpid(child, &child_status, 0);
    if (child_status != 0) return 1;
  }
  return status.ok() ? 0 : 1;
}
