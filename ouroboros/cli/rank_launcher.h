// main --nproc=N: the same command as N ranks of a data-parallel job on
// this machine, each its own process (as torchrun --nproc_per_node).
//
//   ASSIGN_OR_RETURN(std::string self, SelfExecutable());
//   RETURN_IF_ERROR(LaunchRanks(RankCommand(self, args, run_dir), 2,
//                               run_dir));
#ifndef OUROBOROS_CLI_RANK_LAUNCHER_H_
#define OUROBOROS_CLI_RANK_LAUNCHER_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace ouroboros {

// What every rank runs: `self` with main's arguments (`args`, argv[1..])
// less --nproc and --run_dir, then --run_dir=`run_dir` unless it is empty
// (a resumed run, which each rank finds from --resume).
std::vector<std::string> RankCommand(const std::string& self,
                                     const std::vector<std::string>& args,
                                     const std::string& run_dir);

// Runs `command` as ranks 0..nproc-1 with RANK, LOCAL_RANK, WORLD_SIZE,
// LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1 and a free MASTER_PORT set, and
// waits for them. The job fails as soon as one rank fails; the others are
// stopped if they have not ended 30 s later (they fail by themselves once
// a collective finds the rank gone). A stop signal reaches every rank
// (ChildPool forwards it) and gives Cancelled. A rank that exits 2 (bad
// input) gives InvalidArgument, any other failure Internal, naming the
// rank. `run_dir` is only named in messages.
absl::Status LaunchRanks(const std::vector<std::string>& command, int nproc,
                         const std::string& run_dir);

}  // namespace ouroboros

#endif  // OUROBOROS_CLI_RANK_LAUNCHER_H_
