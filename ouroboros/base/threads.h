// How many intra-op threads a process uses, set everywhere it matters.
//
// LibTorch parallelises its own loops with OpenMP, and its matrix products
// run in OpenBLAS, whose thread pool is separate: at::set_num_threads()
// alone leaves OpenBLAS on all cores. SetThreads() sets both.
//
// The default is measured, not assumed. On the 2-vCPU machines this project
// runs on, two threads make an OpenMP-heavy run (the SRWM) 1.3x faster when
// the machine is quiet and up to 1.5x slower next to another busy process,
// because OpenMP's workers spin at every barrier waiting for a thread that
// is not scheduled; and the MLP's matrix products may run 1.7x faster with
// OpenBLAS at two threads, while two pools at two (OpenMP's and the pthread
// build of OpenBLAS's) fight over the cores. ChooseThreads() times a short
// element-wise loop (at::exp) with one thread and with all the cores, and a
// small matrix product the same way, and gives the cores only to what is
// clearly faster with them now. With OpenBLAS's OpenMP build (what
// tools/bootstrap installs) there is one pool: OpenMP gets the cores if
// either scales, OpenBLAS if its products do. With the pthread build only
// the pool that scales better gets them.
//
//   ThreadChoice choice = ChooseThreads(/*requested=*/0, /*local_ranks=*/1);
//   SetThreads(choice.threads, choice.blas_threads);
//   LOG(INFO) << "threads: " << choice.threads << " (" << choice.why << ")";
#ifndef OUROBOROS_BASE_THREADS_H_
#define OUROBOROS_BASE_THREADS_H_

#include <string>

namespace ouroboros {

struct ThreadChoice {
  int threads = 1;       // OpenMP
  int blas_threads = 1;  // OpenBLAS
  std::string why;       // e.g. "start-up probe: 2 threads 1.71x as fast as 1"
};

// `requested` > 0: that many, for both pools. 0: measured (above) over the
// cores this process may use (the machine's, divided among `local_ranks`
// ranks on it); a pool gets more than one thread only if the start-up probe
// finds it at least kProbeSpeedup times faster with them. Never both pools
// at more than one thread when they are two pools.
ThreadChoice ChooseThreads(int requested, int local_ranks);

// The cores each of `processes` processes on this machine may use (at least
// 1): the machine's cores shared out evenly.
int CoresPerProcess(int processes);
inline constexpr double kProbeSpeedup = 1.25;

// What the start-up probe measured: `cores` threads against one.
struct ProbeSpeedups {
  double loops = 1;     // element-wise loops (OpenMP)
  double products = 1;  // matrix products (OpenBLAS)
};

// ChooseThreads' decision from the probe: the cores to what is at least
// kProbeSpeedup times faster with them; with `one_pool` (OpenBLAS's OpenMP
// build) to both kinds of work independently, else only to the pool that
// scales better; 1 and 1 when neither does.
ThreadChoice ThreadsForSpeedups(int cores, const ProbeSpeedups& speedups,
                                bool one_pool);

// LibTorch's OpenMP threads and OpenBLAS's (the user's OPENBLAS_NUM_THREADS
// wins for the latter).
void SetThreads(int threads, int blas_threads);
inline void SetThreads(int threads) { SetThreads(threads, threads); }

// Whether the OpenBLAS loaded is its OpenMP build (Debian's
// libopenblas0-openmp), whose threads are LibTorch's OpenMP team.
bool BlasSharesOpenMpPool();

// What is in force: "OpenMP 2, OpenBLAS 2" (OpenBLAS: "?" when it is not the
// BLAS loaded).
std::string DescribeThreads();

// The BLAS LibTorch runs on, from OpenBLAS itself (openblas_get_config):
// "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64"; else
// "not OpenBLAS (the reference BLAS is 30x slower; see tools/bootstrap)".
std::string DescribeBlas();

}  // namespace ouroboros

#endif  // OUROBOROS_BASE_THREADS_H_
