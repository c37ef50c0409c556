// main() for Google Benchmark binaries: --threads=N sets LibTorch's and
// OpenBLAS's intra-op threads (default 2, this project's machines; both
// printed first), everything else goes to Google Benchmark
// (--benchmark_filter, --benchmark_format=csv, ...).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ouroboros/base/threads.h"

int main(int argc, char** argv) {
  int threads = 2;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0) {
      threads = std::atoi(argv[i] + 10);
    } else {
      rest.push_back(argv[i]);
    }
  }
  ouroboros::SetThreads(threads);
  const std::string threads_line = ouroboros::DescribeThreads();
  std::fprintf(stderr, "threads: %s\n", threads_line.c_str());
  benchmark::AddCustomContext("threads", threads_line);
  int rest_argc = static_cast<int>(rest.size());
  benchmark::Initialize(&rest_argc, rest.data());
  if (benchmark::ReportUnrecognizedArguments(rest_argc, rest.data())) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
