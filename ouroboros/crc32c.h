// CRC-32C (Castagnoli), as TFRecord (TensorBoard's event files) and our
// checkpoints use it.
//
//   uint32_t crc = Crc32c(payload);
#ifndef OUROBOROS_CRC32C_H_
#define OUROBOROS_CRC32C_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace ouroboros {

uint32_t Crc32c(absl::string_view data);

}  // namespace ouroboros

#endif  // OUROBOROS_CRC32C_H_
