// What durability costs per checkpoint: WriteFileAtomically (temporary file,
// fsync, rename, fsync of the directory) against the same bytes written and
// renamed without the two fsyncs, and a whole SaveCheckpoint of the
// Fashion-MNIST MLP (784 -> 256 -> 128 -> 10 with Adam's state).
//
//   bazel build //ouroboros/runs:checkpoint_benchmark
//   bazel-bin/ouroboros/runs/checkpoint_benchmark --benchmark_repetitions=5
//
// Files go to $TMPDIR (else /tmp): the numbers are that file system's.
#include <benchmark/benchmark.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adam.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "ouroboros/base/files.h"
#include "ouroboros/runs/checkpoint.h"

namespace ouroboros {
namespace {

std::string ScratchFile(const char* name) {
  return (std::filesystem::temp_directory_path() / name).string();
}

void BM_WriteFileAtomically(benchmark::State& state) {
  const std::string bytes(state.range(0) << 20, 'x');
  const std::string path = ScratchFile("ouroboros_bench_atomic.bin");
  for (auto _ : state) {
    if (!WriteFileAtomically(path, bytes).ok()) state.SkipWithError("write");
  }
  std::remove(path.c_str());
  state.SetBytesProcessed(state.iterations() * bytes.size());
}
BENCHMARK(BM_WriteFileAtomically)->Arg(1)->Arg(4)->Arg(16)->UseRealTime();

// The same steps without fsync: what a crash or a power cut could tear.
void BM_WriteAndRenameWithoutFsync(benchmark::State& state) {
  const std::string bytes(state.range(0) << 20, 'x');
  const std::string path = ScratchFile("ouroboros_bench_plain.bin");
  const std::string tmp = path + ".tmp";
  for (auto _ : state) {
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
    std::rename(tmp.c_str(), path.c_str());
  }
  std::remove(path.c_str());
  state.SetBytesProcessed(state.iterations() * bytes.size());
}
BENCHMARK(BM_WriteAndRenameWithoutFsync)
    ->Arg(1)
    ->Arg(4)
    ->Arg(16)
    ->UseRealTime();

void BM_SaveCheckpointFashionMlp(benchmark::State& state) {
  torch::nn::Sequential mlp(torch::nn::Linear(784, 256),
                            torch::nn::Linear(256, 128),
                            torch::nn::Linear(128, 10));
  torch::optim::Adam adam(mlp->parameters());
  // One step, so that Adam's moments are part of the checkpoint.
  mlp->forward(torch::randn({8, 784})).sum().backward();
  adam.step();
  CheckpointState checkpoint_state;
  const std::string path = ScratchFile("ouroboros_bench.ckpt");
  for (auto _ : state) {
    if (!SaveCheckpoint(path, *mlp, adam, checkpoint_state).ok()) {
      state.SkipWithError("save");
    }
  }
  state.counters["MiB"] =
      static_cast<double>(std::filesystem::file_size(path)) / (1 << 20);
  std::remove(path.c_str());
}
BENCHMARK(BM_SaveCheckpointFashionMlp)->UseRealTime();

}  // namespace
}  // namespace ouroboros
