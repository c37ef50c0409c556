// How glibc's malloc treats the memory a training step frees.
//
//   LOG(INFO) << "malloc: " << KeepFreedMemory(/*keep=*/true);
//
// glibc's malloc returns memory to the system when the top of its heap
// grows past a threshold it adjusts as it goes, and serves large blocks
// from fresh mmaps. A training step frees and allocates the same
// activations every time, and in long runs every step faulted tens of
// thousands of pages in again: the SRWM default run took 609 s instead of
// 77 s with these settings (29.4M page faults against 268k; the same
// results to the last bit; tools/bench_malloc). Fixing the thresholds
// keeps freed memory for reuse, at the cost of holding on to the run's
// peak heap until it ends.
#ifndef OUROBOROS_CLI_MALLOC_SETTINGS_H_
#define OUROBOROS_CLI_MALLOC_SETTINGS_H_

#include <string>

namespace ouroboros {

// With `keep`, fixes malloc's thresholds so that freed memory stays for
// reuse (each MALLOC_*_ variable set in the environment wins for its
// setting); without, leaves glibc's defaults. Returns what is in force,
// for the log.
std::string KeepFreedMemory(bool keep);

}  // namespace ouroboros

#endif  // OUROBOROS_CLI_MALLOC_SETTINGS_H_
