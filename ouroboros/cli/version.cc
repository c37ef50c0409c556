#include "ouroboros/cli/version.h"

#include "ouroboros/cli/build_stamp.h"

namespace ouroboros {

const char* BuildCommit() { return kBuildCommit; }

}  // namespace ouroboros
