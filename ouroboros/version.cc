#include "ouroboros/version.h"

#include "ouroboros/build_stamp.h"

namespace ouroboros {

const char* BuildCommit() { return kBuildCommit; }

}  // namespace ouroboros
